"""Throughput and peak memory of the ITER-M training step (the real LightningModule step).

    python scripts/benchmark_train_step.py                      # HRNet18s, batch 8, 320x480, CPU
    python scripts/benchmark_train_step.py model=ritm_hrnet32 --batch-size 4 --device cuda --precision bf16
    python scripts/benchmark_train_step.py model=fcfi_hrnet18s  # FCFI (FCFI adapter and feedback loss terms)
    python scripts/benchmark_train_step.py model=fcfi_resnet101 --device cuda
    python scripts/benchmark_train_step.py --compile default     # the network through torch.compile

Each step draws 0-3 extra simulated clicks (eval-mode passes without gradients), then runs the
forward/backward/Adam update, exactly as in training (for FCFI models: with the newest click and
the gate as extra inputs and the feedback losses). Batches are prepared beforehand so the
figure is the model step alone (the data pipeline has its own benchmark).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from iseg.training.compile import compile_network

CONF = Path(__file__).resolve().parents[1] / "conf"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=ritm_hrnet18")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=2, default=(320, 480), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["32", "bf16", "fp16"], default="32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", default=None, metavar="MODE",
                        help="torch.compile the network as trainer.compile={mode: MODE} does (default, max-autotune, ...)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    crop = list(args.crop)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"data.batch_size={args.batch_size}",
                f"data.train_dataset.augmentation.crop_size=[{crop[0]},{crop[1]}]",
                "data.train_dataset.source.image_size=[360,540]",
                "data.num_workers=0",
                *args.overrides,
            ],
        )
    device = torch.device(args.device)
    module = instantiate(cfg.model).to(device)
    if args.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if args.compile:
        compile_network(module, {"mode": args.compile})
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    dataset = instantiate(cfg.data.train_dataset)
    dataset.seed(args.seed)
    total = args.warmup + args.steps
    batches = []
    for start in range(0, total * args.batch_size, args.batch_size):
        items = [dataset[i] for i in range(start, start + args.batch_size)]
        batches.append({k: torch.stack([torch.as_tensor(it[k]) for it in items]).to(device) for k in items[0]})

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    module.train()
    times = []
    for step, batch in enumerate(batches):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            loss = module.training_step(batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    mean = statistics.mean(times)
    print(f"model: {cfg.model.net._target_} {dict((k, v) for k, v in cfg.model.net.items() if k in ('width', 'small', 'ocr_width', 'backbone', 'mid_ch', 'expansion_ratio'))}")
    print(f"module: {type(module).__name__}")
    print(f"device: {device} | precision: {args.precision} | channels_last: {args.channels_last} | threads: {torch.get_num_threads()}"
          f" | compile: {args.compile or 'off'}")
    print(f"batch {args.batch_size} x {crop[0]}x{crop[1]}, {args.steps} timed steps (0-3 extra clicks each)")
    print(f"step time: mean {mean:.3f} s, median {statistics.median(times):.3f} s, min {min(times):.3f} s")
    print(f"throughput: {args.batch_size / mean:.2f} samples/s")
    print(f"peak host memory (max RSS): {peak_rss_gib():.2f} GiB")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
