"""SBD training data: instances and the buggy-mask rule, splits, hard-sample weights, errors, config."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from iseg.data.eval.layout import DatasetLayoutError
from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.root_datamodule import RootDataModule
from iseg.data.sbd import SBDSource, remove_buggy_instances
from iseg.data.transforms import sbd_train_augmentator, sbd_val_augmentator
from iseg.interaction.sampler import MultiPointSampler
from tests.conftest import ROOT, compose_train_config
from tests.sbd_files import write_instances_mat, write_sbd_dataset, write_sbd_sample

CROP = (32, 48)


def _sampler() -> MultiPointSampler:
    return MultiPointSampler(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15, max_num_merged_objects=2)


@pytest.fixture(scope="module")
def sbd_root(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("sbd")
    return root, write_sbd_dataset(root, num_train=4, num_val=2)


def _diagonal(size: int, length: int) -> np.ndarray:
    """A size×size map whose instance 1 is a diagonal of ``length`` pixels (area/bbox = 1/length)."""
    labels = np.zeros((size, size), np.uint8)
    idx = np.arange(length)
    labels[idx, idx] = 1
    return labels


# ---------------------------------------------------------------------------------- samples
def test_instances_colours_and_buggy_instance(tmp_path):
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :] = (0, 0, 200)  # blue background
    labels = np.zeros((40, 60), np.uint8)
    labels[5:20, 5:25] = 2
    image[5:20, 5:25] = (220, 30, 30)  # red
    cv2.circle(labels, (45, 25), 8, 7, -1)
    labels[np.arange(30, 40), np.arange(0, 10) + 20] = 4  # a 10-px diagonal in a 10x10 box: 0.1, kept
    labels[np.arange(0, 14), np.arange(0, 14) + 40] = 9  # 14-px diagonal in 14x14: 0.071 < 0.08, buggy
    write_sbd_sample(tmp_path, "a", image, labels)
    (tmp_path / "train.txt").write_text("a\n")
    source = SBDSource(tmp_path)
    sample = source.get_sample(0)

    assert sample.name == "a" and sample.image.shape == (40, 60, 3) and sample.image.dtype == np.uint8
    assert np.abs(sample.image[10, 10].astype(int) - (220, 30, 30)).max() < 12, "images are RGB"
    assert sorted(node.value for node in sample.objects.values()) == [2, 4, 7]
    for node in sample.objects.values():
        assert node.parent is None and node.area == int((labels == node.value).sum())
    assert np.array_equal(sample.get_object_mask(0), (labels == 2).astype(np.int32))
    assert sample.background_mask[labels == 9].all(), "the buggy instance becomes background"
    assert source.sample_object_ids(0) == [0, 1, 2]

    keep_all = SBDSource(tmp_path, buggy_mask_thresh=0.0).get_sample(0)
    assert sorted(node.value for node in keep_all.objects.values()) == [2, 4, 7, 9]


@pytest.mark.parametrize("length, kept", [(12, True), (13, False)])
def test_buggy_rule_is_area_over_inclusive_bbox_area(length, kept):
    # 12/144 = 0.0833 >= 0.08 stays, 13/169 = 0.0769 goes
    labels = _diagonal(16, length)
    labels[15, 15] = 2  # a 1-px instance fills its box
    out = remove_buggy_instances(labels.copy(), 0.08)
    assert (out == 1).any() == kept and out[15, 15] == 2


def test_buggy_threshold_itself_is_kept():
    labels = np.zeros((8, 8), np.uint8)
    labels[1, 1] = labels[5, 5] = 3  # 2 px in a 5x5 box: exactly 0.08, not below it
    assert (remove_buggy_instances(labels.copy(), 0.08) == 3).sum() == 2
    assert not remove_buggy_instances(labels.copy(), 0.081).any()


def test_splits_follow_the_split_files(sbd_root):
    root, names = sbd_root
    for split in ("train", "val"):
        source = SBDSource(root, split=split)
        assert source.names == names[split] and len(source) == len(InteractiveDataset(source, _sampler())) == len(names[split])
        assert [source.get_sample(i).name for i in range(len(source))] == names[split]
    with pytest.raises(ValueError, match="'test'"):
        SBDSource(root, split="test")
    with pytest.raises(IndexError, match="out of range"):
        SBDSource(root).get_sample(4)


def test_item_layout(sbd_root):
    root, _ = sbd_root
    dataset = InteractiveDataset(SBDSource(root), _sampler(), sbd_train_augmentator(CROP), min_object_area=10, seed=3)
    item = dataset[0]
    assert item["images"].shape == (3, *CROP) and item["images"].dtype == torch.float32
    assert 0.0 <= item["images"].min() and item["images"].max() <= 1.0
    assert item["points"].shape == (48, 3) and item["instances"].shape == (1, *CROP)
    assert set(item["instances"].unique().tolist()) <= {0.0, 1.0}


# ---------------------------------------------------------------------------------- weights
def _write_weights(path: Path, rows) -> Path:
    with open(path, "wb") as f:
        pickle.dump(list(rows), f)
    return path


def test_sample_weights_set_the_draw_distribution(sbd_root, tmp_path):
    root, names = sbd_root
    scores = [0.9, 0.5, 0.0, 0.99]
    weights = _write_weights(tmp_path / "w.pkl", [(i, n, s) for i, (n, s) in enumerate(zip(names["train"], scores))])
    source = SBDSource(root, samples_weights=weights)
    dataset = InteractiveDataset(source, _sampler(), seed=0)
    expected = (1 - np.array(scores)) ** 1.25
    expected /= expected.sum()
    assert np.allclose(source.sample_probs, expected) and np.allclose(dataset.sample_probs, expected)

    cached = [source.get_sample(i) for i in range(4)]
    drawn: list[int] = []
    source.get_sample = lambda i, rng=None: (drawn.append(i), cached[i])[1]
    num = 1500
    for item in range(num):
        dataset[0]  # the requested index is ignored: the weights choose
    counts = np.bincount(drawn, minlength=4) / num
    tolerance = 4 * np.sqrt(expected * (1 - expected) / num) + 1e-9
    assert (np.abs(counts - expected) <= tolerance).all(), (counts, expected)
    assert len(dataset) == 4, "an epoch stays one pass over the split, as in the reference"


def test_sample_weights_must_match_the_split(sbd_root, tmp_path):
    root, names = sbd_root
    train = names["train"]
    swapped = _write_weights(tmp_path / "a.pkl", [(0, train[1], 0.5), (1, train[0], 0.5), (2, train[2], 0.5), (3, train[3], 0.5)])
    with pytest.raises(ValueError, match=rf"a.pkl: entry \(0, '{train[1]}'\) does not match .* is '{train[0]}'"):
        SBDSource(root, samples_weights=swapped)
    partial = _write_weights(tmp_path / "b.pkl", [(0, train[0], 0.5)])
    with pytest.raises(ValueError, match="3 of the 4 split images have no weight"):
        SBDSource(root, samples_weights=partial)
    (tmp_path / "c.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"c.pkl: expected a pickled list of \(index, image_name, score\)"):
        SBDSource(root, samples_weights=tmp_path / "c.pkl")
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        SBDSource(root, samples_weights=tmp_path / "missing.pkl")


# ---------------------------------------------------------------------------------- errors
def test_missing_root_and_folders_show_the_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"(?s)root folder .*nowhere.*Expected layout.*img/.*inst/.*train.txt"):
        SBDSource(tmp_path / "nowhere")
    write_sbd_dataset(tmp_path, num_train=1, num_val=1)
    (tmp_path / "val.txt").unlink()
    SBDSource(tmp_path, split="train")
    with pytest.raises(DatasetLayoutError, match="val.txt"):
        SBDSource(tmp_path, split="val")


def test_listed_names_without_files_fail_at_construction(tmp_path):
    names = write_sbd_dataset(tmp_path, num_train=3, num_val=1)["train"]
    (tmp_path / "img" / f"{names[1]}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=rf"1 of the 3 files named by .*train.txt are missing:\n  .*img/{names[1]}.jpg"):
        SBDSource(tmp_path)
    write_sbd_dataset(tmp_path, num_train=3, num_val=1)
    (tmp_path / "inst" / f"{names[2]}.mat").unlink()
    with pytest.raises(FileNotFoundError, match=rf"inst/{names[2]}.mat"):
        SBDSource(tmp_path)


def test_bad_files_are_named(tmp_path):
    names = write_sbd_dataset(tmp_path, num_train=3, num_val=1)["train"]
    dataset = SBDSource(tmp_path)
    (tmp_path / "inst" / f"{names[0]}.mat").write_bytes(b"\x00garbage" * 20)
    with pytest.raises(ValueError, match=rf"cannot read .*{names[0]}.mat"):
        dataset.get_sample(0)
    write_instances_mat(tmp_path / "inst" / f"{names[1]}.mat", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=rf"image .*{names[1]}.jpg is 48x64 but its instance map .*{names[1]}.mat is 10x10"):
        dataset.get_sample(1)
    (tmp_path / "img" / f"{names[2]}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=rf"cannot read image .*{names[2]}.jpg"):
        dataset.get_sample(2)


# ---------------------------------------------------------------------------------- data module / config
def test_root_datamodule_batches(sbd_root):
    root, names = sbd_root
    sampler = _sampler()
    train = functools.partial(SBDSource, split="train")
    val = functools.partial(SBDSource, split="val")
    module = RootDataModule(
        str(root),
        functools.partial(InteractiveDataset, source=train, sampler=sampler, augmentation=sbd_train_augmentator(CROP), min_object_area=10),
        functools.partial(InteractiveDataset, source=val, sampler=sampler, augmentation=sbd_val_augmentator(CROP), epoch_len=4),
        batch_size=2,
        seed=0,
    )
    assert module.train_dataset.source.split == "train" and module.val_dataset.source.split == "val"
    assert module.train_dataset.source.root == root and len(module.val_dataset) == 4
    module.setup("fit")
    for loader in (module.train_dataloader(), module.val_dataloader()):
        batch = next(iter(loader))
        assert batch["images"].shape == (2, 3, *CROP) and batch["images"].dtype == torch.float32
        assert batch["points"].shape == (2, 48, 3) and batch["points"].dtype == torch.float32
        assert batch["instances"].shape == (2, 1, *CROP) and batch["instances"].dtype == torch.float32
        assert set(batch["instances"].unique().tolist()) <= {-1.0, 0.0, 1.0}
        for points, gt in zip(batch["points"], batch["instances"][:, 0]):
            positives, negatives = points[:24], points[24:]
            for rows, value in ((positives, 1.0), (negatives, 0.0)):
                used = rows[rows[:, 2] >= 0]
                padded = rows[rows[:, 2] < 0]
                assert (padded == -1).all(), "unused rows are (-1, -1, -1)"
                ys, xs = used[:, 0].long(), used[:, 1].long()
                assert ((ys >= 0) & (ys < CROP[0]) & (xs >= 0) & (xs < CROP[1])).all()
                assert (gt[ys, xs] == value).all(), "positive clicks on the target, negatives off it"
    assert len(module.protocol_samples(3)) == 3
    with pytest.raises(TypeError, match=r"data.train_dataset must be a dataset factory whose source takes root="):
        RootDataModule(str(root), module.train_dataset, module.val_dataset)
    built_source = functools.partial(InteractiveDataset, source=module.val_dataset.source, sampler=sampler)
    with pytest.raises(TypeError, match=r"(?s)data.val_dataset.*`_partial_: true` on data.val_dataset and on data.val_dataset.source"):
        RootDataModule(str(root), functools.partial(InteractiveDataset, source=train, sampler=sampler), built_source)
    with pytest.raises(ValueError, match="data.root is empty"):
        RootDataModule(" ", module.train_dataset, module.val_dataset)


def test_sbd_config_instantiates(sbd_root, tmp_path):
    root, _ = sbd_root
    cfg = compose_train_config(tmp_path, ["data=sbd", f"data.root={root}", *_TINY_SBD[:-1]], tiny=False)
    module = instantiate(cfg.data)
    assert isinstance(module.train_dataset.source, SBDSource) and module.root == root == module.train_dataset.source.root
    assert module.train_dataset.min_object_area == 20 and module.train_dataset.keep_background_prob == 0.01
    assert module.val_dataset.source.split == "val" and len(module.val_dataset) == 4
    assert module.train_dataset.sampler.max_num_points == 24
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["images"].shape == (2, 3, 32, 48)


def test_experiment_uses_the_sbd_data(tmp_path):
    cfg = compose_train_config(tmp_path, ["experiment=ritm_hrnet18_sbd"], tiny=False)
    data = cfg.data
    assert data._target_ == "iseg.data.root_datamodule.RootDataModule" and data.batch_size == 28
    assert data.train_dataset._target_ == "iseg.data.interactive_dataset.InteractiveDataset"
    source = data.train_dataset.source
    assert source._target_ == "iseg.data.sbd.SBDSource" and source.split == "train"
    assert data.train_dataset.min_object_area == 80 and data.train_dataset.keep_background_prob == 0.01
    assert data.train_dataset.augmentation._target_.endswith("sbd_train_augmentator")
    assert data.val_dataset.augmentation._target_.endswith("sbd_val_augmentator")
    assert data.val_dataset.epoch_len == 500 and data.train_dataset.epoch_len == -1
    assert source.samples_weights_gamma == 1.25 and source.buggy_mask_thresh == 0.08


def test_the_from_scratch_recipe_comes_with_the_synthetic_data_only(tmp_path):
    """conf/recipe/synthetic.yaml (chosen by `optional recipe: ${data}`) edits the model; data=sbd leaves it alone."""
    synthetic = compose_train_config(tmp_path, tiny=False)
    sbd = compose_train_config(tmp_path, ["data=sbd"], tiny=False)
    assert synthetic.hydra.runtime.choices.recipe == "synthetic"
    assert (synthetic.model.optimizer.lr, synthetic.model.net.backbone_lr_mult, synthetic.model.net.maps_scale_init) == (1e-3, 1.0, 1.0)
    assert (sbd.model.optimizer.lr, sbd.model.net.backbone_lr_mult) == (5e-4, 0.1), "the model config's own values"
    assert "model" not in OmegaConf.load(ROOT / "conf" / "data" / "synthetic.yaml"), "data configs never set the model"


# tiny settings of `data=sbd` for the tests; the last one only works in train.py
_TINY_SBD = [
    "data.batch_size=2",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.train_dataset.augmentation.crop_size=[32,48]",
    "data.val_dataset.augmentation.crop_size=[32,48]",
    "data.train_dataset.min_object_area=20",
    "data.val_dataset.min_object_area=20",
    "data.val_dataset.epoch_len=4",
    "model.protocol_samples=2",
    "model.protocol.max_clicks=3",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "validate_before_training=false",
    "trainer.fast_dev_run=true",
]


def run_fast_dev_run(data: str, root: Path, output: Path, extra: list[str] = ()) -> subprocess.CompletedProcess:
    """``python train.py data=<data> data.root=<root> trainer.fast_dev_run=true`` with tiny settings."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "train.py", f"data={data}", f"data.root={root}", *_TINY_SBD, *extra,
               "~callbacks.model_summary", f"hydra.run.dir={output}"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_train_py_fast_dev_run_on_sbd(sbd_root, tmp_path):
    root, names = sbd_root
    weights = _write_weights(tmp_path / "w.pkl", [(i, n, 0.5) for i, n in enumerate(names["train"])])
    result = run_fast_dev_run("sbd", root, tmp_path / "run", [f"data.train_dataset.source.samples_weights={weights}"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "rank 0/1 finished: epoch 1, global step 1" in output


def test_config_errors_name_the_key(tmp_path):
    cfg = compose_train_config(tmp_path, ["data=sbd", "data.root=/nowhere", "~data.train_dataset._partial_"], tiny=False)
    with pytest.raises(InstantiationException, match=r"(?s)unbuilt factory \(a partial of SBDSource\).*data.train_dataset"):
        instantiate(cfg.data)
    cfg = compose_train_config(tmp_path, ["data=sbd", "data.root=/nowhere", "data.val_dataset.source=7"], tiny=False)
    with pytest.raises(InstantiationException, match=r"data.val_dataset must be a dataset factory .* with source int"):
        instantiate(cfg.data)


def test_config_with_a_missing_root_shows_the_layout(tmp_path):
    cfg = compose_train_config(tmp_path, ["data=sbd", f"data.root={tmp_path / 'absent'}", *_TINY_SBD[:-1]], tiny=False)
    with pytest.raises(InstantiationException, match=r"(?s)root folder .*absent.*Expected layout"):
        instantiate(cfg.data)
