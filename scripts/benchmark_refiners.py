"""Seconds per click of every refiner (NoBRS, RGB-BRS, DistMap-BRS, f-BRS-A/B/C) side by side.

    python scripts/benchmark_refiners.py CHECKPOINT --root ../shared/data/GrabCut
    python scripts/benchmark_refiners.py CHECKPOINT --root ... --max-samples 3 --max-clicks 5 --zoom 400

The same evaluation (evaluate.py's RITM predictor settings and protocol) runs once per refiner
option of conf/eval/refiner, one after the other in this process, on the same samples and clicks
budget (no early stop); the table shows seconds per click of the whole loop (robot, predictor,
optimisation), L-BFGS evaluations per optimised click and mIoU after the last click.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from iseg.evaluation.runner import compose_eval_config, evaluate_checkpoint  # noqa: E402
from iseg.inference.brs import BRSRefiner  # noqa: E402
from iseg.models.checkpoints import load_model  # noqa: E402

REFINERS = ("none", "rgb_brs", "distmap_brs", "fbrs_a", "fbrs_b", "fbrs_c")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--dataset", default="grabcut")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--max-samples", type=int, default=2)
    parser.add_argument("--max-clicks", type=int, default=5)
    parser.add_argument("--zoom", type=int, default=400, help="zoom-in target size")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--refiners", nargs="+", default=list(REFINERS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    net = load_model(args.checkpoint, map_location="cpu")
    rows = []
    for name in args.refiners:
        cfg = compose_eval_config([
            f"refiner={name}", f"protocol.max_clicks={args.max_clicks}", "protocol.target_iou=1.01",
            f"predictor.views.zoom_in.target_size={args.zoom}",
        ])
        predictor_config = OmegaConf.to_container(cfg.predictor, resolve=True)
        refiner = instantiate(predictor_config.pop("refiner"))
        factory = instantiate({**predictor_config, "_partial_": True}, refiner=refiner)
        start = time.perf_counter()
        evaluation = evaluate_checkpoint(
            net, {args.dataset: args.root}, lambda model, device: factory(model, device=device),
            protocol=instantiate(cfg.protocol), max_samples=args.max_samples,
        )[0]
        wall = time.perf_counter() - start
        counts = refiner.evaluation_counts if isinstance(refiner, BRSRefiner) else []
        evaluations = np.mean(counts) if counts else float("nan")
        last_iou = float(np.mean([r.result.ious[-1] for r in evaluation.records]))
        rows.append((name, evaluation.result.seconds_per_click, evaluations, last_iou, wall))
    print(f"checkpoint {args.checkpoint} ({type(net).__name__}), {args.dataset} x{args.max_samples}, "
          f"{args.max_clicks} clicks, zoom-in {args.zoom}, threads {torch.get_num_threads()}")
    print(f"{'refiner':<12} {'s/click':>8} {'evals/click':>12} {'mIoU@last':>10} {'total s':>8}")
    for name, spc, evaluations, iou, wall in rows:
        print(f"{name:<12} {spc:>8.3f} {evaluations:>12.1f} {iou:>10.4f} {wall:>8.1f}")


if __name__ == "__main__":
    main()
