"""Training throughput on a GPU: samples/s, the click simulation's share of the step, GPU busy time.

    python scripts/benchmark_gpu_train.py                       # RITM + FCFI HRNet18s, batch 32/64, bf16, cuda
    python scripts/benchmark_gpu_train.py --models ritm_hrnet18s --batch-sizes 128 --steps 30
    python scripts/benchmark_gpu_train.py --simulations device --compile none default reduce-overhead
    python scripts/benchmark_gpu_train.py --device cpu --tiny   # a check that it runs (tests use this)

For every (model, batch size, simulation) the real ITER-M training step runs (the LightningModule's
``training_step``: 0-3 eval-mode click passes, the trained forward, backward, Adam) on batches
prepared beforehand on the device, in the given precision and channels_last. ``simulation``:
``host`` is the reference's way (the next-click rule on the CPU, one sample at a time, OpenCV
distance transforms), ``device`` the batched torch rule on the GPU (same rule, no host round trip). ``--compile`` adds
rows with the network compiled as ``trainer.compile={mode: ...}`` does it (``none``: eager;
``reduce-overhead`` replays the fixed-shape passes as CUDA graphs); the warm-up column holds the
compile time.

Figures per row:
- samples/s: batch / mean step time (steps synchronised at both ends);
- click share: time inside the next-click rule / step time (the rule is timed with a device
  synchronisation on both sides, which the device rule otherwise does not need);
- GPU busy: mean of ``nvidia-smi``'s utilization.gpu sampled every 100 ms during the timed steps
  (the fraction of time a kernel was running), n/a without nvidia-smi;
- host reads: reads of device values in one more ``training_step`` (each makes the host wait for
  the GPU; :mod:`iseg.host_reads`), their places printed under the row. With ``--device cpu`` the
  step runs the accelerator code paths on CPU tensors for this count. The host simulation reads by
  design (its rule runs on host copies, which the count does not see).

For a machine lent for a few minutes: ``--budget-s`` starts no new row once that many seconds
have passed (the rows left are listed as not run), a row that fails (out of memory, a compile
error) is printed with its error and the others still run, and ``--out DIR`` writes the table
(``gpu_train.md``) and the rows (``gpu_train.json``) after every row, so a run stopped from
outside keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iseg.device_paths import accelerator_paths  # noqa: E402
from iseg.host_reads import HostReads  # noqa: E402
from iseg.training.compile import compile_network  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


class TimedSampler:
    """Stands in for the module's click samplers and adds up the (synchronised) time spent in them."""

    def __init__(self, device: torch.device):
        self.sampler, self.device, self.seconds, self.calls = None, device, 0.0, 0

    def around(self, make_sampler):
        """A ``click_sampler(rng)`` for the module: each batch's sampler, timed by this object."""

        def click_sampler(rng):
            self.sampler = make_sampler(rng)
            return self

        return click_sampler

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, probs: torch.Tensor, gt: torch.Tensor):
        self._sync()
        start = time.perf_counter()
        clicks = self.sampler(probs, gt)
        self._sync()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return clicks


class GpuBusySampler:
    """Samples ``nvidia-smi`` utilization.gpu every 100 ms while active."""

    def __init__(self, device: torch.device):
        self.enabled = device.type == "cuda" and shutil.which("nvidia-smi") is not None
        self.index = device.index if device.index is not None else 0
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> GpuBusySampler:
        if self.enabled:
            command = ["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.output, _ = self.process.communicate(timeout=10)

    def busy(self) -> float | None:
        if self.process is None:
            return None
        values = [float(v) for v in self.output.split() if v.replace(".", "", 1).isdigit()]
        return statistics.mean(values) / 100 if values else None


def build(model: str, batch_size: int, crop: tuple[int, int], device: torch.device, channels_last: bool):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"model={model}",
                f"data.batch_size={batch_size}",
                f"data.train_dataset.augmentation.crop_size=[{crop[0]},{crop[1]}]",
                f"data.train_dataset.source.image_size=[{crop[0] + crop[0] // 8},{crop[1] + crop[1] // 8}]",
                "data.num_workers=0",
            ],
        )
    module = instantiate(cfg.model).to(device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    dataset = instantiate(cfg.data.train_dataset)
    dataset.seed(0)
    batches = []
    for start in range(0, 2 * batch_size, batch_size):  # two distinct batches, used in turn
        items = [dataset[i] for i in range(start, start + batch_size)]
        batches.append({k: torch.stack([torch.as_tensor(it[k]) for it in items]).to(device) for k in items[0]})
    return module, optimizer, batches


def run(args: argparse.Namespace, model: str, batch_size: int, simulation: str, compile_mode: str = "none") -> dict[str, object]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    module, optimizer, batches = build(model, batch_size, tuple(args.crop), device, args.channels_last)
    if compile_mode != "none":
        torch._dynamo.reset()
        compile_network(module, {"mode": compile_mode})
    module.simulate_on_device = simulation == "device"
    timed = TimedSampler(device)
    module.click_sampler = timed.around(module.click_sampler)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    module.train()
    warnings.filterwarnings("ignore", message=".*self.trainer. reference is not registered.*")

    def step(index: int, reads: HostReads | None = None) -> None:
        with autocast, reads or contextlib.nullcontext():
            loss = module.training_step(batches[index % len(batches)], index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    warmup_start = time.perf_counter()
    for index in range(args.warmup):
        step(index)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    warmup_seconds = time.perf_counter() - warmup_start
    with accelerator_paths() if device.type == "cpu" else contextlib.nullcontext():  # what a GPU would run
        step(args.warmup, reads := HostReads())
    host_reads = reads.reads if device.type == "cpu" else reads.on_accelerators()
    timed.seconds, timed.calls = 0.0, 0
    with GpuBusySampler(device) as gpu:
        start = time.perf_counter()
        for index in range(args.steps):
            step(index)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
    return {
        "model": model,
        "batch": batch_size,
        "simulation": simulation,
        "compile": compile_mode,
        "warmup_s": warmup_seconds,
        "samples_s": batch_size * args.steps / elapsed,
        "step_ms": 1000 * elapsed / args.steps,
        "click_ms": 1000 * timed.seconds / args.steps,
        "click_passes": timed.calls,
        "click_share": timed.seconds / elapsed,
        "gpu_busy": gpu.busy(),
        "host_reads": len(host_reads),
        "host_reads_at": sorted({read.where for read in host_reads}),
    }


HEADER = (
    f"{'model':16}{'batch':>6}{'simulation':>12}{'compile':>17}{'warm-up s':>11}{'samples/s':>11}{'step ms':>9}"
    f"{'click ms':>10}{'click share':>13}{'GPU busy':>10}{'host reads':>12}"
)


def format_row(row: dict[str, object]) -> str:
    """One line of the table: the figures, or the error / the reason the row was not run."""
    key = f"{row['model']:16}{row['batch']:>6}{row['simulation']:>12}{row['compile']:>17}"
    if "error" in row:
        return f"{key}  failed: {row['error']}"
    if "skipped" in row:
        return f"{key}  not run: {row['skipped']}"
    busy = "n/a" if row["gpu_busy"] is None else f"{row['gpu_busy']:.0%}"
    return (
        f"{key}{row['warmup_s']:>11.1f}{row['samples_s']:>11.1f}{row['step_ms']:>9.0f}{row['click_ms']:>10.1f}"
        f"{row['click_share']:>13.0%}{busy:>10}{row['host_reads']:>12}"
    )


def cpu_model() -> str:
    """The processor's name as Linux gives it (``platform`` only knows the architecture there)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def environment(args: argparse.Namespace) -> str:
    """Machine and software of the run: the line that goes above every table."""
    device = torch.device(args.device)
    if device.type == "cuda":
        name = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
    else:
        name = f"CPU {cpu_model()}, {torch.get_num_threads()} threads"
    return (
        f"{name}, torch {torch.__version__}, python {platform.python_version()}; precision {args.precision}, "
        f"channels_last {args.channels_last}, {args.crop[0]}x{args.crop[1]}, {args.steps} timed steps after "
        f"{args.warmup} (0-3 simulated clicks each)"
    )


def describe(error: BaseException) -> str:
    """The error of a configuration that raised, on one line."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def release_memory() -> None:
    """Frees what a failed configuration left (its frames are gone once its error is), for the next rows."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_results(out: Path | None, header: str, rows: list[dict[str, object]]) -> None:
    """The table (markdown) and the rows (JSON) under ``out``, rewritten after every row."""
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_train.json").write_text(json.dumps({"environment": header, "rows": rows}, indent=1))
    lines = [header, "", "```", HEADER, *(format_row(row) for row in rows), "```", ""]
    (out / "gpu_train.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["ritm_hrnet18s", "fcfi_hrnet18s"], help="conf/model names")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--simulations", nargs="+", choices=["host", "device"], default=["host", "device"])
    parser.add_argument("--compile", nargs="+", default=["none"], metavar="MODE",
                        help="none (eager) and/or torch.compile modes: default, reduce-overhead, max-autotune, ...")
    parser.add_argument("--crop", type=int, nargs=2, default=(320, 480), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", choices=["32", "bf16", "fp16"], default="bf16")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--budget-s", type=float, default=None, help="start no row after this many seconds")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_train.md and gpu_train.json")
    parser.add_argument("--tiny", action="store_true", help="64x96 crops, batch 2, 1 warm-up + 1 timed step, fp32")
    args = parser.parse_args(argv)
    if args.tiny:
        args.crop, args.batch_sizes, args.steps, args.warmup, args.precision = (64, 96), [2], 1, 1, "32"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here (use --device cpu --tiny for a check)")
    header = environment(args)
    print(header)
    print(HEADER)
    rows: list[dict[str, object]] = []
    start = time.perf_counter()
    for model, batch_size, simulation, compile_mode in itertools.product(args.models, args.batch_sizes, args.simulations, args.compile):
        key = {"model": model, "batch": batch_size, "simulation": simulation, "compile": compile_mode}
        if args.budget_s is not None and time.perf_counter() - start >= args.budget_s:
            row = {**key, "skipped": f"budget of {args.budget_s:g} s spent"}
        else:
            try:
                row = run(args, model, batch_size, simulation, compile_mode)
            except Exception as error:  # noqa: BLE001 - one configuration's failure is a row of the table
                row = {**key, "error": describe(error)}
            if "error" in row:
                release_memory()
        rows.append(row)
        print(format_row(row), flush=True)
        for place in row.get("host_reads_at", []):
            print(f"    host read at {place}")
        write_results(args.out, header, rows)
    return rows


if __name__ == "__main__":
    main()
