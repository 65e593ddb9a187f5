"""COCO+LVIS training data: the preprocessed layout, the raw COCO 2017 + LVIS v1 conversion, the data module."""

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
from hydra.utils import instantiate

import iseg.data.coco_lvis_conversion as conversion
from iseg.data.coco_lvis import CocoLvisSource, decode_mask_layers
from iseg.data.coco_lvis_datamodule import CocoLvisDataModule
from iseg.data.interactive_dataset import InteractiveDataset
from iseg.data.coco_lvis_masks import box_iou, build_hierarchy, encode_layers, merge_instances, stuff_remainders
from iseg.data.eval.layout import DatasetLayoutError
from iseg.data.transforms import coco_lvis_train_augmentator, coco_lvis_val_augmentator
from iseg.interaction.sampler import MultiPointSampler
from tests.cocolvis_files import (
    RAW_SIZE,
    rect_mask,
    write_noise_jpeg,
    write_preprocessed_cocolvis,
    write_raw_coco_lvis,
)
from tests.conftest import ROOT, compose_train_config

SAMPLER = MultiPointSampler(max_num_points=24, prob_gamma=0.8, merge_objects_prob=0.15)


def _source(root: Path, **kwargs) -> CocoLvisSource:
    return CocoLvisSource(root, **kwargs)


def _object_masks(sample) -> dict[int, np.ndarray]:
    return {obj_id: sample.get_object_mask(obj_id) == 1 for obj_id in sample.objects}


# ---------------------------------------------------------------------- preprocessed layout
def test_layered_masks_hierarchy_and_stuff_zeroed(tmp_path):
    written = write_preprocessed_cocolvis(tmp_path, splits=("train",))
    source = _source(tmp_path, split="train", stuff_prob=0.0)
    assert len(source) == 2
    sample = source.get_sample(0, np.random.default_rng(0))
    whole, part, other, stuff = written["train"]["train_0"]
    assert sample.masks.shape[2] == 2, "the part overlaps the whole: two layers"
    masks = _object_masks(sample)
    assert set(masks) == {0, 1, 2}
    for obj_id, expected in enumerate([whole, part, other]):
        np.testing.assert_array_equal(masks[obj_id], expected)
    assert sorted(sample.root_objects) == [0, 2]
    assert sample.objects[1].parent == 0 and sample.objects[0].children == [1]
    assert sample.background_mask[stuff].all(), "stuff pixels are background when stuff is not drawn"
    assert source.sample_object_ids(0) == [0, 1, 2]


def test_stuff_becomes_a_root_object_with_stuff_prob_one(tmp_path):
    written = write_preprocessed_cocolvis(tmp_path, splits=("train",))
    source = _source(tmp_path, stuff_prob=1.0)
    sample = source.get_sample(1, np.random.default_rng(0))
    assert set(sample.objects) == {0, 1, 2, 3} and sorted(sample.root_objects) == [0, 2, 3]
    np.testing.assert_array_equal(sample.get_object_mask(3) == 1, written["train"]["train_1"][3])
    # without a generator (the evaluation view) nothing is drawn: stuff stays background
    assert set(source.get_sample(1).objects) == {0, 1, 2} and source.sample_object_ids(1) == [0, 1, 2]


def test_stuff_is_drawn_from_the_datasets_generator(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",))
    source = _source(tmp_path, stuff_prob=0.5)
    rng = np.random.default_rng(1)
    assert np.mean([3 in source.get_sample(0, rng).objects for _ in range(400)]) == pytest.approx(0.5, abs=0.1)
    dataset = InteractiveDataset(source, SAMPLER, seed=0)
    draws = []
    for _ in range(2):
        dataset.seed(7)
        draws.append([sorted(source.get_sample(0, dataset.rng).objects) for _ in range(20)])
    assert draws[0] == draws[1] and len({len(d) for d in draws[0]}) == 2, "the dataset's seed fixes the stuff draws"


def test_items_drop_small_objects_after_augmentation(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",))
    dataset = InteractiveDataset(_source(tmp_path), SAMPLER, coco_lvis_train_augmentator((48, 64)), min_object_area=1000,
                                 epoch_len=6, seed=0)
    for k in range(len(dataset)):
        item = dataset[k]
        assert item["images"].shape == (3, 48, 64) and item["points"].shape == (48, 3)
        area = int((item["instances"] == 1).sum())
        assert area == 0 or area >= 1000, "a target under min_object_area must not survive"


def test_allow_list_keeps_the_listed_images(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",), num_images=3)
    (tmp_path / "train" / "allow.json").write_text('["train_2", "train_0"]')
    source = _source(tmp_path, allow_list="allow.json")
    assert [image_id for image_id, _ in source.samples] == ["train_0", "train_2"]


def test_images_can_be_read_from_another_folder(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",))
    (tmp_path / "train" / "images").rename(tmp_path / "train2017")
    with pytest.raises(DatasetLayoutError, match=r"train/images"):
        _source(tmp_path)
    assert _source(tmp_path, images_dir="{split}2017").get_sample(0).image.shape == (64, 96, 3)


def test_missing_root_shows_the_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"(?s)not found.*train/images/.*train/masks/.*hannotation\.pickle"):
        _source(tmp_path / "nowhere")


def test_corrupt_annotation_names_the_file(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",))
    (tmp_path / "train" / "hannotation.pickle").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="hannotation.pickle cannot be read"):
        _source(tmp_path)


def test_corrupt_mask_pickle_names_the_file(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",))
    (tmp_path / "train" / "masks" / "train_1.pickle").write_bytes(b"\x80\x04garbage")
    source = _source(tmp_path)
    with pytest.raises(ValueError, match=r"masks/train_1\.pickle"):
        source.get_sample(1)


def test_annotated_image_without_file_is_an_error(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",))
    (tmp_path / "train" / "images" / "train_1.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of the 2 images .* missing: .*train_1\.jpg"):
        _source(tmp_path)


def test_mask_of_another_size_names_both_files(tmp_path):
    write_preprocessed_cocolvis(tmp_path, splits=("train",))
    write_noise_jpeg(tmp_path / "train" / "images" / "train_0.jpg", (32, 48))
    with pytest.raises(ValueError, match=r"(?s)train_0\.pickle.*\(64, 96\).*train_0\.jpg.*\(32, 48\)"):
        _source(tmp_path).get_sample(0)


def test_datamodule_batch_from_the_preprocessed_layout(tmp_path):
    write_preprocessed_cocolvis(tmp_path)
    crop = (48, 64)

    def factory(split, augmentation):
        source = functools.partial(CocoLvisSource, split=split)
        return functools.partial(InteractiveDataset, source=source, sampler=SAMPLER, augmentation=augmentation, epoch_len=4)

    module = CocoLvisDataModule(
        tmp_path,
        factory("train", coco_lvis_train_augmentator(crop)),
        factory("val", coco_lvis_val_augmentator(crop)),
        batch_size=2,
        seed=0,
    )
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["images"].shape == (2, 3, *crop) and batch["instances"].shape == (2, 1, *crop)
    assert module.val_dataset.source.split == "val" and module.protocol_samples(2)[0][2] == "val/val_0#0"


# ---------------------------------------------------------------------- the merge rules
def test_box_iou_is_the_product_of_interval_ious():
    assert box_iou((0, 9, 0, 9), (0, 9, 0, 9)) == 1.0
    assert box_iou((0, 9, 0, 9), (5, 14, 0, 9)) == pytest.approx(5 / 15)
    assert box_iou((0, 9, 0, 9), (5, 14, 5, 14)) == pytest.approx((5 / 15) ** 2)  # area IoU would be 25/175


def test_merge_rules_on_single_masks():
    size = (40, 40)
    coco = rect_mask(size, (0, 20, 0, 20))
    lvis_same = rect_mask(size, (0, 20, 0, 19))
    lvis_other = rect_mask(size, (25, 40, 25, 40))
    kept_coco, kept_lvis = merge_instances([coco], [lvis_same, lvis_other])
    assert kept_coco == [] and len(kept_lvis) == 2, "a COCO mask duplicated by LVIS is dropped"
    # LVIS vs LVIS needs mask IoU > 0.85: 0.8 keeps both, 0.95 keeps only the later one
    a, b = rect_mask(size, (0, 20, 0, 20)), rect_mask(size, (0, 20, 0, 16))
    assert len(merge_instances([], [a, b])[1]) == 2
    c = rect_mask(size, (0, 20, 0, 19))
    kept = merge_instances([], [a, c])[1]
    assert len(kept) == 1 and kept[0] is c


def test_hierarchy_attaches_to_the_deepest_container():
    size = (60, 60)
    big, mid, small = rect_mask(size, (0, 50, 0, 50)), rect_mask(size, (5, 30, 5, 30)), rect_mask(size, (10, 20, 10, 20))
    apart = rect_mask(size, (52, 60, 52, 60))
    hierarchy = build_hierarchy([small, apart, big, mid])
    assert hierarchy[2] == {"children": [3], "parent": None, "node_level": 0}
    assert hierarchy[3] == {"children": [0], "parent": 2, "node_level": 1}
    assert hierarchy[0] == {"children": [], "parent": 3, "node_level": 2}
    assert hierarchy[1] is None


def test_stuff_minus_instances_and_layer_limit():
    size = (40, 40)
    stuff = [rect_mask(size, (0, 40, 0, 20)), rect_mask(size, (0, 40, 20, 30))]
    instance = rect_mask(size, (0, 40, 0, 5))
    remainders = stuff_remainders(stuff, [instance])
    assert len(remainders) == 1 and remainders[0].sum() == 40 * 15  # the other: 40x10 = 400 <= 500, dropped
    dots = []
    for k in range(256):  # 256 disjoint objects: a layer holds at most 255
        dot = np.zeros((16, 16), bool)
        dot.flat[k] = True
        dots.append(dot)
    layers, mapping = decode_mask_layers(encode_layers(dots), Path("dots"))
    assert layers.shape[2] == 2 and sorted({layer for layer, _ in mapping}) == [0, 1]
    for dot, (layer, value) in zip(dots, mapping):
        np.testing.assert_array_equal(layers[:, :, layer] == value, dot)


# ---------------------------------------------------------------------- raw conversion
def _converted(root: Path, split: str = "train") -> tuple[dict, dict[str, list[np.ndarray]]]:
    with open(root / split / "hannotation.pickle", "rb") as f:
        annotation = pickle.load(f)
    masks = {}
    for image_id in annotation:
        path = root / split / "masks" / f"{image_id}.pickle"
        with open(path, "rb") as f:
            layers, mapping = decode_mask_layers(pickle.load(f), path)
        masks[image_id] = [layers[:, :, layer] == value for layer, value in mapping]
    return annotation, masks


@pytest.mark.parametrize("form", ["panoptic", "instances"])
def test_conversion_applies_the_reference_rules(tmp_path, form):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=(form,))
    counts = conversion.ensure_converted(tmp_path / "out", files.coco_root, files.lvis_root, coco_form=form)
    annotation, masks = _converted(tmp_path / "out")
    assert sorted(annotation) == ["000000000001", "000000000002"]
    drawn = files.masks[1]
    # COCO t1 duplicates LVIS l1, LVIS l2 duplicates the later l3, t3 is under 80 px
    expected = [drawn[k] for k in ("t2_crowd", "l1", "l3", "l4_part", "l5_subpart", "l6")]
    entry = annotation["000000000001"]
    assert entry["num_instance_masks"] == 6
    for got, want in zip(masks["000000000001"], expected):
        np.testing.assert_array_equal(got, want)
    hierarchy = entry["hierarchy"]
    assert hierarchy[1]["children"] == [3] and hierarchy[3]["parent"] == 1, "l4 is a part of l1"
    assert hierarchy[4]["parent"] == 3 and hierarchy[4]["node_level"] == 2, "l5 goes under the deepest container"
    assert all(hierarchy[k] is None for k in (0, 2, 5))
    stuff = masks["000000000001"][6:]
    assert len(stuff) == 1, "s2 is under 500 px; COCO-Stuff's 'other' is no stuff region"
    np.testing.assert_array_equal(stuff[0], drawn["s1"] & ~np.logical_or.reduce(expected))
    assert annotation["000000000002"]["num_instance_masks"] == 1 and len(masks["000000000002"]) == 1
    train = counts["train"]
    assert (train["lvis_images_not_in_coco_split"], train["images_without_instances"]) == (1, 1)
    assert (train["coco_duplicates"], train["lvis_duplicates"], train["small_masks"]) == (1, 1, 3)
    assert os.path.islink(tmp_path / "out" / "train" / "images" / "000000000001.jpg")
    sample = _source(tmp_path / "out", stuff_prob=1.0).get_sample(0, np.random.default_rng(0))
    assert sample.image.shape[:2] == RAW_SIZE and len(sample.objects) == 7


def test_instances_form_without_stuff_file_has_no_stuff(tmp_path):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("instances",), with_stuff_json=False)
    conversion.ensure_converted(tmp_path / "out", files.coco_root, files.lvis_root, splits=("val",))
    annotation, masks = _converted(tmp_path / "out", "val")
    assert annotation["000000000005"]["num_instance_masks"] == 2 and len(masks["000000000005"]) == 2


def test_conversion_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("panoptic",))
    out = tmp_path / "out"
    first = conversion.ensure_converted(out, files.coco_root, files.lvis_root)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached conversion should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(conversion, "convert_split", must_not_run)
        assert conversion.ensure_converted(out, files.coco_root, files.lvis_root) == first
        lvis_json = files.lvis_root / "lvis_v1_val.json"
        lvis_json.write_text(lvis_json.read_text().replace('"annotations": [', '"annotations": [ '))
        with pytest.raises(AssertionError, match="should have been reused"):
            conversion.ensure_converted(out, files.coco_root, files.lvis_root)
    conversion.ensure_converted(out, files.coco_root, files.lvis_root, splits=("val",))
    assert sorted(p.name for p in out.iterdir()) == [".cocolvis-conversion.lock", "train", "val"]


def test_a_failed_conversion_leaves_no_half_written_split(tmp_path, monkeypatch):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("panoptic",))
    out = tmp_path / "out"

    def crash(raw):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:
        patch.setattr(conversion, "convert_image", crash)
        with pytest.raises(KeyboardInterrupt):
            conversion.ensure_converted(out, files.coco_root, files.lvis_root, splits=("train",))
    assert not (out / "train").exists()
    conversion.ensure_converted(out, files.coco_root, files.lvis_root, splits=("train",))
    assert sorted(p.name for p in out.iterdir()) == [".cocolvis-conversion.lock", "train"], "stale partial removed"


def test_conversion_refuses_to_overwrite_a_foreign_split(tmp_path):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("panoptic",))
    write_preprocessed_cocolvis(tmp_path / "out", splits=("train",))
    with pytest.raises(FileExistsError, match="did not write"):
        conversion.ensure_converted(tmp_path / "out", files.coco_root, files.lvis_root, splits=("train",))


def test_raw_input_errors_name_the_file(tmp_path):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("panoptic",))
    with pytest.raises(DatasetLayoutError, match=r"(?s)panoptic_train2017\.json.*instances_train2017\.json"):
        conversion.ensure_converted(tmp_path / "out", tmp_path / "nowhere", files.lvis_root)
    (files.lvis_root / "lvis_v1_train.json").write_text('{"images": [')
    with pytest.raises(ValueError, match=r"lvis_v1_train\.json is not valid JSON"):
        conversion.ensure_converted(tmp_path / "out", files.coco_root, files.lvis_root)
    assert not (tmp_path / "out" / "train").exists()


def test_panoptic_png_of_another_size_names_it(tmp_path):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("panoptic",))
    png = files.coco_root / "annotations" / "panoptic_val2017" / "000000000005.png"
    cv2.imwrite(str(png), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"000000000005\.png is \(10, 10\)"):
        conversion.ensure_converted(tmp_path / "out", files.coco_root, files.lvis_root, splits=("val",))


def test_cocolvis_config_converts_raw_input(tmp_path):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("instances",))
    cfg = compose_train_config(tmp_path / "run", [
        "data=cocolvis", f"data.root={tmp_path / 'out'}", "data.source=raw",
        f"data.coco_root={files.coco_root}", f"data.lvis_root={files.lvis_root}",
    ], tiny=False)
    module = instantiate(cfg.data)
    assert isinstance(module, CocoLvisDataModule) and len(module.train_dataset.source) == 2
    assert len(module.val_dataset.source) == 1 and module.train_dataset.source.stuff_prob == 0.3
    assert module.conversion_counts["train"]["images"] == 2


def test_raw_source_needs_both_roots(tmp_path):
    with pytest.raises(ValueError, match="data.coco_root"):
        CocoLvisDataModule(tmp_path, None, None, source="raw", lvis_root=tmp_path)


# ---------------------------------------------------------------------- end to end
TRAIN_OVERRIDES = [
    "data=cocolvis", "data.batch_size=2", "data.num_workers=0", "data.persistent_workers=false",
    "data.train_dataset.epoch_len=2", "data.val_dataset.epoch_len=2",
    "data.train_dataset.augmentation.crop_size=[64,96]", "data.val_dataset.augmentation.crop_size=[64,96]",
    "data.train_dataset.min_object_area=20", "data.val_dataset.min_object_area=20",
    "model.protocol_samples=1", "model.protocol.max_clicks=2", "trainer=cpu", "trainer.fast_dev_run=true",
    "trainer.enable_progress_bar=false", "validate_before_training=false", "logger=csv", "~callbacks.model_summary",
]


def _train(tmp_path: Path, overrides: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "train.py", *TRAIN_OVERRIDES, *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_train_py_on_the_preprocessed_layout(tmp_path):
    write_preprocessed_cocolvis(tmp_path / "cocolvis")
    _train(tmp_path, [f"data.root={tmp_path / 'cocolvis'}"])


@pytest.mark.slow
def test_train_py_on_raw_coco_and_lvis(tmp_path):
    files = write_raw_coco_lvis(tmp_path / "raw", forms=("panoptic",))
    _train(tmp_path, [f"data.root={tmp_path / 'converted'}", "data.source=raw",
                      f"data.coco_root={files.coco_root}", f"data.lvis_root={files.lvis_root}"])
    assert (tmp_path / "converted" / "train" / "conversion.json").is_file()
