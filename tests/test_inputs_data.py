"""Bad data never costs a run: folder sets (training and evaluation) check their files at start-up,
report every problem in one error (or skip and list the samples), 255 means "ignore" in both, and
skipped samples appear in the evaluation results and table."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from iseg.data.eval import FolderDataset, GrabCutDataset, build_evaluation_dataset
from iseg.data.file_check import BadSamplesError, header_size
from iseg.data.folder import FolderSource
from iseg.evaluation.protocol import ProtocolConfig
from iseg.evaluation.report import write_reports
from iseg.evaluation.runner import evaluate_checkpoint
from tests.conftest import ROOT, compose_train_config
from tests.folder_files import write_folder_dataset
from tests.test_evaluate import DiskNet, make_folder_set, predictor_config
from tests.test_evaluation_sets import band_mask, write_image, write_mask
from tests.test_sbd_data import _TINY_SBD


def _break_three(root: Path, ext: str = ".png") -> dict[str, str]:
    """Damage three samples of a folder set: garbage image, truncated PNG image, mask of another size."""
    (root / "images" / f"img_000{ext}").write_bytes(b"<html>not an image</html>")
    data = (root / "images" / f"img_001{ext}").read_bytes()
    (root / "images" / f"img_001{ext}").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(root / "masks" / "img_002.png"), np.zeros((10, 12), np.uint8))
    return {"img_000": "not an image file", "img_001": "damaged or truncated", "img_002": "is 10x12 (HxW) but image"}


# ------------------------------------------------------------------------------ training folder


def test_training_folder_reports_every_bad_file_at_start_up(tmp_path, caplog):
    stems = write_folder_dataset(tmp_path, num_images=6)
    expected = _break_three(tmp_path)
    with pytest.raises(BadSamplesError) as info:
        FolderSource(tmp_path, split="all")
    message = str(info.value)
    assert "3 of 6 samples have unusable files (header check at start-up)" in message
    for stem, reason in expected.items():
        assert f"{stem}: " in message and reason in message, (stem, message)
    assert "skip_bad_samples=true" in message
    assert [name for name, _ in info.value.problems] == list(expected)

    with caplog.at_level(logging.WARNING, logger="iseg.data.file_check"):
        source = FolderSource(tmp_path, split="all", skip_bad_samples=True)
    assert source.names == stems[3:] and [name for name, _ in source.skipped] == list(expected)
    assert "3 of 6 samples have unusable files" in caplog.text and "left out" in caplog.text
    assert all(source.get_sample(i).name == name for i, name in enumerate(source.names))

    unchecked = FolderSource(tmp_path, split="all", check_files="off")  # found only when read
    assert len(unchecked) == 6
    with pytest.raises(ValueError, match="check_files must be one of"):
        FolderSource(tmp_path, split="all", check_files="full")


def test_training_config_fails_when_built_and_can_skip(tmp_path):
    root = tmp_path / "set"
    write_folder_dataset(root, num_images=8)
    _break_three(root)
    base = ["data=folder", f"data.root={root}", "data.train_dataset.source.val_fraction=0.25", *_TINY_SBD[:7]]
    with pytest.raises(Exception, match=r"3 of 8 samples have unusable files") as info:
        instantiate(compose_train_config(tmp_path, base, tiny=False).data)  # at start-up, not at the first batch
    message = str(info.value)  # train and val files in one error
    assert all(f"img_00{i}: cannot read image" in message for i in (0, 1)) and "img_002: mask " in message
    assert "data.train_dataset.source.skip_bad_samples=true" in message
    cfg = compose_train_config(tmp_path, [*base, "data.train_dataset.source.skip_bad_samples=true"], tiny=False)
    module = instantiate(cfg.data)
    kept = module.train_dataset.source.names + module.val_dataset.source.names
    assert sorted(kept) == [f"img_{i:03d}" for i in range(3, 8)]
    assert cfg.data.val_dataset.source.check_files == "header"


def test_decode_mode_and_exif_orientation(tmp_path):
    write_folder_dataset(tmp_path, num_images=2, image_size=(30, 40))
    assert len(FolderSource(tmp_path, split="all", check_files="decode")) == 2
    (tmp_path / "images" / "img_000.png").write_bytes(b"junk")
    with pytest.raises(BadSamplesError, match=r"full decode at start-up.*\n  img_000: cannot read image .*not an image"):
        FolderSource(tmp_path, split="all", check_files="decode")

    # a JPEG damaged past its header (Huffman tables zeroed): only the full decode finds it
    _, encoded = cv2.imencode(".jpg", np.full((30, 40, 3), 99, np.uint8))
    data = bytearray(encoded.tobytes())
    table = data.find(b"\xff\xc4")
    data[table + 4 : table + 30] = bytes(26)
    (tmp_path / "images" / "img_000.png").unlink()
    (tmp_path / "images" / "img_000.jpg").write_bytes(bytes(data))
    assert len(FolderSource(tmp_path, split="all")) == 2
    with pytest.raises(BadSamplesError, match=r"img_000: cannot read image .*img_000.jpg: not an image file"):
        FolderSource(tmp_path, split="all", check_files="decode")
    with pytest.raises(ValueError, match=r"cannot read image .*img_000.jpg.*found while training: check_files=decode"):
        FolderSource(tmp_path, split="all").get_sample(0)
    source = FolderSource(tmp_path, split="all", skip_bad_samples=True)
    assert source.get_sample(0).name == "img_001" and source.get_sample(0).name == "img_001"  # warned, then skipped

    # a JPEG whose EXIF says "rotate 90": OpenCV decodes it 40x30, so the 40x30 mask fits
    rotated = Image.fromarray(np.zeros((30, 40, 3), np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "images" / "img_000.jpg", exif=exif)
    assert header_size(tmp_path / "images" / "img_000.jpg") == (40, 30)
    cv2.imwrite(str(tmp_path / "masks" / "img_000.png"), np.ones((40, 30), np.uint8))
    source = FolderSource(tmp_path, split="all")
    assert source.get_sample(0).image.shape == (40, 30, 3)
    cv2.imwrite(str(tmp_path / "masks" / "img_000.png"), np.ones((30, 40), np.uint8))
    with pytest.raises(BadSamplesError, match=r"mask .*img_000.png is 30x40 \(HxW\) but image .*img_000.jpg is 40x30"):
        FolderSource(tmp_path, split="all")


def test_training_0_255_masks_are_refused_with_the_fix(tmp_path):
    write_folder_dataset(tmp_path, num_images=4)
    for path in (tmp_path / "masks").iterdir():
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), np.where(labels > 0, 255, 0).astype(np.uint8))
    with pytest.raises(ValueError, match=r"hold only 0 and 255.*ignore_value=null"):
        FolderSource(tmp_path, split="all", mask_mode="binary")
    sample = FolderSource(tmp_path, split="all", mask_mode="binary", ignore_value=None).get_sample(0)
    assert len(sample) == 1


# ------------------------------------------------------------------------------ evaluation sets


def test_evaluation_folder_reports_every_bad_file_and_can_skip(tmp_path, caplog):
    root = make_folder_set(tmp_path / "set", num_images=5)
    for i in range(5):  # the names _break_three uses
        for folder in ("images", "masks"):
            (root / folder / f"img{i}.png").rename(root / folder / f"img_{i:03d}.png")
    expected = _break_three(root)
    with pytest.raises(BadSamplesError) as info:
        build_evaluation_dataset("folder", root)
    message = str(info.value)
    assert "folder evaluation set" in message and "3 of 6 samples have unusable files" in message
    assert "data.folder.skip_bad_samples=true" in message
    for stem, reason in expected.items():
        assert f"{stem}.png: " in message and reason in message

    with caplog.at_level(logging.WARNING, logger="iseg.data.file_check"):
        dataset = FolderDataset(root, skip_bad_samples=True)
    assert dataset.names == ["img_003.png", "img_004.png"]
    reasons = dict(dataset.exclusions)
    assert all(reasons[f"{stem}.png"].startswith("unusable files: ") for stem in expected)
    assert reasons["zz_empty.png"].startswith("empty ground truth")

    # the run lists them: results.json and the table, next to the footer with this run's settings
    evaluations = evaluate_checkpoint(DiskNet(), {"folder": dataset}, predictor_config(None),
                                      protocol=ProtocolConfig(max_clicks=5, target_iou=0.9))
    files = write_reports(evaluations, tmp_path / "out", {"checkpoint": "disk"})
    listed = {e["name"]: e["reason"] for e in json.loads(files.json_file.read_text())["datasets"]["folder"]["exclusions"]}
    assert listed == reasons
    assert "folder: 4 excluded" in files.table and "img_001.png: unusable files: cannot read image" in files.table
    assert "mIoU@10,20 '-': beyond this run's protocol.max_clicks=5" in files.table
    assert "runs all 20" not in files.table and "protocol.target_iou=0.9 " in files.table


def test_evaluation_255_is_ignore_as_in_training(tmp_path):
    write_image(tmp_path / "images" / "all_ignore.png", 6, 6)
    write_mask(tmp_path / "masks" / "all_ignore.png", np.full((6, 6), 255, np.uint8))
    write_image(tmp_path / "images" / "cat.png", 6, 6, seed=1)
    labels = np.zeros((6, 6), np.uint8)
    labels[1:4, 1:4], labels[5, :] = 1, 255
    write_mask(tmp_path / "masks" / "cat.png", labels)

    binary = FolderDataset(tmp_path)  # binary mode, the default
    assert binary.names == ["cat.png"]
    assert int((binary[0].gt == 1).sum()) == 9 and (binary[0].gt[5] == -1).all()
    (name, reason), = binary.exclusions
    assert name == "all_ignore.png" and "only 0 and 255 = ignore" in reason and "ignore_value=null" in reason
    instances = FolderDataset(tmp_path, mask_mode="instances")
    assert instances.names == ["cat.png#1"] and "ignore_value=null" in dict(instances.exclusions)["all_ignore.png"]
    # the same file in training: no object either
    assert FolderSource(tmp_path, split="all", check_files="off").sample_object_ids(0) == []

    assert FolderDataset(tmp_path, ignore_value=None).names == ["all_ignore.png", "cat.png"]  # 255 = object
    assert FolderDataset(tmp_path, ignore_value="auto").ignore_value == 255  # old configs

    (tmp_path / "masks" / "cat.png").write_bytes(cv2.imencode(".png", np.where(labels > 0, 255, 0).astype(np.uint8))[1])
    with pytest.raises(ValueError, match=r"(?s)no sample to evaluate.*\n255 means .ignore. here.*set data.folder.ignore_value=null"):
        FolderDataset(tmp_path)  # every mask is 0/255: the error says what to set


def test_other_sets_check_images_at_start_up(tmp_path):
    write_image(tmp_path / "data_GT" / "a.jpg", 12, 12)
    write_mask(tmp_path / "boundary_GT" / "a.bmp", band_mask(12, 12))
    write_image(tmp_path / "data_GT" / "b.jpg", 12, 14)
    write_mask(tmp_path / "boundary_GT" / "b.bmp", band_mask(12, 12))
    with pytest.raises(BadSamplesError, match=r"data.grabcut.skip_bad_samples=true"):
        GrabCutDataset(tmp_path)
    dataset = GrabCutDataset(tmp_path, skip_bad_samples=True)
    assert dataset.names == ["a.jpg"] and dataset.exclusions[0][0] == "b.jpg"
    unchecked = GrabCutDataset(tmp_path, check_masks=False, check_files="off")
    with pytest.raises(BadSamplesError):
        unchecked.check_files(unchecked.entries)  # masks not decoded: their size from the header


def test_a_misspelt_evaluation_set_lists_the_evaluation_sets_only():
    from iseg.evaluation.runner import data_choice_error, evaluation_set_options

    sets = evaluation_set_options()
    assert sets == sorted(["berkeley", "coco_mval", "davis", "folder", "grabcut", "pascalvoc", "sbd"])
    assert data_choice_error(["checkpoint=x", "data=grabcut", "data.grabcut.root=/x", "'data=[davis,sbd]'"]) is None
    for args, bad in ((["data=grabcat"], "'grabcat'"), (["data=[grabcut,synthetic]"], "'synthetic'"),
                      (["-m", "data=davis,cocolvis"], "'cocolvis'")):
        message = data_choice_error(args)
        assert f"no evaluation set {bad}" in message and message.endswith("(conf/eval/data):\n\t" + "\n\t".join(sets))
    result = subprocess.run([sys.executable, "evaluate.py", "checkpoint=x", "data=grabcat"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1 and "no evaluation set 'grabcat'" in result.stderr
    assert "synthetic" not in result.stderr and "cocolvis" not in result.stderr
