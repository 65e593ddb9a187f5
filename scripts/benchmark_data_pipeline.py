"""Throughput and peak memory of the training data pipeline (issue #4), on GrabCut's images.

    python scripts/benchmark_data_pipeline.py                       # 0, 1 and 2 workers, batch 8
    python scripts/benchmark_data_pipeline.py --workers 0 2 --items 800 --batch-size 16

Each item is what a training dataset does: read the image and its mask from disk (no decoded
cache), COCO+LVIS train augmentation at crop 320x480, the released MultiPointSampler settings,
tensors, then DataLoader batch collation through ``InteractiveDataModule``. GrabCut masks become
one object (value > 128) and an ignore region (128). Throughput is measured after one warm-up
epoch of batches; peak RSS sums the high-water marks of the main process and of every worker (each
setting runs in a fresh process; pages a worker inherits from the fork count in both, so PSS,
which splits shared pages, is printed too).
For 0 workers a per-stage breakdown (read, augment, sampler, to-tensor) is printed too.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

from iseg.data.datamodule import InteractiveDataModule
from iseg.data.eval.grabcut import GrabCutDataset
from iseg.data.image_io import decode_rgb
from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.sample import InstanceSample
from iseg.data.source import SampleSource
from iseg.data.transforms import coco_lvis_train_augmentator, coco_lvis_val_augmentator
from iseg.interaction.sampler import MultiPointSampler

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "GrabCut"
OBJECT, IGNORE = 1, 2
_LABELS = np.zeros(256, np.uint8)  # raw GrabCut mask value -> label
_LABELS[129:], _LABELS[1], _LABELS[128] = OBJECT, OBJECT, IGNORE


class GrabCutTrainingSource(SampleSource):
    """GrabCut's 50 images as a training source: both files decoded on every access, like SBD or COCO.

    Decoding follows ``GrabCutDataset`` (channel 0 of the mask; 1 or > 128 object, 128 ignore);
    the image is decoded straight to RGB and the single-channel masks as grayscale, which give
    the same arrays for less work.
    """

    def __init__(self, root: Path) -> None:
        self.entries = GrabCutDataset(root, check_masks=False).entries

    def __len__(self) -> int:
        return len(self.entries)

    def get_sample(self, index: int, rng: np.random.Generator | None = None) -> InstanceSample:
        entry = self.entries[index]
        image = decode_rgb(entry.image_path)
        raw = cv2.imread(str(entry.mask_path), cv2.IMREAD_GRAYSCALE)
        if image is None or raw is None:
            raise ValueError(f"cannot read {entry.image_path} or {entry.mask_path}")
        labels = cv2.LUT(raw, _LABELS)
        return InstanceSample.from_label_map(image, labels, ignore_values=[IGNORE], name=entry.name)


def build_module(root: Path, items: int, batch_size: int, num_workers: int, seed: int) -> InteractiveDataModule:
    sampler = MultiPointSampler(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15, max_num_merged_objects=2)
    common = dict(sampler=sampler, min_object_area=80, keep_background_prob=0.0)
    source = GrabCutTrainingSource(root)
    train = InteractiveDataset(source, augmentation=coco_lvis_train_augmentator((320, 480)), epoch_len=items, **common)
    val = InteractiveDataset(source, augmentation=coco_lvis_val_augmentator((320, 480)), **common)
    return InteractiveDataModule(train, val, batch_size=batch_size, num_workers=num_workers, seed=seed)


def peak_rss_kib(pid: int | str = "self") -> int:
    """VmHWM (peak resident set) of a live process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def proportional_set_kib(pid: int | str = "self") -> int:
    """Current PSS: resident pages, those shared with forked workers split between the sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_loader(module: InteractiveDataModule) -> tuple[float, int, list[int], int]:
    """(samples/s after a warm-up epoch, samples timed, peak RSS KiB of main and each worker, total PSS KiB)."""
    loader = module.train_dataloader()
    iterator = iter(loader)
    for _ in iterator:  # warm-up: worker start, imports, first-touch allocations
        pass
    iterator = iter(loader)  # persistent workers: same processes, new epoch
    count, start = 0, time.perf_counter()
    for batch in iterator:
        count += len(batch["images"])
    elapsed = time.perf_counter() - start
    workers = getattr(getattr(loader, "_iterator", None), "_workers", [])  # persistent workers' processes
    rss = [peak_rss_kib()] + [peak_rss_kib(w.pid) for w in workers]
    pss = proportional_set_kib() + sum(proportional_set_kib(w.pid) for w in workers)
    del iterator, loader
    return count / elapsed, count, rss, pss


def stage_breakdown(dataset: InteractiveDataset, items: int) -> dict[str, float]:
    """Mean ms per item of each stage of ``InteractiveDataset.__getitem__`` (0 workers)."""
    times: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[name] += time.perf_counter() - start

        return wrapper

    source, sampler = dataset.source, dataset.sampler
    source.get_sample = timed("read", source.get_sample)
    dataset.augment_sample = timed("augment", dataset.augment_sample)
    dataset.sampler = timed("sampler", sampler)
    try:
        dataset.seed(0)
        for i in range(min(10, items)):  # warm-up
            dataset[i]
        times.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        for i in range(items):
            dataset[i]
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        del source.__dict__["get_sample"], dataset.__dict__["augment_sample"]
        dataset.sampler = sampler
    named = sum(times.values())
    result = {name: 1e3 * t / items for name, t in times.items()}
    result["to-tensor + rest"] = 1e3 * (total - named) / items
    result["total"] = 1e3 * total / items
    result["total CPU"] = 1e3 * cpu / items
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="GrabCut folder (data_GT, boundary_GT)")
    parser.add_argument("--items", type=int, default=400, help="items per timed epoch")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage breakdown")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cv2-threads", type=int, default=None, help="OpenCV threads (default: OpenCV's)")
    args = parser.parse_args()
    if args.items < args.batch_size:
        parser.error(f"--items ({args.items}) must be at least --batch-size ({args.batch_size})")

    torch.set_num_threads(1)
    if args.cv2_threads is not None:
        cv2.setNumThreads(args.cv2_threads)
    if not args.quiet:
        print(
            f"GrabCut at {args.root}; crop 320x480; batch {args.batch_size}; {args.items} items per epoch; "
            f"{os.cpu_count()} CPUs; OpenCV threads {cv2.getNumThreads()}; RSS after imports "
            f"{peak_rss_kib() / 2**10:.0f} MiB"
        )
    if len(args.workers) > 1:  # one fresh process per setting, so that peak RSS is that setting's own
        for num_workers in args.workers:
            command = [sys.executable, __file__, "--workers", str(num_workers), "--no-stages", "--quiet"]
            command += ["--root", str(args.root), "--items", str(args.items), "--batch-size", str(args.batch_size)]
            command += ["--seed", str(args.seed)]
            command += ["--cv2-threads", str(args.cv2_threads)] if args.cv2_threads is not None else []
            subprocess.run(command, check=True)
    for num_workers in args.workers if len(args.workers) == 1 else []:
        module = build_module(args.root, args.items, args.batch_size, num_workers, args.seed)
        module.setup("fit")
        rate, count, rss, pss = run_loader(module)
        per_process = " + ".join(f"{r / 2**10:.0f}" for r in rss)
        print(
            f"workers={num_workers}: {rate:7.1f} samples/s ({count} samples); peak RSS {sum(rss) / 2**10:6.0f} MiB "
            f"(main + workers: {per_process}; forked pages counted in each), PSS now {pss / 2**10:6.0f} MiB"
        )
    if not args.no_stages:
        module = build_module(args.root, args.items, args.batch_size, 0, args.seed)
        stages = stage_breakdown(module.train_dataset, args.items)
        print("stages, 0 workers (ms/item): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))


if __name__ == "__main__":
    main()
