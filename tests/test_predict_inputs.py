"""iseg.predict's bad input: image files and what is not one, clicks outside the image, files that
are not checkpoints, and the note on large images (shown to the network scaled down)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import iseg.inference.predict as predict_module
from iseg.inference.predict import ImageDownscaled, predict
from iseg.models.checkpoints import CheckpointError
from tests.test_predict import CLICKS, checkpoint  # noqa: F401  (module fixture)
from tests.test_predictor import _image


def test_an_image_file_gives_the_mask_of_its_pixels(checkpoint, tmp_path: Path, one_thread) -> None:  # noqa: F811
    image = _image(64, 96)
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(predict(tmp_path / "photo.png", CLICKS, checkpoint), predict(image, CLICKS, checkpoint))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image .*notes.png"):
        predict(tmp_path / "notes.png", CLICKS, checkpoint)
    with pytest.raises(FileNotFoundError, match="image file .*missing.jpg does not exist"):
        predict(str(tmp_path / "missing.jpg"), CLICKS, checkpoint)
    with pytest.raises(ValueError, match="expected a uint8 image"):
        predict(image.astype(np.float64) / 255, CLICKS, checkpoint)


def test_a_click_outside_the_image_is_named_with_its_index(checkpoint, one_thread) -> None:  # noqa: F811
    with pytest.raises(ValueError, match=r"click 2 of 2: .*\(y=70\.0, x=10\.0\) lies outside the 64x96 image"):
        predict(_image(64, 96), [(20, 30, True), (70, 10, False)], checkpoint)
    with pytest.raises(TypeError, match=r"click 1 of 1: expected a prompt or a \(y, x, is_positive\) tuple"):
        predict(_image(64, 96), [(20, 30)], checkpoint)


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "weights.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="weights.pth: cannot be read as a torch checkpoint"):
        predict(_image(), CLICKS, tmp_path / "weights.pth")


def test_a_large_image_is_scaled_for_the_network_with_a_note(checkpoint, monkeypatch, one_thread) -> None:  # noqa: F811
    monkeypatch.setattr(predict_module, "MAX_SIZE", 48)  # what 800 px does to a photo, on a small image
    with pytest.warns(ImageDownscaled, match="the 64x96 image is shown to the network at 32x48 .*comes back at 64x96"):
        mask = predict(_image(64, 96), CLICKS, checkpoint)
    assert mask.shape == (64, 96)
