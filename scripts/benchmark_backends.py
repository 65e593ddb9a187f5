"""CPU seconds per click of the predictor with PyTorch, onnxruntime and OpenVINO, side by side in one run.

    python scripts/benchmark_backends.py                                   # RITM HRNet18s stand-in, GrabCut
    python scripts/benchmark_backends.py --checkpoint coco_lvis_h18s_itermask.pth --samples 10
    python scripts/benchmark_backends.py --samples 6 --target-iou 1.01       # the speed issue's setting
    python scripts/benchmark_backends.py --onnx model.onnx --checkpoint coco_lvis_h18s_itermask.pth
    python scripts/benchmark_backends.py --nchw                           # PyTorch in NCHW (the reference's layout)
    python scripts/benchmark_backends.py --backends torch openvino         # a subset

Every backend runs the same network (``--checkpoint``; by default the RITM HRNet18s ITER-M
architecture with the golden fixture's fill-rule weights, which cost what the released weights
cost) through the same predictor settings: zoom-in (RITM's, target 400) and flip, on the first
``--samples`` GrabCut images (``--root``, default ../shared/data/GrabCut), the NoC protocol to
IoU ``--target-iou`` (0.90; 1.01 runs every click) or ``--max-clicks`` (20), ``--threads`` intra-op threads for all (2). The ONNX model is exported
once first (its export time is printed, not counted), or read from ``--onnx``.

Each backend's loop runs in turn (PyTorch first) with the same clicks as far as they agree; CPU seconds are user +
system time of this process over the loop (what the loop costs on a machine shared with other
work), wall seconds are printed beside them. The last lines say whether each exported backend gave
PyTorch's clicks and the largest probability difference over all maps.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iseg.data.eval.grabcut import GrabCutDataset  # noqa: E402
from iseg.evaluation.protocol import ProtocolConfig, evaluate_sample  # noqa: E402
from iseg.export import export_onnx  # noqa: E402
from iseg.inference.backends import BACKENDS  # noqa: E402
from iseg.inference.flip import Flip  # noqa: E402
from iseg.inference.predictor import Predictor  # noqa: E402
from iseg.inference.zoom_in import ZoomIn  # noqa: E402
from iseg.models.checkpoints import load_model  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stand_in_checkpoint(folder: Path) -> Path:
    """The RITM HRNet18s ITER-M architecture with fill-rule weights (tests/golden.py), official layout."""
    from tests.golden import load_spec, make_official_checkpoint

    return make_official_checkpoint(load_spec("ritm_hrnet18s_itermask"), folder / "ritm_hrnet18s_itermask_fill_rule.pth")


def run_backend(predictor: Predictor, samples: list, protocol: ProtocolConfig) -> tuple[float, float, int, list, list]:
    """(CPU s, wall s, clicks, clicks per sample, maps per sample) of the protocol over ``samples``."""
    clicks, maps = [], []
    add = Predictor.add
    cpu, wall, count = 0.0, 0.0, 0
    for sample in samples:
        predictor.set_image(sample.image)
        sample_maps: list[np.ndarray] = []
        predictor.add = lambda prompt, sample_maps=sample_maps: sample_maps.append(add(predictor, prompt)) or sample_maps[-1]
        cpu_start, wall_start = cpu_seconds(), time.perf_counter()
        result = evaluate_sample(predictor, sample.gt, protocol)
        cpu += cpu_seconds() - cpu_start
        wall += time.perf_counter() - wall_start
        count += len(result.clicks)
        clicks.append([(c.y, c.x, c.is_positive) for c in result.clicks])
        maps.append(sample_maps)
    return cpu, wall, count, clicks, maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: HRNet18s fill-rule stand-in)")
    parser.add_argument("--onnx", type=Path, default=None, help="an exported model of the checkpoint (default: export now)")
    parser.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "GrabCut")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--target-iou", type=float, default=0.90, help="early stop; 1.01: all --max-clicks clicks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nchw", action="store_true", help="PyTorch in NCHW (default: channels_last, as read_network gives)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                        help="backends to run in turn (torch always runs: the others are compared with it)")
    args = parser.parse_args()
    args.backends = ["torch", *(b for b in args.backends if b != "torch")]

    torch.set_num_threads(args.threads)
    if not args.root.is_dir():
        sys.exit(f"GrabCut not found at {args.root}: give --root")
    samples = [GrabCutDataset(args.root)[i] for i in range(args.samples)]
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint or stand_in_checkpoint(Path(folder))
        net = load_model(checkpoint, map_location="cpu")
        onnx_path, export_seconds = args.onnx, None
        if onnx_path is None:
            onnx_path = Path(folder) / "model.onnx"
            start = time.perf_counter()
            export_onnx(net, onnx_path)
            export_seconds = time.perf_counter() - start
        if not args.nchw:  # after the export, which takes the network as stored
            net = net.to(memory_format=torch.channels_last)
        protocol = ProtocolConfig(max_clicks=args.max_clicks, target_iou=args.target_iou)
        results = {}
        for backend in args.backends:
            views = {"zoom_in": ZoomIn(target_size=400), "flip": Flip()}
            model = net if backend == "torch" else onnx_path
            results[backend] = run_backend(Predictor(model, views=views, backend=backend), samples, protocol)

    sizes = sorted({s.image.shape[:2] for s in samples})
    print(f"network          {type(net).__name__} ({checkpoint if args.checkpoint else 'HRNet18s ITER-M, fill-rule weights'})")
    print(f"setting          GrabCut first {len(samples)} images {sizes[0]}..{sizes[-1]}, zoom-in 400 + flip, "
          f"NoC to {args.target_iou:.2f} / {args.max_clicks} clicks, {args.threads} threads, torch {torch.__version__} "
          f"({'NCHW' if args.nchw else 'channels_last'})")
    if export_seconds is not None:
        print(f"ONNX export      {export_seconds:.1f} s wall (not counted)")
    print("".join([f"{'':17}", *(f"{name:>14}" for name in results)]))
    rows = {
        "clicks": lambda r: f"{r[2]:>14d}",
        "CPU s / click": lambda r: f"{r[0] / r[2]:>14.3f}",
        "wall s / click": lambda r: f"{r[1] / r[2]:>14.3f}",
    }
    for label, cell in rows.items():
        print("".join([f"{label:17}", *(cell(result) for result in results.values())]))
    torch_result = results["torch"]
    for backend, result in results.items():
        if backend == "torch":
            continue
        diffs = [float(np.abs(a - b).max()) for maps_a, maps_b in zip(torch_result[4], result[4]) for a, b in zip(maps_a, maps_b)]
        print(f"{backend}: same clicks as PyTorch {'yes' if result[3] == torch_result[3] else 'NO'}, "
              f"max |prob diff| {max(diffs):.2e} over {len(diffs)} maps")


if __name__ == "__main__":
    main()
