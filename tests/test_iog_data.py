"""IOG's training data: the PASCAL VOC SegmentationObject source (void 255), VOC + SBD, and IOGSampler
items (crop around one object, guidance from the crop's mask) on synthetic, SBD and VOC fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.iog_transforms import iog_train_augmentator
from iseg.data.pascal_voc import PascalSBDSource, PascalVOCSource
from iseg.data.sbd import SBDSource
from iseg.data.synthetic import SyntheticShapesSource
from iseg.interaction.iog_guidance import mask_guidance, mask_points
from iseg.interaction.iog_sampler import IOGSampler
from tests.sbd_files import write_sbd_dataset
from tests.voc_files import write_voc_dataset


def test_voc_source_reads_instances_and_void(tmp_path):
    names = write_voc_dataset(tmp_path / "VOC2012")
    source = PascalVOCSource(tmp_path / "VOC2012", "train")
    assert source.names == names["train"] and len(source) == 3
    sample = source.get_sample(0)
    labels = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(source.mask_path(names["train"][0])))
    assert len(sample) == len(set(np.unique(labels)) - {0, 255})
    assert np.array_equal(sample.ignore_mask, labels == 255)
    first = sample.get_object_mask(sample.root_objects[0])
    assert (first[labels == 255] == -1).all() and (first == 1).sum() == (labels == 1).sum()
    assert len(PascalVOCSource(tmp_path / "VOC2012", "train", exclude=[names["train"][0]])) == 2


def test_voc_source_names_what_is_missing(tmp_path):
    write_voc_dataset(tmp_path / "VOC2012")
    with pytest.raises(ValueError, match="split must be one of"):
        PascalVOCSource(tmp_path / "VOC2012", "test")
    (tmp_path / "VOC2012" / "SegmentationObject" / "2007_000002.png").unlink()
    with pytest.raises(Exception, match="2007_000002.png"):
        PascalVOCSource(tmp_path / "VOC2012", "train")


def test_voc_and_sbd_source_leaves_out_voc_val_images(tmp_path):
    voc = write_voc_dataset(tmp_path / "VOC2012")
    sbd = write_sbd_dataset(tmp_path / "SBD", num_train=3, num_val=2)  # names 2008_*: disjoint from VOC's
    (tmp_path / "SBD" / "train.txt").write_text("".join(f"{n}\n" for n in [*sbd["train"], voc["val"][0]]))
    (tmp_path / "SBD" / "img" / f"{voc['val'][0]}.jpg").write_bytes((tmp_path / "SBD" / "img" / f"{sbd['train'][0]}.jpg").read_bytes())
    (tmp_path / "SBD" / "inst" / f"{voc['val'][0]}.mat").write_bytes((tmp_path / "SBD" / "inst" / f"{sbd['train'][0]}.mat").read_bytes())
    combined = PascalSBDSource(tmp_path / "VOC2012", tmp_path / "SBD")
    assert len(combined) == 3 + 3 + 2  # VOC train + SBD train + val, without the VOC val image
    assert combined.get_sample(len(combined) - 1).name == sbd["val"][-1]


@pytest.mark.parametrize("data", ["synthetic", "sbd", "voc"])
def test_iog_items_crop_around_one_object(tmp_path, data):
    if data == "synthetic":
        source = SyntheticShapesSource(num_samples=4, image_size=(64, 96))
    elif data == "sbd":
        write_sbd_dataset(tmp_path, num_train=2, num_val=1, image_size=(64, 96))
        source = SBDSource(tmp_path, "train")
    else:
        write_voc_dataset(tmp_path, num_train=2, num_val=1, image_size=(64, 96))
        source = PascalVOCSource(tmp_path, "train")
    dataset = InteractiveDataset(source, IOGSampler(size=(64, 64), relax=8), iog_train_augmentator(), seed=0)
    item = dataset[0]
    assert set(item) == {"images", "guidance", "instances"}
    assert item["images"].shape == (3, 64, 64) and item["guidance"].shape == (2, 64, 64)
    gt = item["instances"][0].numpy()
    assert (gt == 1).any() and set(np.unique(gt)) <= {-1, 0, 1}
    # the object's box sits in the crop with equal relax margins on opposite sides
    ys, xs = np.nonzero(gt == 1)
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < 63 and xs.max() < 63
    assert abs(ys.min() - (63 - ys.max())) <= 2 and abs(xs.min() - (63 - xs.max())) <= 2
    inside, corners = mask_points(gt == 1)
    guidance = item["guidance"].numpy()
    assert guidance[0].max() == pytest.approx(255, abs=1e-3) and guidance[0][inside] == pytest.approx(255, abs=1e-3)
    assert all(guidance[1][min(y, 63), min(x, 63)] > 100 for y, x in corners)
    if data == "voc":
        assert any((dataset[i]["instances"] == -1).any() for i in range(2))  # the void band survives the crop
    np.testing.assert_allclose(guidance, mask_guidance(gt == 1), atol=1e-3)  # the heatmaps of the item's own target
