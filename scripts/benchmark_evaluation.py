"""Seconds per click and peak memory of the NoC evaluation of a checkpoint on one dataset.

    python scripts/benchmark_evaluation.py CHECKPOINT --dataset grabcut --root ../shared/data/GrabCut
    python scripts/benchmark_evaluation.py CHECKPOINT --dataset davis --root ../shared/data/DAVIS --max-samples 20
    python scripts/benchmark_evaluation.py CHECKPOINT --dataset grabcut --root ... --no-zoom --no-flip --device cuda
    python scripts/benchmark_evaluation.py CHECKPOINT --dataset grabcut --root ... --processes 2 --threads 1
    python scripts/benchmark_evaluation.py FCFI_CHECKPOINT --fcfi --dataset grabcut --root ../shared/data/GrabCut
    python scripts/benchmark_evaluation.py CHECKPOINT ... --override predictor.views.flip=null
    python scripts/benchmark_evaluation.py FBRS_CHECKPOINT --refiner fbrs_b --dataset grabcut --root ...
    python scripts/benchmark_evaluation.py IOG_CHECKPOINT --predictor iog --override robot=iog --max-clicks 3 --target-iou 1.01 ...
    python scripts/benchmark_evaluation.py CHECKPOINT --dataset grabcut --root ... --fold-batchnorm
    python scripts/benchmark_evaluation.py CHECKPOINT ... --backend onnxruntime   # exported once, before the loop
    python scripts/benchmark_evaluation.py CHECKPOINT ... --backend openvino      # OpenVINO's CPU plugin, float32
    python scripts/benchmark_evaluation.py CHECKPOINT ... --default-malloc   # glibc's own malloc settings
    python scripts/benchmark_evaluation.py MODEL.onnx --dataset grabcut --root ...                  # an export
    # before/after side by side: another checkout's script (e.g. a worktree of main) and this one with
    # the given options, alternated --repeats times in fresh processes; medians and digests printed
    python scripts/benchmark_evaluation.py CHECKPOINT --dataset grabcut --root ... --max-samples 6 \
        --target-iou 1.01 --threads 2 --fold-batchnorm --compare-with /work/speed_base --repeats 3

Settings come from the evaluation configs (conf/eval, as evaluate.py composes them): ``--predictor``
names the conf/eval/predictor file (ritm by default); ``--fcfi`` is ``--predictor fcfi_h18s``
(``--fcfi-backbone resnet101``: fcfi_r101): flip, zoom-in with negative clicks in the ROI and the
per-dataset table, all ``--max-clicks`` clicks (no early stop) and boundary IoU + ASSD after each.

The timed loop is the evaluation's own (iseg.evaluation.runner.evaluate_checkpoint): sample
loading, clicker, predictor (zoom-in, flip, network) and IoU, as the reference's SPC counts them.
The results digest identifies every sample's clicks and per-click (intersection, union) counts:
equal digests mean identical clicks and IoUs, so two settings (e.g. --no-channels-last) can be
compared for speed at equal results.

glibc malloc keeps freed memory for reuse as evaluate.py sets it (:mod:`iseg.allocator`) unless
``--default-malloc``.

Seconds per click is one process's loop time per click (the reference's SPC); with
``--processes N`` (Lightning Fabric DDP, the samples sharded over N processes) the wall-clock time
per click is what a user waits for a whole dataset. Peak RSS is per process (the largest one).
CPU seconds per click (user + system time of all processes over all clicks) is what the loop costs
on a machine shared with other work, where wall-clock figures depend on the load.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iseg.allocator import keep_freed_memory  # noqa: E402
from iseg.evaluation.distributed import gather_objects  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from iseg.evaluation.runner import DatasetEvaluation, compose_eval_config, evaluate_checkpoint  # noqa: E402
from iseg.interaction.metrics import mean_iou_curve  # noqa: E402
from iseg.inference.backends import BACKENDS, EXPORTED_BACKENDS, network_backend, read_network  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def results_digest(evaluation: DatasetEvaluation) -> str:
    """Short hash of every sample's clicks (position, sign) and (intersection, union) after each."""
    digest = hashlib.sha1()
    for record in evaluation.records:
        prompts = [(c.y, c.x, c.is_positive) if hasattr(c, "y") else (c.anchor_points(), c.is_positive) for c in record.result.clicks]
        digest.update(repr(prompts).encode())
        digest.update(repr(record.result.inter_union.tolist()).encode())
    return digest.hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="iseg .ckpt, official checkpoint or .onnx export")
    parser.add_argument("--dataset", default="grabcut", help="evaluation set name (grabcut, berkeley, davis, ...)")
    parser.add_argument("--root", type=Path, required=True, help="dataset root folder")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--target-iou", type=float, default=0.90)
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--no-zoom", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true", help="keep the network in NCHW layout")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", type=int, default=1, help="evaluation processes (DDP), samples sharded")
    parser.add_argument("--predictor", default="ritm", help="conf/eval/predictor option (ritm, fcfi_h18s, fcfi_r101)")
    parser.add_argument("--fcfi", action="store_true", help="FCFI's protocol: its zoom-in table, no early stop, "
                        "boundary IoU and ASSD (--target-iou is ignored)")
    parser.add_argument("--fcfi-backbone", default="hrnet18s", choices=["hrnet18s", "resnet101"],
                        help="column of FCFI's zoom-in table (predictor fcfi_h18s or fcfi_r101)")
    parser.add_argument("--refiner", default="none",
                        help="conf/eval/refiner option (none, rgb_brs, distmap_brs, fbrs_a, fbrs_b, fbrs_c)")
    parser.add_argument("--override", action="append", default=[], help="more Hydra overrides of conf/eval")
    parser.add_argument("--fold-batchnorm", action="store_true", help="predictor.fold_batchnorm=true (NoBRS only)")
    parser.add_argument("--backend", default=None, choices=BACKENDS,
                        help="predictor.backend (default: the checkpoint's: torch, or onnxruntime for .onnx); "
                             "an exported backend exports a checkpoint once, before the timed loop")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc as it is (evaluate.py's keep_freed_memory=false)")
    parser.add_argument("--compare-with", type=Path, default=None, metavar="CHECKOUT",
                        help="run CHECKOUT/scripts/benchmark_evaluation.py (same arguments, without this "
                             "checkout's options) and this one alternately; print both side by side")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side with --compare-with")
    args = parser.parse_args()
    if args.compare_with is not None:
        compare(args)
        return

    device = torch.device(args.device)
    rank = 0
    if args.processes > 1:
        from lightning.fabric import Fabric

        fabric = Fabric(accelerator=device.type, devices=args.processes, strategy="ddp")
        fabric.launch()
        rank, device = fabric.global_rank, fabric.device
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = not args.default_malloc and keep_freed_memory()
    net = read_network(args.checkpoint, channels_last=False)  # evaluate_checkpoint converts it unless --no-channels-last
    predictor_name = {"hrnet18s": "fcfi_h18s", "resnet101": "fcfi_r101"}[args.fcfi_backbone] if args.fcfi else args.predictor
    overrides = [f"predictor={predictor_name}", f"refiner={args.refiner}", f"protocol.max_clicks={args.max_clicks}",
                 *args.override]
    if not args.fcfi:
        overrides.append(f"protocol.target_iou={args.target_iou}")
    overrides += ["predictor.views.zoom_in=null"] if args.no_zoom else []
    overrides += ["predictor.views.flip=null"] if args.no_flip else []
    overrides += ["predictor.fold_batchnorm=true"] if args.fold_batchnorm else []
    overrides += [f"predictor.backend={args.backend}"] if args.backend else []
    cfg = compose_eval_config(overrides)
    if args.backend in EXPORTED_BACKENDS:  # exported here, once, so that CPU s / click is the loop's
        export_start = time.perf_counter()
        net = network_backend(net, args.backend, device)
        print(f"export           {time.perf_counter() - export_start:.1f} s wall for {args.backend} (not counted; "
              "peak RSS includes it)")
    start, cpu_start = time.perf_counter(), cpu_seconds()
    evaluation = evaluate_checkpoint(
        net,
        {args.dataset: args.root},
        OmegaConf.to_container(cfg.predictor, resolve=True),
        predictor_per_dataset=OmegaConf.to_container(cfg.predictor_per_dataset or OmegaConf.create({}), resolve=True),
        protocol=instantiate(cfg.protocol),
        robot=instantiate(cfg.robot),
        device=device,
        max_samples=args.max_samples,
        channels_last=not args.no_channels_last,
    )[0]
    total = time.perf_counter() - start
    cpu = sum(gather_objects([cpu_seconds() - cpu_start]))
    peak = max(gather_objects([peak_rss_mib()]))
    if rank != 0:
        return
    zoom_in = evaluation.predictor["views"].get("zoom_in")
    zoom = "off" if zoom_in is None else f"target {zoom_in['target_size']} x{zoom_in['expansion_ratio']}"
    protocol = "FCFI (20 clicks, boundary metrics)" if args.fcfi else f"stop at {args.target_iou}"
    backend = evaluation.predictor.get("backend") or "torch"
    print(f"checkpoint       {args.checkpoint}  ({getattr(net, 'network_name', type(net).__name__)}, backend {backend})")
    print(
        f"setting          {args.dataset}, predictor={predictor_name}, refiner={args.refiner}, protocol {protocol}, device {device}, threads {torch.get_num_threads()}, "
        f"flip {'off' if args.no_flip else 'on'}, zoom-in {zoom}, channels_last {not args.no_channels_last}, "
        f"processes {evaluation.world_size}, malloc keeps freed memory {kept}"
    )
    print(f"samples / clicks {len(evaluation.records)} / {evaluation.result.num_clicks}")
    print(f"seconds / click  {evaluation.result.seconds_per_click:.4f}  (one process)")
    print(f"wall s / click   {evaluation.wall_seconds_per_click:.4f}")
    print(f"CPU s / click    {cpu / max(evaluation.result.num_clicks, 1):.4f}  (user + system, all processes)")
    print(f"wall / total s   {evaluation.wall_seconds:.1f} / {total:.1f}  (total includes the network build)")
    print(f"peak RSS         {peak:.0f} MiB")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    print(f"NoC@90           {evaluation.summary['NoC@90']:.2f}")
    if args.fcfi:
        biou = mean_iou_curve([r.result.bious for r in evaluation.records])
        distance = mean_iou_curve([r.result.assds for r in evaluation.records])
        print(f"last click       mBIoU {biou[-1]:.4f}, ASSD {distance[-1]:.3f} px (click {len(biou)})")
    print(f"results digest   {results_digest(evaluation)}")


# Options of this checkout that a baseline checkout's script may not know.
_NEW_OPTIONS = {"--fold-batchnorm": 0, "--default-malloc": 0, "--backend": 1, "--compare-with": 1, "--repeats": 1}
_REPORTED = ("seconds / click", "wall s / click", "CPU s / click", "peak RSS", "NoC@90", "results digest")


def _argv_without(argv: list[str], options: dict[str, int]) -> list[str]:
    """``argv`` without the given options (name -> number of values), ``--name=value`` forms too."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in options:
            skip = options[name] if "=" not in arg else 0
            continue
        out.append(arg)
    return out


def _run_side(script: Path, argv: list[str]) -> dict[str, str]:
    """Run one benchmark process; its reported lines as {label: value}."""
    import subprocess

    env = {**__import__("os").environ, "PYTHONPATH": str(script.parents[1])}
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, env=env, cwd=script.parents[1])
    if done.returncode:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = {}
    for line in done.stdout.splitlines():
        for label in _REPORTED:
            if line.startswith(label):
                lines[label] = line[len(label) :].strip()
    return lines


def compare(args: argparse.Namespace) -> None:
    """Alternate the baseline checkout's benchmark and this one's; print medians side by side."""
    import statistics

    base_script = args.compare_with.resolve() / "scripts" / "benchmark_evaluation.py"
    if not base_script.is_file():
        raise SystemExit(f"--compare-with {args.compare_with}: no scripts/benchmark_evaluation.py there")
    argv = _argv_without(sys.argv[1:], {"--compare-with": 1, "--repeats": 1})
    base_argv = _argv_without(argv, _NEW_OPTIONS)
    sides = {"before": (base_script, base_argv), "after": (Path(__file__).resolve(), argv)}
    runs: dict[str, list[dict[str, str]]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        for name, (script, side_argv) in sides.items():
            runs[name].append(_run_side(script, side_argv))
            print(f"run {repeat + 1}/{args.repeats} {name}: {runs[name][-1].get('seconds / click', '?')} s/click", flush=True)
    print(f"\nbefore: {base_script.parents[1]} {' '.join(base_argv)}")
    print(f"after:  {Path(__file__).resolve().parents[1]} {' '.join(argv)}")
    print(f"{'':18}{'before':>16}{'after':>16}{'after/before':>14}")
    for label in _REPORTED:
        values = {name: [run.get(label, "?") for run in runs[name]] for name in sides}
        try:
            numbers = {name: statistics.median(float(v.split()[0]) for v in vals) for name, vals in values.items()}
        except ValueError:  # digests: print them as they are
            print(f"{label:18}{','.join(sorted(set(values['before']))):>16}{','.join(sorted(set(values['after']))):>16}")
            continue
        ratio = numbers["after"] / numbers["before"] if numbers["before"] else float("nan")
        print(f"{label:18}{numbers['before']:>16.4f}{numbers['after']:>16.4f}{ratio:>14.3f}")
    print(f"(medians of {args.repeats} alternated runs each)")


if __name__ == "__main__":
    main()
