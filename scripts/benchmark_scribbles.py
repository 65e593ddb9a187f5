"""Speed of S2M's scribble simulation and of the scribble robot on this machine (CPU, one thread).

    python scripts/benchmark_scribbles.py                 # the three GrabCut masks of tests/fixtures/s2m
    python scripts/benchmark_scribbles.py --draws 100 --rounds 30

Prints: training items per second of ``S2MSampler``'s simulation (previous mask + scribbles, the
robot branch and the random strokes apart) and seconds per ``ScribbleRobot.next_round`` (the robot
alone; a protocol round adds one network pass per stroke, see evaluate.py's SPR column).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iseg.interaction.scribbles.perturb import perturb_mask  # noqa: E402
from iseg.interaction.scribbles.robot import ScribbleRobot  # noqa: E402
from iseg.interaction.scribbles.simulate import ScribbleSimulation  # noqa: E402

MASKS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "s2m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=60, help="simulated items per mask")
    parser.add_argument("--rounds", type=int, default=20, help="robot rounds per mask")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    masks = {path.stem: cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 128 for path in sorted(MASKS.glob("*_gt.png"))}
    simulation, rng = ScribbleSimulation(), np.random.default_rng(args.seed)
    seconds = {True: [], False: []}
    for gt in masks.values():
        for _ in range(args.draws):
            start = time.perf_counter()
            prev, from_zero, _ = simulation.previous_mask(gt, rng)
            _, _, robot = simulation.scribbles(prev, gt, from_zero, rng)
            seconds[robot].append(time.perf_counter() - start)
    every = seconds[True] + seconds[False]
    print(f"simulation: {len(every)} items, {len(every) / sum(every):.1f} items/s "
          f"(robot branch {np.mean(seconds[True]) * 1e3:.1f} ms, other branches {np.mean(seconds[False]) * 1e3:.1f} ms per item)")
    robot, times = ScribbleRobot(), []
    for name, gt in masks.items():
        labels = gt.astype(np.int8)
        for k in range(args.rounds):
            pred = np.zeros(gt.shape, bool) if k == 0 else perturb_mask(gt, 0.6 + 0.3 * rng.random(), rng)
            robot.start(labels)
            start = time.perf_counter()
            robot.next_round(pred)
            times.append(time.perf_counter() - start)
        print(f"robot on {name} {gt.shape[0]}x{gt.shape[1]}: {np.mean(times[-args.rounds:]):.3f} s per round")
    print(f"robot: {np.mean(times):.3f} s per round (mean of {len(times)})")


if __name__ == "__main__":
    main()
