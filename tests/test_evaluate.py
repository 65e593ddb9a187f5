"""evaluate.py and its Python API: outputs that agree with each other and with the Predictor run
directly, the table, every dataset layout through the configs, real GrabCut, and bad input."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from iseg.data.eval import DatasetLayoutError, FolderDataset, GrabCutDataset
from iseg.evaluation.plots import held_iou_curve, read_png_curves
from iseg.evaluation.protocol import DatasetResult, ProtocolConfig, SampleResult, evaluate_sample, summarize_samples
from iseg.evaluation.report import TABLE_COLUMNS, format_table, write_reports
from iseg.evaluation.runner import (
    CONFIG_DIR,
    DatasetEvaluation,
    SampleRecord,
    build_datasets,
    evaluate_checkpoint,
)
from iseg.inference.flip import Flip
from iseg.inference.predictor import Predictor
from iseg.inference.zoom_in import ZoomIn
from iseg.interaction.clicks import Click
from iseg.interaction.metrics import summarize
from iseg.models.checkpoints import CheckpointError, load_model
from iseg.models.inputs import ClickInputs
from tests.conftest import FIXTURES, ROOT, require_shared_dataset
from tests.test_evaluation_sets import band_mask, make_grabcut, make_sbd, make_voc, write_image, write_mask
from tests.test_predictor import _checkpoint

SMALL_ZOOM = {"target_size": 64, "skip_clicks": 1, "expansion_ratio": 1.4, "min_crop_size": 200}


def predictor_config(zoom: dict | None = SMALL_ZOOM, flip: bool = True, **kwargs) -> dict:
    """A predictor config as conf/eval/predictor files write it: zoom-in (if given), then flip."""
    views = {
        "zoom_in": {"_target_": "iseg.inference.zoom_in.ZoomIn", **zoom} if zoom is not None else None,
        "flip": {"_target_": "iseg.inference.flip.Flip"} if flip else None,
    }
    return {"_target_": "iseg.inference.predictor.Predictor", "views": views, **kwargs}


def make_folder_set(root: Path, num_images: int = 4, shape: tuple[int, int] = (40, 56)) -> Path:
    """``num_images`` smooth random images with one ellipse each (mask value 1: 255 is ignore), plus an
    image whose mask is empty."""
    height, width = shape
    rows, cols = np.mgrid[:height, :width]
    rng = np.random.default_rng(0)
    for i in range(num_images):
        image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (7, 7), 0)
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
        mask = (((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1).astype(np.uint8)
        write_mask(root / "images" / f"img{i}.png", image)
        write_mask(root / "masks" / f"img{i}.png", mask)
    write_image(root / "images" / "zz_empty.png", height, width, seed=9)
    write_mask(root / "masks" / "zz_empty.png", np.zeros((height, width), np.uint8))
    return root


class DiskNet(nn.Module):
    """Fast stand-in network: logit +8 within 4 px of a positive click, -8 elsewhere."""

    def default_inputs(self) -> ClickInputs:
        return ClickInputs(prev_mask=False)

    def forward(self, image: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image
        batch, _, height, width = x.shape
        rows = torch.arange(height, dtype=x.dtype).view(1, 1, height, 1)
        cols = torch.arange(width, dtype=x.dtype).view(1, 1, 1, width)
        positive = points[:, : points.shape[1] // 2]
        y, x_ = positive[..., 0].view(batch, -1, 1, 1), positive[..., 1].view(batch, -1, 1, 1)
        near = (((rows - y) ** 2 + (cols - x_) ** 2) <= 16) & (y >= 0)
        return {"instances": near.any(dim=1, keepdim=True).to(x.dtype) * 16 - 8}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official-format HRNet18s ITER-M stand-in (fill rule v1 with the golden's two overrides)."""
    return _checkpoint("v1_override", tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="module")
def folder_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder_set(tmp_path_factory.mktemp("folder"))



# ------------------------------------------------------------------------------- outputs


def test_outputs_agree_with_each_other_and_with_the_predictor(checkpoint, folder_set, tmp_path, one_thread) -> None:
    evaluation = evaluate_checkpoint(
        checkpoint,
        {"own": FolderDataset(folder_set)},
        predictor_config(SMALL_ZOOM),
        protocol=ProtocolConfig(max_clicks=4, target_iou=1.01),
        num_examples=2,
    )[0]
    assert [r.name for r in evaluation.records] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    empty = folder_set / "masks" / "zz_empty.png"
    reason = f"empty ground truth: {empty} has no object pixel (non-zero, non-ignore value)"
    assert evaluation.exclusions == [("zz_empty.png", reason)]

    # the runner (channels_last network) gives the clicks of the Predictor run directly
    predictor = Predictor(load_model(checkpoint), views=[ZoomIn(**SMALL_ZOOM), Flip()])
    for record in evaluation.records:
        sample = FolderDataset(folder_set)[record.index]
        predictor.set_image(sample.image)
        direct = evaluate_sample(predictor, sample.gt, ProtocolConfig(max_clicks=4, target_iou=1.01))
        assert direct.clicks == record.result.clicks, record.name
        np.testing.assert_array_equal(direct.inter_union, record.result.inter_union)
    assert any(not c.is_positive for r in evaluation.records for c in r.result.clicks), "expected some negative clicks"

    meta = {"checkpoint": str(checkpoint)}
    files = write_reports([evaluation], tmp_path, meta)
    document = json.loads(files.json_file.read_text())
    own = document["datasets"]["own"]
    assert own["exclusions"] == [{"name": n, "reason": r} for n, r in evaluation.exclusions]
    assert own["num_clicks"] == sum(len(r.result.ious) for r in evaluation.records) == 16
    with open(files.csv_file, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == own["num_clicks"]
    for sample, record in zip(own["samples"], evaluation.records):
        assert sample["clicks"] == [[c.y, c.x, c.is_positive] for c in record.result.clicks]
        assert sample["ious"] == record.result.ious.tolist()
        csv_rows = [row for row in rows if row["sample"] == sample["name"]]
        assert [[float(r["y"]), float(r["x"]), r["is_positive"] == "1"] for r in csv_rows] == sample["clicks"]
        assert [float(r["iou"]) for r in csv_rows] == sample["ious"]
        assert [[int(r["intersection"]), int(r["union"])] for r in csv_rows] == sample["inter_union"]
        assert sample["noc"]["90"] == next((k for k, v in enumerate(sample["ious"], 1) if v >= np.float32(0.9)), 4)
    # without early stop the plotted curve is the table's mIoU@k; the PNG stores what it plots
    curve = read_png_curves(files.curve_png)["own"]
    assert len(curve) == 4
    for k in (1, 2, 3):
        assert curve[k - 1] == pytest.approx(own["summary"][f"mIoU@{k}"], abs=1e-6)
    recomputed = summarize([np.array(s["ious"], np.float32) for s in own["samples"]], [0.8, 0.85, 0.9, 0.95], 4)
    assert recomputed == pytest.approx(own["summary"])
    assert f"{own['summary']['NoC@90']:.2f}" in files.table and "zz_empty.png: empty ground truth" in files.table
    assert [p.name for p in files.examples["own"]] == ["0000_img0.png.png", "0001_img1.png.png"]
    panel = cv2.imread(str(files.examples["own"][0]))
    assert panel.shape == (40, 112, 3)


def test_lightning_and_official_checkpoints_give_the_same_results(checkpoint, folder_set, tmp_path, one_thread) -> None:
    """The same weights as an iseg Lightning .ckpt and as an official RITM container."""
    from tests.golden import load_spec, official_config

    params = official_config(load_spec("ritm_hrnet18s_itermask"))["params"]
    net_config = {"_target_": "iseg.models.hrnet_model.HRNetModel"}
    net_config.update({k: v["value"] for k, v in params.items() if v.get("type", "builtin") == "builtin"})
    state = {f"net.{k}": v for k, v in load_model(checkpoint).state_dict().items()}
    lightning = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"net": net_config}, "epoch": 3}, lightning)
    runs = [
        evaluate_checkpoint(path, {"folder": folder_set}, predictor_config(), max_samples=2, protocol=ProtocolConfig(max_clicks=3))
        for path in (checkpoint, lightning)
    ]
    official, ours = (run[0].records for run in runs)
    assert [r.result.clicks for r in official] == [r.result.clicks for r in ours]
    assert all(np.array_equal(a.result.inter_union, b.result.inter_union) for a, b in zip(official, ours))


def _fake_evaluation(ious: list[list[float]], target_iou: float, key: str = "set") -> DatasetEvaluation:
    samples = [
        SampleResult([Click(0, 0, True)] * len(v), np.array(v, np.float32), np.zeros((len(v), 2), np.int64))
        for v in ious
    ]
    thresholds = [0.8, 0.85, 0.9, 0.95] if target_iou > 0.95 else [0.8, 0.85, 0.9]
    summary = summarize([s.ious for s in samples], thresholds, 20)
    return DatasetEvaluation(
        key=key, title=key, root="/x", records=[SampleRecord(i, f"s{i}", s) for i, s in enumerate(samples)],
        exclusions=[("bad.png", "empty ground truth")], result=DatasetResult(samples, summary, 2.0 * len(samples)),
        wall_seconds=1.0, predictor={}, protocol={"max_clicks": 20, "target_iou": target_iou, "pred_thr": 0.49},
    )


def test_table_prints_every_metric() -> None:
    full = _fake_evaluation([[0.5 + 0.025 * k for k in range(20)], [0.86] * 20], target_iou=1.01, key="full")
    stopped = _fake_evaluation([[0.7, 0.91], [0.95]], target_iou=0.9, key="stopped")
    table = format_table([full, stopped]).splitlines()
    header = table[0].split()
    assert header == ["dataset", "samples", *TABLE_COLUMNS, "SPC", "[s]", "wall/click", "[s]"]
    full_row = dict(zip(header, table[1].split()))
    # NoC@85: sample 1 reaches 0.85 at click 15, sample 2 at click 1; NoC@95 never for sample 2
    assert full_row["NoC@85"] == "8.00" and full_row["NoC@95"] == "19.50" and full_row["NoF@90"] == "1"
    assert full_row["mIoU@1"] == "0.6800" and full_row["mIoU@20"] == f"{(0.5 + 0.025 * 19 + 0.86) / 2:.4f}"
    assert full_row["SPC"] == f"{4.0 / 40:.3f}" and table[1].split()[-1] == f"{1.0 / 40:.3f}"
    stopped_row = dict(zip(header, table[2].split()))
    assert stopped_row["NoC@90"] == "1.50" and stopped_row["NoC@95"] == "-" and stopped_row["mIoU@2"] == "-"
    assert stopped_row["mIoU@1"] == f"{(0.7 + 0.95) / 2:.4f}"
    text = "\n".join(table)
    assert "NoC@95 '-': samples stopped at protocol.target_iou=0.9 " in text
    assert "mIoU@2,3,5,10,20 '-': not every sample ran that many clicks (protocol.target_iou=1.01 runs all 20)" in text
    assert "beyond" not in text
    assert "full: 1 excluded\n  bad.png: empty ground truth" in text


def test_held_curve_keeps_the_last_iou_of_stopped_samples() -> None:
    curve = held_iou_curve([np.array([0.5, 0.9], np.float32), np.array([0.2, 0.4, 0.6], np.float32)], 4)
    f32 = np.float32
    held = (f32(0.9) + f32(0.6)) / 2
    np.testing.assert_allclose(curve, [0.35, (f32(0.9) + f32(0.4)) / 2, held, held])
    with pytest.raises(ValueError, match="has 5 IoUs, expected 1..4"):
        held_iou_curve([np.zeros(5, np.float32)], 4)


# ------------------------------------------------------------------------------- configs


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR / "eval"), version_base="1.3"):
        return compose("evaluate", overrides=overrides)


def test_configs_build_every_layout_and_the_zoom_tables(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ISEG_CACHE_DIR", str(tmp_path / "cache"))
    names = ("grabcut", "berkeley", "davis", "coco_mval", "sbd", "pascalvoc", "folder")
    roots = {name: tmp_path / name for name in names}
    make_grabcut(roots["grabcut"])
    layouts = {"berkeley": ("images", "masks"), "davis": ("img", "gt"), "coco_mval": ("img", "gt")}
    for name, (images, masks) in layouts.items():
        write_image(roots[name] / images / "001.jpg", 12, 12)
        write_mask(roots[name] / masks / "001.png", band_mask(12, 12))
    make_sbd(roots["sbd"])
    make_voc(roots["pascalvoc"])
    make_folder_set(roots["folder"], num_images=1, shape=(12, 16))
    cfg = _compose([f"data=[{','.join(roots)}]", "checkpoint=x", *(f"data.{k}.root={v}" for k, v in roots.items())])
    datasets = build_datasets(cfg.data)
    assert {k: type(v).__name__ for k, v in datasets.items()} == {
        "grabcut": "GrabCutDataset", "berkeley": "BerkeleyDataset", "davis": "DavisDataset",
        "coco_mval": "CocoMValDataset", "sbd": "SBDEvaluationDataset", "pascalvoc": "PascalVOCDataset",
        "folder": "FolderDataset",
    }
    evaluations = evaluate_checkpoint(DiskNet(), datasets, predictor_config(None), protocol=ProtocolConfig(max_clicks=3))
    counts = {e.key: (len(e.records), len(e.exclusions)) for e in evaluations}
    assert counts == {"grabcut": (2, 2), "berkeley": (1, 0), "davis": (1, 0), "coco_mval": (1, 0), "sbd": (3, 1),
                      "pascalvoc": (3, 1), "folder": (1, 1)}
    for evaluation in evaluations:
        assert all(1 <= len(r.result.ious) <= 3 for r in evaluation.records)

    ritm = _compose(["checkpoint=x"])
    views = ritm.predictor.views
    assert ritm.protocol.target_iou == 0.9 and views.flip and views.zoom_in.target_size == 400
    assert list(views) == ["zoom_in", "limit_size", "flip"] and views.limit_size.max_size is None  # off
    assert ritm.robot._target_ == "iseg.interaction.robots.ClickRobot"
    assert ritm.predictor_per_dataset == {"davis": {"views": {"zoom_in": {"target_size": 600}}}}
    assert list(ritm.data) == ["grabcut"]
    fcfi = _compose(["checkpoint=x", "predictor=fcfi_r101"])
    assert fcfi.protocol.target_iou == 1.01 and fcfi.predictor.views.zoom_in.all_clicks_in_roi
    assert fcfi.predictor_per_dataset.grabcut.views.zoom_in == {"target_size": 600, "expansion_ratio": 3.2}


def test_per_dataset_predictor_changes_reach_the_predictor(folder_set) -> None:
    sets = {"davis": FolderDataset(folder_set), "grabcut": FolderDataset(folder_set)}
    evaluations = evaluate_checkpoint(DiskNet(), sets, max_samples=1, protocol=ProtocolConfig(max_clicks=1))
    assert evaluations[0].predictor["views"]["zoom_in"]["target_size"] == 600
    assert evaluations[1].predictor["views"]["zoom_in"]["target_size"] == 400
    assert evaluations[1].predictor["views"]["flip"]["_target_"] == "iseg.inference.flip.Flip"


# ------------------------------------------------------------------------------- end to end


def test_evaluate_py_on_a_folder_set(checkpoint, folder_set, tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "evaluate.py", f"checkpoint={checkpoint}", "data=folder", f"data.folder.root={folder_set}",
        "protocol.max_clicks=3", "predictor.views.zoom_in.target_size=64", "max_samples=3", "threads=1", "num_examples=1",
        f"hydra.run.dir={tmp_path}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "folder " in result.stdout and "NoC@90" in result.stdout
    assert "zz_empty.png: empty ground truth" in result.stdout
    for name in ("table.txt", "results.json", "per_click.csv", "iou_curve.png", "evaluate.log", ".hydra/config.yaml"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "examples" / "folder").glob("*.png"))) == 1
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["checkpoint"] == str(checkpoint) and document["world_size"] == 1
    provenance = document["provenance"]  # what produced the numbers
    assert provenance["packages"]["torch"] and provenance["config"]["protocol"]["max_clicks"] == 3
    assert provenance["git"] is None or len(provenance["git"]["commit"]) == 40
    assert [s["name"] for s in document["datasets"]["folder"]["samples"]] == ["img0.png", "img1.png", "img2.png"]
    assert (tmp_path / "table.txt").read_text().strip() in result.stdout


# ------------------------------------------------------------------------------- real data


def test_grabcut_real_images_with_fill_rule_weights(tmp_path, one_thread) -> None:
    """Fill rule v1 predicts no object here, so the clicks are the clicker's on an empty mask and
    every union is the object size of the golden clicker record (ignore band excluded)."""
    root = require_shared_dataset("GrabCut")
    golden = json.loads((FIXTURES / "golden" / "protocol" / "clicker_grabcut.json").read_text())
    from tests.golden import load_spec, make_official_checkpoint

    path = make_official_checkpoint(load_spec("ritm_hrnet18s_itermask"), tmp_path / "v1.pth")
    evaluation = evaluate_checkpoint(
        path, {"grabcut": GrabCutDataset(root)}, max_samples=2, protocol=ProtocolConfig(max_clicks=2)
    )[0]
    references = {entry["image"]: entry for entry in golden["runs"]["always_20"]["samples"]}
    assert [r.name for r in evaluation.records] == sorted(references)[:2]
    for record in evaluation.records:
        reference = references[record.name]
        first = record.result.clicks[0]
        assert [first.y, first.x, int(first.is_positive)] == reference["clicks"][0]
        assert record.result.inter_union.tolist() == [[0, reference["n_object"]]] * 2
    assert evaluation.summary["NoF@90"] == 2 and evaluation.result.seconds_per_click > 0


# ------------------------------------------------------------------------------- bad input


def test_bad_input_gets_a_clear_error(folder_set, tmp_path) -> None:
    layout = r"not found: root folder .*missing\. Expected layout:\n.*missing/\n  \|-- images/"
    with pytest.raises(DatasetLayoutError, match=layout):
        build_datasets(_compose(["checkpoint=x", "data=folder", f"data.folder.root={tmp_path / 'missing'}"]).data)
    with pytest.raises(ValueError, match="data is a single object config"):
        build_datasets({"_target_": "iseg.data.datamodule.InteractiveDataModule"})
    with pytest.raises(ValueError, match="no evaluation set selected"):
        build_datasets({})

    mismatch = make_folder_set(tmp_path / "mismatch", num_images=1)
    write_mask(mismatch / "masks" / "img0.png", np.full((20, 20), 1, np.uint8))
    with pytest.raises(ValueError, match=r"mask .*img0\.png is 20x20 \(HxW\) but image .*img0\.png is 40x56"):
        FolderDataset(mismatch)  # at start-up

    unreadable = make_folder_set(tmp_path / "unreadable", num_images=1)
    (unreadable / "images" / "img0.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*img0\.png"):
        FolderDataset(unreadable)
    with pytest.raises(ValueError, match=r"cannot read image .*img0\.png"):  # unchecked: found when read
        evaluate_checkpoint(DiskNet(), {"folder": FolderDataset(unreadable, check_files="off")})

    with pytest.raises(FileNotFoundError, match="checkpoint file .*nope.pth does not exist"):
        evaluate_checkpoint(tmp_path / "nope.pth", {"folder": FolderDataset(folder_set)})
    junk = tmp_path / "junk.pth"
    torch.save({"weights": torch.zeros(1)}, junk)
    with pytest.raises(CheckpointError, match=r"junk\.pth: not a known checkpoint format"):
        evaluate_checkpoint(junk, {"folder": FolderDataset(folder_set)})
    with pytest.raises(ValueError, match="unknown evaluation set 'voc'"):
        evaluate_checkpoint(DiskNet(), {"voc": folder_set})
    with pytest.raises(ValueError, match="per_sample formats|per-sample formats"):
        write_reports([_fake_evaluation([[0.9]], 0.9)], tmp_path / "out", {}, formats=["xml"])


# ------------------------------------------------------------------------------- W&B


@pytest.mark.slow
def test_wandb_offline_gets_table_curve_and_examples(checkpoint, folder_set, tmp_path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from iseg.evaluation.runner import evaluate

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR / "eval"), version_base="1.3"):
        cfg = compose(
            "evaluate",
            overrides=[f"checkpoint={checkpoint}", "data=folder", f"data.folder.root={folder_set}", "logger=wandb",
                       "protocol.max_clicks=2", "predictor.views.zoom_in.target_size=64", "max_samples=2", "num_examples=2",
                       f"hydra.run.dir={tmp_path}"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    summaries = evaluate(cfg)
    assert set(summaries) == {"folder"}
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    files = runs[0] / "files"
    assert len(list(files.glob("media/images/eval/folder/examples_*.png"))) == 2
    assert list(files.glob("media/images/eval/iou_curve_*.png"))
    table = json.loads(next(files.glob("media/table/eval/metrics_*.table.json")).read_text())
    assert table["columns"][:3] == ["dataset", "samples", "NoC@85"] and table["data"][0][0] == "folder"
    assert table["data"][0][3] == pytest.approx(summaries["folder"]["NoC@85"])
    assert list(files.glob("media/table/eval/exclusions_*.table.json"))
    # wandb 0.31 offline writes no wandb-summary.json; the metrics are records of the run file,
    # which its service process may still be flushing when finish() returns on a loaded machine
    run_file = next(runs[0].glob("run-*.wandb"))
    keys = ("folder/NoC@90", "folder/NoF@90", "folder/mIoU@1", "folder/SPC")
    deadline = time.monotonic() + 60
    while not all(key.encode() in run_file.read_bytes() for key in keys) and time.monotonic() < deadline:
        time.sleep(0.5)
    events = run_file.read_bytes()
    for key in keys:
        assert key.encode() in events, key


@pytest.mark.slow
def test_benchmark_script_prints_speed_memory_and_digest(checkpoint, folder_set) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "scripts/benchmark_evaluation.py", str(checkpoint), "--dataset", "folder", "--root",
        str(folder_set), "--max-samples", "2", "--max-clicks", "2", "--threads", "1", "--no-zoom",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "zoom-in off" in result.stdout and "samples / clicks 2 / 4" in result.stdout
    assert float(result.stdout.split("seconds / click")[1].split()[0]) > 0
    assert float(result.stdout.split("peak RSS")[1].split()[0]) > 100
    assert len(result.stdout.split("results digest")[1].split()[0]) == 12, result.stdout


# ------------------------------------------------------------------------------- FCFI


def test_fcfi_configs_are_files_per_backbone() -> None:
    fcfi = _compose(["checkpoint=x", "predictor=fcfi"])
    assert fcfi.protocol.boundary_metrics and fcfi.protocol.dilation_ratio == 0.02 and fcfi.protocol.target_iou == 1.01
    assert fcfi.predictor.views.flip and fcfi.protocol.max_clicks == 20
    assert fcfi.predictor_per_dataset.davis.views.zoom_in == {"target_size": 720, "expansion_ratio": 3.5}
    assert list(fcfi.predictor_networks) == ["FCFIHRNetModel"]
    r101 = _compose(["checkpoint=x", "predictor=fcfi_r101"])
    assert r101.predictor_per_dataset.berkeley.views.zoom_in == {"target_size": 720, "expansion_ratio": 2.5}
    assert list(r101.predictor_networks) == ["FCFIDeeplabModel"] and r101.predictor.views.zoom_in.all_clicks_in_roi
    ritm = _compose(["checkpoint=x"])
    assert not ritm.protocol.boundary_metrics and not ritm.predictor.views.zoom_in.all_clicks_in_roi


def test_feedback_network_under_either_setting_and_the_ablation_warning(folder_set, caplog) -> None:
    from iseg.evaluation.runner import check_predictor_networks
    from tests.test_predictor import FeedbackNet

    sets = {"folder": FolderDataset(folder_set)}
    fcfi_like = predictor_config({**SMALL_ZOOM, "all_clicks_in_roi": True})
    evaluation = evaluate_checkpoint(
        FeedbackNet(radius=4.0), sets, fcfi_like, protocol=ProtocolConfig(max_clicks=3, target_iou=1.01, boundary_metrics=True)
    )[0]
    assert all(len(r.result.bious) == len(r.result.assds) == 3 for r in evaluation.records)
    assert {"mBIoU@1", "mBIoU@3", "ASSD@1", "ASSD@3"} <= set(evaluation.summary)
    assert evaluation.protocol["boundary_metrics"] and evaluation.protocol["dilation_ratio"] == 0.02
    ritm_like = evaluate_checkpoint(FeedbackNet(radius=4.0), sets, predictor_config(), protocol=ProtocolConfig(max_clicks=2))[0]
    assert ritm_like.records[0].result.bious is None and "mBIoU@1" not in ritm_like.summary

    with caplog.at_level("WARNING", logger="iseg.evaluation.runner"):
        check_predictor_networks(_compose(["checkpoint=x"]), FeedbackNet())
        check_predictor_networks(_compose(["checkpoint=x", "predictor=fcfi"]), DiskNet())
        check_predictor_networks(_compose(["checkpoint=x", "predictor=fcfi"]), FeedbackNet())
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert re.search(r"holds a FeedbackNet; the predictor settings.* are made for HRNetModel, DeeplabModel", messages[0])
    assert re.search(r"holds a DiskNet; the predictor settings.* are made for FCFIHRNetModel", messages[1])


def test_reports_carry_boundary_metrics(tmp_path) -> None:
    evaluation = _fake_evaluation([[0.5, 0.9], [0.7, 0.8]], target_iou=1.01)
    for record, bious, assds in zip(evaluation.records, ([0.25, 0.5], [0.75, float("nan")]), ([4.0, 2.0], [1.0, 0.5])):
        record.result.bious, record.result.assds = np.float32(bious), np.float32(assds)
    evaluation.protocol.update(boundary_metrics=True, dilation_ratio=0.02)
    evaluation.result.summary = summarize_samples([r.result for r in evaluation.records], [0.8, 0.85, 0.9], 20)
    files = write_reports([evaluation], tmp_path, {"checkpoint": "x"})
    lines = files.table.splitlines()
    header_index = next(i for i, line in enumerate(lines) if line.split()[:3] == ["dataset", "samples", "mBIoU@1"])
    row = dict(zip(lines[header_index].split(), lines[header_index + 1].split()))
    assert row["mBIoU@1"] == "0.5000" and row["mBIoU@2"] == "nan" and row["ASSD@1"] == "2.500"
    assert row["ASSD@2"] == "1.250" and row["mBIoU@3"] == "-"
    document = json.loads(files.json_file.read_text())["datasets"]["set"]
    assert document["samples"][1]["bious"] == [0.75, None] and document["samples"][0]["assds"] == [4.0, 2.0]
    assert document["summary"]["mBIoU@2"] is None and document["summary"]["ASSD@1"] == 2.5
    with open(files.csv_file, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["biou"], r["assd"]) for r in rows[:2]] == [("0.25", "4.0"), ("0.5", "2.0")]
    plain = write_reports([_fake_evaluation([[0.5]], 0.9)], tmp_path / "plain", {})
    assert "biou" not in plain.csv_file.read_text().splitlines()[0] and "mBIoU" not in plain.table


@pytest.mark.slow
def test_evaluate_py_with_an_fcfi_checkpoint_uses_fcfi_settings(tmp_path) -> None:
    """Official-format FCFI HRNet18s stand-in (fill rule v1) on small GrabCut-layout images."""
    from tests.golden import GOLDEN_MODELS, load_spec, make_official_checkpoint

    if not (GOLDEN_MODELS / "fcfi_hrnet18s" / "spec.json").is_file():
        pytest.skip("fcfi_hrnet18s golden not in tests/fixtures/golden/models")
    checkpoint = make_official_checkpoint(load_spec("fcfi_hrnet18s"), tmp_path / "fcfi_h18s.pth")
    make_grabcut(tmp_path / "grabcut")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "evaluate.py", f"checkpoint={checkpoint}", "predictor=fcfi", "data=grabcut",
        f"data.grabcut.root={tmp_path / 'grabcut'}", "protocol.max_clicks=2", "threads=1", "num_examples=0",
        f"hydra.run.dir={tmp_path / 'out'}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ablation" not in result.stdout + result.stderr
    assert "mBIoU@1" in result.stdout and "ASSD@2" in result.stdout
    document = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["grabcut"]
    assert document["protocol"]["target_iou"] == 1.01 and document["protocol"]["boundary_metrics"]
    zoom = document["predictor"]["views"]["zoom_in"]
    assert (zoom["target_size"], zoom["expansion_ratio"], zoom["all_clicks_in_roi"]) == (700, 3.0, True)
    assert document["predictor"]["views"]["flip"]
    assert all(len(s["ious"]) == len(s["bious"]) == len(s["assds"]) == 2 for s in document["samples"])


def test_evaluate_py_user_errors_are_one_message(tmp_path) -> None:
    command = [sys.executable, "evaluate.py", f"checkpoint={tmp_path / 'nope.pth'}", "data=folder",
               f"data.folder.root={tmp_path}", f"hydra.run.dir={tmp_path / 'out'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "nope.pth does not exist" in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
