"""Short digests of what RITM and FCFI evaluation and training produce, to compare two trees.

A refactor must not change results. This script runs only the stable command-line entry points
(``evaluate.py`` and ``train.py``) of the tree given by ``--repo`` in subprocesses, so the same
script can be pointed at the tree before and after a refactor; equal digests mean equal outputs:

    python scripts/results_digest.py --repo /work/baseline --out /tmp/digest_baseline
    python scripts/results_digest.py --repo /work/main --out /tmp/digest_main
    diff <(jq .rows /tmp/digest_baseline/digest.json) <(jq .rows /tmp/digest_main/digest.json)

What is digested (sha1, first 12 hex characters):

- the stand-in official checkpoints built by ``tests/golden.py`` of the tree (fill rule v1), so a
  changed fixture is told apart from a changed evaluation;
- a few seeded training steps on the embedded synthetic data: the trained ``state_dict`` of
  ``checkpoints/last.ckpt`` and the values logged to the CSV logger's ``metrics.csv``;
- evaluation on the first GrabCut samples (skipped, saying so, when ../shared/data/GrabCut is
  absent): every sample's clicks (y, x, sign), its per-click IoUs, FCFI's boundary IoU/ASSD, and
  the rows of per_click.csv. ``eval_ritm``/``eval_fcfi`` use the stand-ins; their fill-rule weights
  are untrained, so every probability stays below 0.49 (FCFI's even underflow to exactly 0): empty
  masks, IoU 0, clicks that follow from the ground truth alone. They check loading of the official
  containers, the protocol and the reports, not the network's numbers; hence ``eval_trained_*``
  also evaluate the checkpoints just trained (5 clicks): their masks are not empty, so their IoUs
  and clicks depend on the network's output.

Determinism: each subprocess gets OMP_NUM_THREADS/MKL_NUM_THREADS = ``--threads`` (default 1)
because a CPU convolution's float sums may depend on how the work is split over threads: compare
runs made with the same ``--threads``. Seeded CPU training was checked to repeat bit for bit (two
baseline runs, same digests). Wall-clock values (seconds per click, timings) never enter a digest;
they are only kept in digest.json's ``details``.

Each weights digest comes twice: with tensor names (``weights``) and over the sorted per-tensor
digests without names (``weights_values``), so renamed state_dict keys alone can be told apart
from changed values.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DIGEST_CHARS = 12
GOLDEN_VARIANTS = {"ritm": "ritm_hrnet18s_itermask", "fcfi": "fcfi_hrnet18s"}
TRAIN_MODELS = {"ritm": "ritm_hrnet18s", "fcfi": "fcfi_hrnet18s"}
# GrabCut samples per evaluation: FCFI's protocol always runs 20 clicks (and is slower per click)
EVAL_SAMPLES = {"ritm": 6, "fcfi": 2}
TRAINED_EVAL_SAMPLES = {"ritm": 2, "fcfi": 1}
# the trained checkpoints' masks change with every click, so 5 clicks already test the loop (and keep it short)
TRAINED_EVAL_OVERRIDES = ["protocol.max_clicks=5"]
SUMMARY_KEYS = ("NoC@85", "NoC@90", "mIoU@1")
TIMEOUT_S = 1200

# A tiny training run (after tests/conftest.py TINY_OVERRIDES): 3 steps of batch 2 (epoch_len 6), one
# validation batch (2 samples); only keys the configs already have, so plain overrides work in both trees.
TRAIN_OVERRIDES = [
    "seed=42",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.train_dataset.image_size=[64,96]",
    "data.train_dataset.epoch_len=6",
    "data.train_dataset.augmentator.crop_size=[64,96]",
    "data.val_dataset.image_size=[64,96]",
    "data.val_dataset.num_samples=2",
    "data.val_dataset.augmentator.crop_size=[64,96]",
    "data.train_dataset.min_object_area=20",
    "data.val_dataset.min_object_area=20",
    "model.protocol.num_samples=2",
    "model.protocol.max_clicks=3",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "validate_before_training=false",
    "~callbacks.model_summary",
]


# Config keys renamed by the interaction-core change (#9): composed data and module configs. A tree with
# iseg/data/source.py gets the new names, so the same run can be digested before and after.
KEY_RENAMES = {
    "data.train_dataset.image_size": "data.train_dataset.source.image_size",
    "data.val_dataset.image_size": "data.val_dataset.source.image_size",
    "data.val_dataset.num_samples": "data.val_dataset.source.num_samples",
    "data.train_dataset.augmentator": "data.train_dataset.augmentation",
    "data.val_dataset.augmentator": "data.val_dataset.augmentation",
    "model.protocol.num_samples": "model.protocol_samples",
}


def train_overrides(repo: Path) -> list[str]:
    """TRAIN_OVERRIDES in the key names of the tree at ``repo``."""
    if not (repo / "iseg" / "data" / "source.py").is_file():
        return list(TRAIN_OVERRIDES)
    renamed = []
    for override in TRAIN_OVERRIDES:
        key, equals, value = override.partition("=")
        for old, new in KEY_RENAMES.items():
            if key == old or key.startswith(old + "."):
                key = new + key[len(old):]
        renamed.append(f"{key}{equals}{value}")
    return renamed


def sha(data: bytes | str) -> str:
    """sha1 of bytes (or UTF-8 text), shortened: enough to tell two runs apart in a table."""
    return hashlib.sha1(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()[:DIGEST_CHARS]


def canonical(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal data gives equal text (floats as repr)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def run_command(command: Sequence[str], repo: Path, env: dict[str, str], log_file: Path) -> float:
    """Run one entry point in the tree, output to ``log_file``; raise with the tail if it fails."""
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        result = subprocess.run(command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"exit code {result.returncode}: {' '.join(command)}\n{tail}")
    return seconds


def fresh_dir(path: Path) -> Path:
    """An empty run folder: a left-over csv/version_0 would make the CSV logger write version_1."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# ------------------------------------------------------------------------------ checkpoints


def tensor_bytes(tensor: Any) -> bytes:
    """The raw bytes of a tensor in standard (row-major) layout, whatever its dtype or memory format."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    import torch

    return flat.view(torch.uint8).numpy().tobytes()


def state_dict_digests(state: dict[str, Any]) -> dict[str, Any]:
    """Digests of a state dict: with names (sorted keys), and names left out (sorted per-tensor digests)."""
    import torch

    named = hashlib.sha1()
    per_tensor = {}
    for key in sorted(state):
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor):
            continue
        header = f"{tensor.dtype}|{list(tensor.shape)}|".encode()
        data = tensor_bytes(tensor)
        named.update(key.encode() + b"\0" + header + data)
        per_tensor[key] = hashlib.sha1(header + data).hexdigest()
    return {
        "weights": named.hexdigest()[:DIGEST_CHARS],
        "weights_values": sha("".join(sorted(per_tensor.values()))),
        "num_tensors": len(per_tensor),
        "num_values": int(sum(state[k].numel() for k in per_tensor)),
        "per_tensor": {k: v[:DIGEST_CHARS] for k, v in per_tensor.items()},
    }


def load_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load of our own (trusted) file; pickled configs need weights_only=False."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def build_golden_checkpoints(repo: Path, folder: Path, env: dict[str, str]) -> dict[str, Path]:
    """Stand-in official checkpoints from the tree's tests/golden.py (run there, so its fixtures are used)."""
    paths = {method: folder / f"{variant}.pth" for method, variant in GOLDEN_VARIANTS.items()}
    code = (
        "import sys\nfrom pathlib import Path\nfrom tests.golden import load_spec, make_official_checkpoint\n"
        "for variant, path in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    make_official_checkpoint(load_spec(variant), Path(path))\n"
    )
    arguments = [str(a) for method in paths for a in (GOLDEN_VARIANTS[method], paths[method])]
    run_command([sys.executable, "-c", code, *arguments], repo, env, folder / "golden.log")
    return paths


# ------------------------------------------------------------------------------ evaluation


def digest_results_json(path: Path) -> dict[str, Any]:
    """Clicks, IoUs and boundary metrics of every sample of every set in results.json."""
    document = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for key, dataset in document["datasets"].items():
        samples = dataset["samples"]
        clicks = [[s["index"], s["name"], s["clicks"]] for s in samples]
        ious = [[s["index"], s["name"], s["ious"]] for s in samples]
        entry: dict[str, Any] = {
            "clicks": sha(canonical(clicks)),
            "ious": sha(canonical(ious)),
            "num_samples": len(samples),
            "num_clicks": sum(len(s["clicks"]) for s in samples),
            "summary": {k: dataset["summary"].get(k) for k in SUMMARY_KEYS},
            "summary_all": dataset["summary"],
            "per_sample": {
                f"{s['index']}:{s['name']}": {
                    "clicks": sha(canonical(s["clicks"])),
                    "ious": sha(canonical(s["ious"])),
                    **({"boundary": sha(canonical([s["bious"], s["assds"]]))} if "bious" in s else {}),
                }
                for s in samples
            },
        }
        if any("bious" in s or "assds" in s for s in samples):
            entry["boundary"] = sha(canonical([[s["index"], s.get("bious"), s.get("assds")] for s in samples]))
        out[key] = entry
    return out


def digest_per_click_csv(path: Path) -> dict[str, Any]:
    """Every row of per_click.csv (columns sorted by name, values as written)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [sorted(row.items()) for row in csv.DictReader(f)]
    return {"digest": sha(canonical(rows)), "rows": len(rows), "columns": sorted(dict(rows[0])) if rows else []}


def evaluate(name: str, predictor: str, max_samples: int, repo: Path, checkpoint: Path, grabcut: Path, out: Path,
             env: dict[str, str], extra: Sequence[str] = ()) -> dict[str, Any]:
    """evaluate.py with a predictor option on the first samples of GrabCut; digests of its outputs."""
    run_dir = fresh_dir(out / name)
    command = [
        sys.executable, "evaluate.py", f"checkpoint={checkpoint}", f"predictor={predictor}", "data=grabcut",
        f"data.grabcut.root={grabcut}", f"max_samples={max_samples}", "num_examples=0", *extra,
        f"hydra.run.dir={run_dir}",
    ]
    seconds = run_command(command, repo, env, out / f"{name}.log")
    result = {"command": command, "seconds": round(seconds, 1), "run_dir": str(run_dir)}
    result["json"] = digest_results_json(run_dir / "results.json")
    if (run_dir / "per_click.csv").is_file():
        result["csv"] = digest_per_click_csv(run_dir / "per_click.csv")
    return result


# ------------------------------------------------------------------------------ training


def digest_metrics_csv(path: Path) -> dict[str, Any]:
    """Logged values per metric (step, value), as the CSV logger wrote them; empty cells skipped."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    series: dict[str, list[list[str]]] = {}
    for row in rows:
        for column, value in row.items():
            if column in ("step", "epoch") or value in ("", None):
                continue
            series.setdefault(column, []).append([row.get("step", ""), row.get("epoch", ""), value])
    last = {column: float(values[-1][2]) for column, values in series.items()}
    return {
        "digest": sha(canonical(series)),
        "per_metric": {column: sha(canonical(values)) for column, values in sorted(series.items())},
        "last": last,
        "rows": len(rows),
    }


def train(method: str, repo: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """A few seeded train.py steps of the method's small HRNet; digests of the weights and the metrics."""
    run_dir = fresh_dir(out / f"train_{method}")
    command = [sys.executable, "train.py", f"model={TRAIN_MODELS[method]}", *train_overrides(repo), f"hydra.run.dir={run_dir}"]
    seconds = run_command(command, repo, env, out / f"train_{method}.log")
    result: dict[str, Any] = {"command": command, "seconds": round(seconds, 1), "run_dir": str(run_dir)}
    checkpoint_file = run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint_file.is_file():
        found = sorted((run_dir / "checkpoints").glob("*.ckpt"))
        if not found:
            raise FileNotFoundError(f"no checkpoint written under {run_dir / 'checkpoints'}")
        checkpoint_file = found[-1]
    checkpoint = load_checkpoint(checkpoint_file)
    result["checkpoint"] = str(checkpoint_file)
    result["global_step"] = checkpoint.get("global_step")
    result["state_dict"] = state_dict_digests(checkpoint["state_dict"])
    metrics_files = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    if metrics_files:
        result["metrics"] = digest_metrics_csv(metrics_files[-1])
        result["metrics_file"] = str(metrics_files[-1])
    return result


# ------------------------------------------------------------------------------ table


def figures(values: dict[str, Any], keys: Iterable[str] | None = None, digits: int = 4) -> str:
    """'key=value' pairs for the table; floats rounded (the digest holds the exact values)."""
    parts = []
    for key in keys if keys is not None else values:
        value = values.get(key)
        parts.append(f"{key}={value:.{digits}f}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def table_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """name | digest | key figures, one row per digested output."""
    rows = []
    for method, info in report["golden"].items():
        rows.append({"name": f"golden_{method}/weights", "digest": info["weights"],
                     "figures": f"{info['variant']} tensors={info['num_tensors']} values={info['num_values']}"})
    for method, info in report["train"].items():
        state = info["state_dict"]
        rows.append({"name": f"train_{method}/weights", "digest": state["weights"],
                     "figures": f"step={info['global_step']} tensors={state['num_tensors']} values={state['num_values']}"})
        rows.append({"name": f"train_{method}/weights_values", "digest": state["weights_values"],
                     "figures": "names left out"})
        if "metrics" in info:
            last = info["metrics"]["last"]
            keys = [k for k in ("train/loss_epoch", "val/loss", "val/noc90", "val/miou1") if k in last]
            rows.append({"name": f"train_{method}/metrics", "digest": info["metrics"]["digest"],
                         "figures": figures(last, keys)})
    for name, info in report["eval"].items():
        if "skipped" in info:
            rows.append({"name": name, "digest": "-", "figures": f"skipped: {info['skipped']}"})
            continue
        for key, entry in info["json"].items():
            prefix = f"{name}/{key}"
            rows.append({"name": f"{prefix}/clicks", "digest": entry["clicks"],
                         "figures": f"samples={entry['num_samples']} clicks={entry['num_clicks']}"})
            rows.append({"name": f"{prefix}/ious", "digest": entry["ious"], "figures": figures(entry["summary"])})
            if "boundary" in entry:
                summary = entry["summary_all"]
                rows.append({"name": f"{prefix}/boundary", "digest": entry["boundary"],
                             "figures": figures(summary, [k for k in ("mBIoU@1", "ASSD@1") if k in summary])})
        if "csv" in info:
            rows.append({"name": f"{name}/per_click.csv", "digest": info["csv"]["digest"],
                         "figures": f"rows={info['csv']['rows']}"})
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'name':<{width}} | {'digest':<{DIGEST_CHARS}} | key figures", "-" * (width + DIGEST_CHARS + 20)]
    lines += [f"{r['name']:<{width}} | {r['digest']:<{DIGEST_CHARS}} | {r['figures']}" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=here, help="tree whose evaluate.py/train.py run (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--grabcut", type=Path, default=None, help="GrabCut root (default: <repo>/../shared/data/GrabCut)")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each run (compare equal values)")
    parser.add_argument("--skip-train", action="store_true", help="only the evaluation digests")
    parser.add_argument("--skip-eval", action="store_true", help="only the training digests")
    parser.add_argument("--skip-trained-eval", action="store_true", help="no evaluation of the trained checkpoints")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    repo = args.repo.resolve()
    for entry in ("evaluate.py", "train.py", "tests/golden.py"):
        if not (repo / entry).is_file():
            raise SystemExit(f"{repo} has no {entry}: --repo must be an iseg checkout")
    out = (args.out or Path(tempfile.mkdtemp(prefix="results_digest_"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    grabcut = (args.grabcut or repo / ".." / "shared" / "data" / "GrabCut").resolve()
    threads = str(args.threads)
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads, "HYDRA_FULL_ERROR": "1"}
    env.pop("ISEG_DATA_DIR", None)

    report: dict[str, Any] = {"repo": str(repo), "out": str(out), "threads": args.threads,
                              "python": sys.executable, "golden": {}, "eval": {}, "train": {}}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    report["commit"] = commit.stdout.strip() or None
    started = time.perf_counter()

    checkpoints = build_golden_checkpoints(repo, fresh_dir(out / "golden"), env)
    for method, path in checkpoints.items():
        digests = state_dict_digests(load_checkpoint(path)["state_dict"])
        report["golden"][method] = {"variant": GOLDEN_VARIANTS[method], "path": str(path),
                                    **{k: v for k, v in digests.items() if k != "per_tensor"}}

    if not args.skip_train:
        for method in TRAIN_MODELS:
            print(f"[results_digest] train.py model={TRAIN_MODELS[method]} ...", flush=True)
            report["train"][method] = train(method, repo, out, env)

    if not args.skip_eval:
        runs = [(f"eval_{m}", m, EVAL_SAMPLES[m], path, []) for m, path in checkpoints.items()]
        if not args.skip_train and not args.skip_trained_eval:
            runs += [(f"eval_trained_{m}", m, TRAINED_EVAL_SAMPLES[m], Path(info["checkpoint"]), TRAINED_EVAL_OVERRIDES)
                     for m, info in report["train"].items()]
        for name, predictor, samples, checkpoint, extra in runs:
            if not (grabcut / "data_GT").is_dir():
                report["eval"][name] = {"skipped": f"GrabCut not found at {grabcut}"}
                print(f"[results_digest] {name} skipped: GrabCut not found at {grabcut}", flush=True)
                continue
            print(f"[results_digest] evaluate.py predictor={predictor} checkpoint={checkpoint.name} ...", flush=True)
            report["eval"][name] = evaluate(name, predictor, samples, repo, checkpoint, grabcut, out, env, extra)

    report["seconds"] = round(time.perf_counter() - started, 1)
    rows = table_rows(report)
    table = format_table(rows)
    (out / "digest.json").write_text(json.dumps({"rows": rows, "details": report}, indent=1) + "\n", encoding="utf-8")
    (out / "digest.txt").write_text(table + "\n", encoding="utf-8")
    print(f"\nresults digest of {repo} (commit {report['commit']}, threads={args.threads})")
    print(table)
    print(f"\nwritten: {out / 'digest.json'} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
