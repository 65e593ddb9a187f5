"""Evaluation-set loaders: real GrabCut/DAVIS when present, every layout on small files in its real format."""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat, savemat

from iseg.data.eval import (
    EVALUATION_SETS,
    BerkeleyDataset,
    CocoMValDataset,
    DatasetLayoutError,
    DavisDataset,
    EvalSample,
    FolderDataset,
    GrabCutDataset,
    PascalVOCDataset,
    SBDEvaluationDataset,
    build_evaluation_dataset,
)
from iseg.data.eval import instance_cache
from tests.conftest import require_shared_dataset
from tests.protocol_helpers import evaluate_pairs

# ----------------------------------------------------------------------------- helpers


def write_image(path: Path, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Write a random BGR image (lossless for .png/.bmp) and return it as RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), bgr)
    return bgr[:, :, ::-1]


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


def band_mask(h: int, w: int) -> np.ndarray:
    """GrabCut-style mask: object 255 in the middle, 128 band around it, 0 elsewhere."""
    mask = np.zeros((h, w), np.uint8)
    mask[2:-2, 2:-2] = 128
    mask[4:-4, 4:-4] = 255
    return mask


def band_gt(h: int, w: int) -> np.ndarray:
    """The GT ``band_mask`` must decode to: 255 -> 1, 128 -> -1."""
    mask = band_mask(h, w)
    return np.where(mask == 255, 1, np.where(mask == 128, -1, 0)).astype(np.int8)


# ----------------------------------------------------------------------------- real data


def test_grabcut_real_order_count_and_ignore_decoding() -> None:
    root = require_shared_dataset("GrabCut")
    ds = build_evaluation_dataset("grabcut", str(root))
    assert isinstance(ds, GrabCutDataset)
    assert len(ds) == 50 and ds.exclusions == []
    assert ds.names[0] == "106024.jpg" and ds.names[-1] == "tennis.jpg"
    assert ds.names == sorted(ds.names)
    index = ds.names.index("124080.jpg")
    sample = ds[index]
    assert sample.name == "124080.jpg"
    assert sample.image.dtype == np.uint8 and sample.image.shape == (321, 481, 3)
    bgr = cv2.imread(str(root / "data_GT" / "124080.jpg"))
    np.testing.assert_array_equal(sample.image, bgr[:, :, ::-1])
    raw = cv2.imread(str(root / "boundary_GT" / "124080.bmp"))[:, :, 0]
    assert sample.gt.dtype == np.int8 and set(np.unique(sample.gt).tolist()) == {-1, 0, 1}
    assert int((sample.gt == -1).sum()) == 2503 and int((sample.gt == 1).sum()) == 66259
    np.testing.assert_array_equal(sample.gt == -1, raw == 128)
    np.testing.assert_array_equal(sample.gt == 1, raw > 128)
    assert ds[-1].name == "tennis.jpg"


def test_davis_real_count_and_shapes() -> None:
    root = require_shared_dataset("DAVIS")
    ds = build_evaluation_dataset("davis", str(root))
    assert len(ds) == 345 and ds.exclusions == []
    assert ds.names[0] == "000.jpg" and ds.names == sorted(ds.names)
    for index in (0, 344):
        sample = ds[index]
        assert sample.image.shape[:2] == sample.gt.shape and sample.image.shape[2] == 3
        assert set(np.unique(sample.gt).tolist()) == {0, 1}
    raw = cv2.imread(str(root / "gt" / "000.png"))
    np.testing.assert_array_equal(ds[0].gt, (raw.max(axis=2) > 0).astype(np.int8))


# ----------------------------------------------------------------------------- GrabCut / Berkeley


def make_grabcut(root: Path) -> dict[str, np.ndarray]:
    images = {
        "b.png": write_image(root / "data_GT" / "b.png", 12, 16, seed=1),
        "a.bmp": write_image(root / "data_GT" / "a.bmp", 12, 16, seed=2),
        "c.png": write_image(root / "data_GT" / "c.png", 10, 10, seed=3),
    }
    write_mask(root / "boundary_GT" / "b.bmp", band_mask(12, 16))
    quirk = np.zeros((12, 16), np.uint8)
    quirk[0, :4] = [1, 50, 128, 129]  # 1 and >128 are object, 128 ignore, 50 background
    write_mask(root / "boundary_GT" / "a.png", quirk)
    write_mask(root / "boundary_GT" / "c.bmp", np.zeros((10, 10), np.uint8))  # empty object
    write_mask(root / "boundary_GT" / "orphan.bmp", band_mask(12, 16))
    return images


def test_grabcut_layout_values_order_and_exclusions(tmp_path: Path) -> None:
    images = make_grabcut(tmp_path)
    ds = GrabCutDataset(tmp_path)
    assert ds.names == ["a.bmp", "b.png"]
    assert ds.exclusions == [
        ("mask orphan.bmp", f"no image with stem 'orphan' in {tmp_path / 'data_GT'}"),
        (
            "c.png",
            f"empty ground truth: {tmp_path / 'boundary_GT' / 'c.bmp'} "
            "has no object pixel (value 1 or > 128 in channel 0)",
        ),
    ]
    a, b = ds[0], ds[1]
    assert isinstance(a, EvalSample)
    np.testing.assert_array_equal(a.image, images["a.bmp"])
    assert a.gt[0, :4].tolist() == [1, 0, -1, 1] and int(np.abs(a.gt).sum()) == 3
    np.testing.assert_array_equal(b.gt, band_gt(12, 16))
    assert [s.name for s in ds] == ds.names
    pairs = list(ds.pairs())
    assert len(pairs) == 2 and pairs[1][1].dtype == np.int8


def test_grabcut_unchecked_masks_raise_on_empty_gt(tmp_path: Path) -> None:
    make_grabcut(tmp_path)
    ds = GrabCutDataset(tmp_path, check_masks=False)
    assert ds.names == ["a.bmp", "b.png", "c.png"]
    with pytest.raises(ValueError, match=r"'c.png' has an empty ground truth .*c\.bmp"):
        ds[2]
    with pytest.raises(IndexError, match="out of range for 3 samples"):
        ds[3]


def test_grabcut_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as info:
        GrabCutDataset(tmp_path / "missing")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "root folder" in message and "|-- data_GT/" in message and "`-- boundary_GT/" in message

    (tmp_path / "data_GT").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"not found: .*boundary_GT\. Expected layout:\n"):
        GrabCutDataset(tmp_path)

    write_image(tmp_path / "data_GT" / "x.jpg", 12, 12)
    (tmp_path / "boundary_GT").mkdir()
    with pytest.raises(FileNotFoundError, match=r"image .*x\.jpg has no mask: expected .*boundary_GT/x\.<ext>"):
        GrabCutDataset(tmp_path)

    write_mask(tmp_path / "boundary_GT" / "x.bmp", band_mask(12, 13))
    with pytest.raises(ValueError, match=r"mask .*x\.bmp is 12x13 \(HxW\) but image .*x\.jpg is 12x12"):
        GrabCutDataset(tmp_path)[0]

    write_mask(tmp_path / "boundary_GT" / "x.png", band_mask(12, 12))
    with pytest.raises(ValueError, match=r"share the stem 'x'"):
        GrabCutDataset(tmp_path)
    (tmp_path / "boundary_GT" / "x.bmp").unlink()

    (tmp_path / "data_GT" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"x\.jpg: cannot read image .*x\.jpg: not an image file"):
        GrabCutDataset(tmp_path)  # checked at start-up
    with pytest.raises(ValueError, match=r"cannot read image .*x\.jpg"):
        GrabCutDataset(tmp_path, check_files="off")[0]  # unchecked: found when read

    write_image(tmp_path / "data_GT" / "x.jpg", 12, 12)
    (tmp_path / "boundary_GT" / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"cannot read mask .*x\.png"):
        GrabCutDataset(tmp_path)


def test_berkeley_variants(tmp_path: Path) -> None:
    for images_dir, masks_dir in (("images", "masks"), ("images-f-BRS/test", "masks-f-BRS/test")):
        write_image(tmp_path / images_dir / "42049.jpg", 12, 12)
        write_mask(tmp_path / masks_dir / "42049.png", band_mask(12, 12))
    assert BerkeleyDataset(tmp_path).entries[0].image_path == tmp_path / "images" / "42049.jpg"
    fcfi = build_evaluation_dataset("berkeley", tmp_path, variant="fcfi")
    assert fcfi.entries[0].mask_path == tmp_path / "masks-f-BRS" / "test" / "42049.png"
    np.testing.assert_array_equal(fcfi[0].gt, band_gt(12, 12))
    with pytest.raises(ValueError, match=r"variant must be one of \['fcfi', 'ritm'\], got 'x'"):
        BerkeleyDataset(tmp_path, variant="x")
    with pytest.raises(DatasetLayoutError, match="masks-f-BRS/test/"):
        BerkeleyDataset(tmp_path / "images", variant="fcfi")


# ----------------------------------------------------------------------------- DAVIS / COCO_MVal


@pytest.mark.parametrize("name,cls", [("davis", DavisDataset), ("coco_mval", CocoMValDataset)])
def test_davis_layout_union_of_colours(tmp_path: Path, name: str, cls: type) -> None:
    image = write_image(tmp_path / "img" / "001.png", 6, 7)
    mask = np.zeros((6, 7, 3), np.uint8)
    mask[0, 0] = (0, 0, 128)  # one object in the red channel (BGR order on disk)
    mask[5, 6] = (0, 128, 0)  # another in green
    mask[2, 3] = (1, 0, 0)
    write_mask(tmp_path / "gt" / "001.png", mask)
    write_image(tmp_path / "img" / "000.png", 6, 7)
    write_mask(tmp_path / "gt" / "000.png", np.zeros((6, 7), np.uint8))
    ds = build_evaluation_dataset(name, tmp_path)
    assert type(ds) is cls and ds.names == ["001.png"]
    assert ds.exclusions == [("000.png", f"empty ground truth: {tmp_path / 'gt' / '000.png'} has no non-zero pixel")]
    sample = ds[0]
    np.testing.assert_array_equal(sample.image, image)
    assert sample.gt.dtype == np.int8 and sorted(zip(*np.nonzero(sample.gt))) == [(0, 0), (2, 3), (5, 6)]
    with pytest.raises(DatasetLayoutError, match=r"\|-- img/ .*\n.*`-- gt/"):
        cls(tmp_path / "gt")


# ----------------------------------------------------------------------------- SBD


def write_sbd_mat(path: Path, segmentation: np.ndarray) -> None:
    """An SBD-style instance file: a GTinst struct with Segmentation, Boundaries, Categories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = [int(v) for v in np.unique(segmentation) if v != 0]
    boundaries = np.empty((len(ids), 1), dtype=object)
    for i in range(len(ids)):
        boundaries[i, 0] = np.zeros(segmentation.shape, np.uint8)
    categories = np.full((len(ids), 1), 15, np.uint8)
    gtinst = {"Segmentation": segmentation, "Boundaries": boundaries, "Categories": categories}
    savemat(str(path), {"GTinst": gtinst})


def make_sbd(root: Path) -> None:
    seg_b = np.zeros((8, 9), np.uint8)
    seg_b[1:3, 1:3] = 3
    seg_b[5:7, 5:8] = 1
    write_sbd_mat(root / "inst" / "2008_b.mat", seg_b)
    seg_a = np.zeros((8, 9), np.uint8)
    seg_a[0:4, 0:4] = 2
    write_sbd_mat(root / "inst" / "2008_a.mat", seg_a)
    write_sbd_mat(root / "inst" / "2008_e.mat", np.zeros((8, 9), np.uint8))
    for seed, name in enumerate(("2008_a", "2008_b", "2008_e")):
        write_image(root / "img" / f"{name}.jpg", 8, 9, seed)
    (root / "val.txt").write_text("2008_b\n2008_e\n2008_a\n")


def test_sbd_mat_matches_the_reference_indexing(tmp_path: Path) -> None:
    seg = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_sbd_mat(tmp_path / "x.mat", seg)
    loaded = loadmat(str(tmp_path / "x.mat"))["GTinst"][0][0][0]
    np.testing.assert_array_equal(loaded, seg)


def test_sbd_instances_order_cache_and_exclusions(tmp_path: Path) -> None:
    root = tmp_path / "sbd"
    make_sbd(root)
    ds = build_evaluation_dataset("sbd", root, cache_dir=tmp_path / "cache")
    assert isinstance(ds, SBDEvaluationDataset)
    assert ds.names == ["2008_b#1", "2008_b#3", "2008_a#2"]
    assert ds.exclusions == [("2008_e", f"no instance in {root / 'inst' / '2008_e.mat'}")]
    gt = ds[1].gt
    assert set(np.unique(gt).tolist()) == {0, 1} and list(zip(*np.nonzero(gt))) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert ds[1].image.shape == (8, 9, 3)
    # the reference's cache file, in its format, next to the data
    cache = root / "val_images_and_ids_list.pkl"
    assert ds.cache_file == cache
    with open(cache, "rb") as f:
        assert pickle.load(f) == [("2008_b", 1), ("2008_b", 3), ("2008_a", 2)]
    # reused: a new instance in a mask is not seen until the cache is removed
    seg = np.zeros((8, 9), np.uint8)
    seg[0:4, 0:4] = 2
    seg[6, 6] = 7
    write_sbd_mat(root / "inst" / "2008_a.mat", seg)
    assert SBDEvaluationDataset(root, cache_dir=tmp_path / "cache").names == ds.names
    cache.unlink()
    assert SBDEvaluationDataset(root, cache_dir=tmp_path / "cache").names[-1] == "2008_a#7"


def test_sbd_read_only_root_and_invalid_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "sbd"
    make_sbd(root)
    mkstemp = tempfile.mkstemp

    def read_only_root(*args, dir=None, **kwargs):  # noqa: A002 - mirrors tempfile's keyword
        if Path(dir) == root:
            raise PermissionError(13, "Read-only file system", str(root))
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(instance_cache.tempfile, "mkstemp", read_only_root)
    ds = SBDEvaluationDataset(root, cache_dir=tmp_path / "cache")
    assert not (root / "val_images_and_ids_list.pkl").exists()
    assert ds.cache_file is not None and ds.cache_file.parent == tmp_path / "cache"
    assert SBDEvaluationDataset(root, cache_dir=tmp_path / "cache").cache_file == ds.cache_file
    monkeypatch.undo()

    # an invalid root cache: warned about, not used, not overwritten
    (root / "val_images_and_ids_list.pkl").write_bytes(pickle.dumps([("2008_zz", 1)]))
    with pytest.warns(UserWarning, match=r"ignoring invalid instance list cache .*'2008_zz' is not in the split file"):
        again = SBDEvaluationDataset(root, cache_dir=tmp_path / "cache")
    assert again.names == ds.names and again.cache_file == ds.cache_file
    assert pickle.loads((root / "val_images_and_ids_list.pkl").read_bytes()) == [("2008_zz", 1)]
    # a pickle that would run code is refused
    (root / "val_images_and_ids_list.pkl").write_bytes(pickle.dumps(Path("x")))
    with pytest.warns(UserWarning, match=r"refusing to load pathlib"):
        SBDEvaluationDataset(root, cache_dir=tmp_path / "cache")


def test_sbd_errors(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"(?s)not found: .*inst.*val\.txt\. Expected layout:.*GTinst"):
        SBDEvaluationDataset(tmp_path)
    make_sbd(tmp_path)
    (tmp_path / "val.txt").write_text("2008_b\n2008_missing\n")
    with pytest.raises(FileNotFoundError, match=r"img/2008_missing\.jpg \(listed in .*val\.txt\) not found"):
        SBDEvaluationDataset(tmp_path, cache_dir=tmp_path / "cache")
    savemat(str(tmp_path / "inst" / "2008_b.mat"), {"other": np.zeros((2, 2))})
    (tmp_path / "val.txt").write_text("2008_b\n")
    with pytest.raises(ValueError, match=r"2008_b\.mat has no GTinst struct"):
        SBDEvaluationDataset(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="SBD split must be 'train' or 'val'"):
        SBDEvaluationDataset(tmp_path, split="test")


# ----------------------------------------------------------------------------- PascalVOC

VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 217) + [224, 224, 192] + [0] * (3 * 35)


def write_voc_object_png(path: Path, indices: np.ndarray) -> None:
    """A palette PNG like VOC's SegmentationObject (index 1 -> (128,0,0), 2 -> (0,128,0), 220 -> void colour)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(VOC_PALETTE)
    image.save(path)


def make_voc(root: Path) -> None:
    objects = np.zeros((7, 8), np.uint8)
    objects[1:3, 1:3] = 1  # gray 38
    objects[4:6, 4:7] = 2  # gray 75
    objects[0, :] = 220  # void colour -> gray 220
    write_voc_object_png(root / "SegmentationObject" / "2007_000033.png", objects)
    single = np.zeros((7, 8), np.uint8)
    single[3, 3] = 2
    write_voc_object_png(root / "SegmentationObject" / "2007_000032.png", single)
    write_voc_object_png(root / "SegmentationObject" / "2007_000039.png", np.full((7, 8), 220, np.uint8))
    for seed, name in enumerate(("2007_000032", "2007_000033", "2007_000039")):
        write_image(root / "JPEGImages" / f"{name}.jpg", 7, 8, seed)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n2007_000032\n2007_000039\n")


def test_pascalvoc_from_val_list_gray_ids_and_boundary(tmp_path: Path) -> None:
    make_voc(tmp_path)
    ds = build_evaluation_dataset("pascalvoc", tmp_path, cache_dir=tmp_path / "cache")
    assert isinstance(ds, PascalVOCDataset) and ds.split == "test"
    assert ds.names == ["2007_000033#38", "2007_000033#75", "2007_000032#75"]
    assert ds.exclusions == [("2007_000039", f"no instance in {tmp_path / 'SegmentationObject' / '2007_000039.png'}")]
    gt = ds[1].gt
    assert (gt[0] == -1).all() and int((gt == 1).sum()) == 6 and int((gt == -1).sum()) == 8
    assert gt[4:6, 4:7].tolist() == [[1] * 3] * 2
    # our own list cache never goes into the dataset root
    assert ds.cache_file is not None and ds.cache_file.parent == tmp_path / "cache"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ImageSets", "JPEGImages", "SegmentationObject", "cache"]


def test_pascalvoc_test_pickle_order_and_missing_instance(tmp_path: Path) -> None:
    make_voc(tmp_path)
    names, ids = ["2007_000032", "2007_000033", "2007_000033"], [75, 75, 113]
    (tmp_path / "ImageSets" / "Segmentation" / "test.pickle").write_bytes(pickle.dumps((names, np.array(ids))))
    ds = PascalVOCDataset(tmp_path, cache_dir=tmp_path / "cache")
    assert ds.names == ["2007_000032#75", "2007_000033#75"]
    assert ds.exclusions == [
        ("2007_000033#113", f"empty ground truth: {tmp_path / 'SegmentationObject' / '2007_000033.png'} has no "
         "pixel of that gray value (SegmentationObject, ignore 220)")
    ]
    assert ds.cache_file is None and not (tmp_path / "cache").exists()
    (tmp_path / "ImageSets" / "Segmentation" / "test.pickle").write_bytes(pickle.dumps((names, ids[:2])))
    with pytest.raises(ValueError, match=r"invalid .*test\.pickle: expected a \(sample names, instance ids\) pair"):
        PascalVOCDataset(tmp_path)


def test_pascalvoc_fcfi_variant(tmp_path: Path) -> None:
    labels = np.zeros((7, 8), np.uint8)
    labels[1:3, 1:3] = 1
    labels[4:6, 4:7] = 2
    labels[3, :] = 255
    write_mask(tmp_path / "SegmentationObjectLabel" / "2007_000033.png", labels)
    write_image(tmp_path / "JPEGImages" / "2007_000033.jpg", 7, 8)
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n")
    ds = PascalVOCDataset(tmp_path, variant="fcfi", cache_dir=tmp_path / "cache")
    assert ds.split == "val" and ds.names == ["2007_000033#1", "2007_000033#2"]
    assert ds.cache_file == tmp_path / "val_images_and_ids_list.pkl"
    gt = ds[0].gt
    assert (gt[3] == -1).all() and int((gt == 1).sum()) == 4 and int((gt == -1).sum()) == 8
    with pytest.raises(ValueError, match=r"variant 'fcfi' supports splits \['val', 'train', 'trainval'\], got 'test'"):
        PascalVOCDataset(tmp_path, split="test", variant="fcfi")
    with pytest.raises(DatasetLayoutError, match=r"SegmentationObject/ .*ignore value 220"):
        PascalVOCDataset(tmp_path)


# ----------------------------------------------------------------------------- generic folder


def test_folder_binary_and_instances(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "cat.jpg", 6, 6)
    write_image(tmp_path / "images" / "blank.png", 6, 6)
    instances = np.zeros((6, 6), np.uint8)
    instances[0, 0], instances[1, 1], instances[2, 2] = 7, 3, 255
    write_mask(tmp_path / "masks" / "cat.png", instances)
    write_mask(tmp_path / "masks" / "blank.png", np.zeros((6, 6), np.uint8))

    binary = build_evaluation_dataset("folder", tmp_path)
    assert isinstance(binary, FolderDataset) and binary.names == ["cat.jpg"]
    assert binary.exclusions[0][0] == "blank.png" and "has no object pixel" in binary.exclusions[0][1]
    assert sorted(zip(*np.nonzero(binary[0].gt))) == [(0, 0), (1, 1), (2, 2)]

    inst = FolderDataset(tmp_path, mask_mode="instances")
    assert inst.names == ["cat.jpg#3", "cat.jpg#7"]
    assert inst.exclusions == [("blank.png", f"no instance in {tmp_path / 'masks' / 'blank.png'}")]
    gt = inst[0].gt
    assert gt[1, 1] == 1 and gt[2, 2] == -1 and gt[0, 0] == 0 and int(np.abs(gt).sum()) == 2
    no_ignore = FolderDataset(tmp_path, mask_mode="instances", ignore_value=None)
    assert no_ignore.names == ["cat.jpg#3", "cat.jpg#7", "cat.jpg#255"]

    colour = np.zeros((6, 6, 3), np.uint8)
    colour[0, 0] = (0, 0, 9)
    write_mask(tmp_path / "masks" / "cat.png", colour)
    with pytest.raises(ValueError, match=r"mask .*cat\.png has 3 channels with different values"):
        FolderDataset(tmp_path)
    with pytest.raises(ValueError, match="mask_mode must be one of"):
        FolderDataset(tmp_path, mask_mode="colour")
    with pytest.raises(DatasetLayoutError, match=r"\|-- images/ .*\n.*`-- masks/ .*255 ignore, each other value = one"):
        FolderDataset(tmp_path / "images", mask_mode="instances")


# ----------------------------------------------------------------------------- registry and protocol


def test_registry_names_and_errors(tmp_path: Path) -> None:
    expected = ["grabcut", "berkeley", "davis", "coco_mval", "sbd", "pascalvoc", "folder"]
    assert sorted(EVALUATION_SETS) == sorted(expected)
    with pytest.raises(ValueError, match="unknown evaluation set 'voc'; known: grabcut, berkeley"):
        build_evaluation_dataset("voc", tmp_path)
    with pytest.raises(TypeError, match=r"'davis' \(DavisDataset\): bad options \['split'\]"):
        build_evaluation_dataset("DAVIS", tmp_path, split="val")


def test_pairs_feed_the_protocol(tmp_path: Path) -> None:
    make_grabcut(tmp_path)
    ds = GrabCutDataset(tmp_path)

    def make_predict(image: np.ndarray):
        truth = next(s.gt for s in ds if np.array_equal(s.image, image))
        return lambda clicks: (truth == 1).astype(np.float32)

    result = evaluate_pairs(ds.pairs(), make_predict)
    assert len(result.samples) == 2 and all(s.ious.tolist() == [1.0] for s in result.samples)
