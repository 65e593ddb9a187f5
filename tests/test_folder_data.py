"""Folder training data (images/ + masks/ label maps): instances, ignore, modes, splits, errors, config."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from iseg.data.eval.layout import DatasetLayoutError
from iseg.data.folder import FolderSource
from iseg.data.interactive_dataset import InteractiveDataset
from tests.conftest import compose_train_config
from tests.folder_files import IGNORE_VALUE, write_folder_dataset, write_folder_sample
from tests.test_sbd_data import _TINY_SBD, run_fast_dev_run


def _labels() -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((30, 40, 3), np.uint8)
    image[:] = (10, 20, 200)
    labels = np.zeros((30, 40), np.uint8)
    labels[2:12, 2:15] = 3
    image[2:12, 2:15] = (230, 40, 20)
    labels[15:28, 20:38] = 8
    labels[12:14, :] = IGNORE_VALUE
    return image, labels


def test_instances_ignore_and_rgb(tmp_path):
    image, labels = _labels()
    write_folder_sample(tmp_path, "a", image, labels)
    source = FolderSource(tmp_path, split="all")
    sample = source.get_sample(0)
    assert sample.name == "a" and np.array_equal(sample.image, image), "PNG images come back as the RGB written"
    assert sorted(node.value for node in sample.objects.values()) == [3, 8]
    first = sample.get_object_mask(0)
    assert (first[labels == 3] == 1).all() and (first[labels == IGNORE_VALUE] == -1).all()
    assert (first[(labels == 0) | (labels == 8)] == 0).all()
    assert source.sample_object_ids(0) == [0, 1]

    binary = FolderSource(tmp_path, split="all", mask_mode="binary").get_sample(0)
    assert len(binary) == 1
    assert np.array_equal(binary.get_object_mask(0), np.where(labels == IGNORE_VALUE, -1, labels > 0).astype(np.int32))

    no_ignore = FolderSource(tmp_path, split="all", ignore_value=None).get_sample(0)
    assert sorted(node.value for node in no_ignore.objects.values()) == [3, 8, IGNORE_VALUE]


def test_palette_and_16_bit_masks(tmp_path):
    image, labels = _labels()
    write_folder_sample(tmp_path, "a", image, labels)
    palette = Image.fromarray(labels, mode="P")
    palette.putpalette([v for i in range(256) for v in ((i * 7) % 256, (i * 13) % 256, (i * 29) % 256)])
    palette.save(tmp_path / "masks" / "a.png")
    sample = FolderSource(tmp_path, split="all").get_sample(0)
    assert sorted(node.value for node in sample.objects.values()) == [3, 8], "palette PNGs give their indices"

    wide = labels.astype(np.uint16)
    wide[wide == 8] = 1000
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), wide)
    sample = FolderSource(tmp_path, split="all").get_sample(0)
    assert sorted(node.value for node in sample.objects.values()) == [3, 1000]


def test_split_files(tmp_path):
    stems = write_folder_dataset(tmp_path, num_images=5, splits={"train": ["img_004", "img_001"], "val": ["img_002"]})
    train = FolderSource(tmp_path, split="train")
    assert train.names == ["img_004", "img_001"] and [train.get_sample(i).name for i in range(2)] == train.names
    assert FolderSource(tmp_path, split="val").names == ["img_002"]
    assert FolderSource(tmp_path, split="all").names == stems
    (tmp_path / "val.txt").write_text("img_002\nimg_999\n")
    with pytest.raises(FileNotFoundError, match=r"1 name\(s\) of .*val.txt have no image\+mask pair .*img_999"):
        FolderSource(tmp_path, split="val")
    (tmp_path / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train.txt exists but .*val.txt does not"):
        FolderSource(tmp_path, split="val")


def test_seeded_val_fraction_split(tmp_path):
    stems = write_folder_dataset(tmp_path, num_images=10)
    train = FolderSource(tmp_path, split="train", val_fraction=0.3)
    val = FolderSource(tmp_path, split="val", val_fraction=0.3)
    assert len(val.names) == 3 and len(train.names) == 7
    assert sorted(train.names + val.names) == stems, "the two splits partition the images"
    assert FolderSource(tmp_path, split="val", val_fraction=0.3).names == val.names, "fixed seed"
    others = {tuple(FolderSource(tmp_path, split="val", val_fraction=0.3, split_seed=s).names) for s in range(1, 6)}
    assert len(others | {tuple(val.names)}) > 1, "the seed chooses the split"
    with pytest.raises(ValueError, match="the val split is empty"):
        FolderSource(tmp_path, split="val", val_fraction=0.0)


def test_layout_errors(tmp_path, caplog):
    with pytest.raises(DatasetLayoutError, match=r"(?s)root folder .*absent.*Expected layout.*images/.*masks/"):
        FolderSource(tmp_path / "absent")
    write_folder_dataset(tmp_path, num_images=4)
    (tmp_path / "masks" / "img_002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image .*img_002.png has no mask"):
        FolderSource(tmp_path, split="all")
    (tmp_path / "images" / "img_002.png").unlink()
    write_folder_sample(tmp_path / "spare", "orphan", *_labels())
    (tmp_path / "spare" / "masks" / "orphan.png").rename(tmp_path / "masks" / "orphan.png")
    with caplog.at_level(logging.WARNING, logger="iseg.data.folder"):
        source = FolderSource(tmp_path, split="all")
    assert source.names == ["img_000", "img_001", "img_003"]
    assert "1 mask(s) without an image are not used: mask orphan.png" in caplog.text


def test_bad_masks_are_named(tmp_path):
    write_folder_dataset(tmp_path, num_images=3, image_size=(48, 64))
    source = FolderSource(tmp_path, split="all")
    cv2.imwrite(str(tmp_path / "masks" / "img_000.png"), np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"mask .*img_000.png is 20x20 but image .*img_000.png is 48x64"):
        source.get_sample(0)
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[..., 2] = 5
    cv2.imwrite(str(tmp_path / "masks" / "img_001.png"), colour)
    with pytest.raises(ValueError, match=r"img_001.png has 3 channels with different values"):
        source.get_sample(1)
    (tmp_path / "masks" / "img_002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"img_002.png"):
        source.get_sample(2)


def test_folder_config_batches_with_ignore(tmp_path):
    root = tmp_path / "set"
    write_folder_dataset(root, num_images=8, ignore_band=True)
    cfg = compose_train_config(
        tmp_path, ["data=folder", f"data.root={root}", "data.train_dataset.source.val_fraction=0.25",
                   "data.train_dataset.keep_background_prob=0", *_TINY_SBD[:7]], tiny=False,
    )
    module = instantiate(cfg.data)
    train, val = module.train_dataset, module.val_dataset
    assert isinstance(train, InteractiveDataset) and isinstance(train.source, FolderSource) and isinstance(val.source, FolderSource)
    assert len(train) == 6 and len(val) == 2 and train.source.root == val.source.root == root
    assert not set(train.source.names) & set(val.source.names), "val split follows the train keys"
    module.setup("fit")
    values = set()
    for batch in module.train_dataloader():
        assert batch["images"].shape == (2, 3, 32, 48) and batch["points"].shape == (2, 48, 3)
        assert batch["instances"].dtype == torch.float32
        values |= set(batch["instances"].unique().tolist())
    assert values <= {-1.0, 0.0, 1.0} and {0.0, 1.0} <= values
    assert len(module.protocol_samples(2)) == 2


@pytest.mark.slow
def test_train_py_fast_dev_run_on_a_folder(tmp_path):
    root = tmp_path / "set"
    write_folder_dataset(root, num_images=6, ignore_band=True)
    result = run_fast_dev_run("folder", root, tmp_path / "run", ["data.train_dataset.source.val_fraction=0.34"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "rank 0/1 finished: epoch 1, global step 1" in output
