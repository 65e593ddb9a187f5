"""The demo's API (FastAPI TestClient): prompts, objects, undo, downloads and bad input.

The server answers with what the predictor gives: every mask is compared with a predictor built by
hand from the same checkpoint and clicked the same way.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the demo extra is not installed (pip install -e '.[demo]')")
from fastapi.testclient import TestClient
from pycocotools import mask as mask_utils

from iseg.demo.__main__ import parse_args
from iseg.demo.app import create_app
from iseg.demo.config import DemoConfig
from iseg.demo.images import ImageRejected, load_image
from iseg.demo.loader import ModelLoader
from iseg.inference.predict import load_network, make_predictor
from iseg.interaction.encoders import _ENCODERS
from iseg.interaction.prompts import Click
from tests.conftest import ROOT
from tests.demo_files import AnchorDiskNet, demo_checkpoint, encoded, scene

IMAGE = scene(80, 120)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    return demo_checkpoint(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def client(checkpoint) -> TestClient:
    app = create_app(DemoConfig(checkpoint=str(checkpoint)), start_loading=False)
    app.state.loader.load()
    assert app.state.loader.state == "ready", app.state.loader.error
    return TestClient(app)


def _open(client: TestClient, image: np.ndarray = IMAGE, name: str = "scene.png") -> dict:
    response = client.post("/api/image", files={"file": (name, encoded(image), "image/png")})
    assert response.status_code == 200, response.text
    return response.json()


def _click(client: TestClient, y: int, x: int, positive: bool = True, object_id: int | None = None) -> dict:
    payload = {"kind": "click", "y": y, "x": x, "is_positive": positive}
    response = client.post("/api/prompt", json=payload if object_id is None else {**payload, "object": object_id})
    assert response.status_code == 200, response.text
    return response.json()


def _png(client: TestClient, path: str) -> np.ndarray:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _by_hand(checkpoint, clicks: list[Click]) -> list[np.ndarray]:
    """The probabilities after each click of a predictor built as iseg.predict builds it."""
    predictor = make_predictor(load_network(checkpoint))
    predictor.set_image(IMAGE)
    return [predictor.add(click).copy() for click in clicks]


def test_status_says_loading_until_the_model_is_ready(checkpoint) -> None:
    app = create_app(DemoConfig(checkpoint=str(checkpoint)), start_loading=False)
    client = TestClient(app)
    status = client.get("/api/status").json()
    assert status["state"] == "loading" and status["step"] == 0 and status["steps"] == 3
    assert status["stage"] == "reading the checkpoint" and status["checkpoint"] == checkpoint.name
    response = client.get("/api/state")
    assert response.status_code == 503 and "still loading (reading the checkpoint)" in response.json()["detail"]
    app.state.loader.load()
    status = client.get("/api/status").json()
    assert status["state"] == "ready" and status["step"] == 3 and status["network"] == "HRNetModel"
    assert status["prompt_kinds"] == ["click"]  # from the network's input adapter (ClickInputs)
    assert client.get("/api/state").json() == {
        "version": 0, "prompt_kinds": ["click"], "image": None, "objects": [], "current": 0, "can_undo": False
    }  # fmt: skip
    page = client.get("/")
    assert page.status_code == 200 and 'id="overlay"' in page.text
    assert client.get("/static/demo.js").status_code == 200


def test_click_undo_and_reset_give_the_predictors_masks(client, checkpoint) -> None:
    state = _open(client)
    assert state["image"]["width"] == 120 and state["image"]["height"] == 80 and state["image"]["note"] is None
    assert [obj["id"] for obj in state["objects"]] == [1] and state["current"] == 1 and not state["can_undo"]
    assert np.array_equal(_png(client, "/api/image.png"), IMAGE)

    first, second = Click(36, 36, True), Click(40, 90, False)
    state = _click(client, 36, 36)
    expected, after_two = (probs > 0.49 for probs in _by_hand(checkpoint, [first, second]))
    labels = _png(client, "/api/labels.png")
    assert labels.shape == (80, 120) and np.array_equal(labels == 1, expected)
    assert state["objects"][0]["area"] == expected.sum() > 0 and state["can_undo"]
    assert state["objects"][0]["prompts"] == [{"kind": "click", "y": 36.0, "x": 36.0, "is_positive": True}]
    overlay = _png(client, "/api/overlay.png")
    assert overlay.shape == (80, 120, 4) and np.array_equal(overlay[..., 3] > 0, expected)
    assert tuple(overlay[expected][0]) == (230, 25, 75, 140)  # object 1's colour
    mask = _png(client, "/api/mask.png?object=1")
    assert set(np.unique(mask)) <= {0, 255} and np.array_equal(mask == 255, expected)

    _click(client, 40, 90, positive=False)
    assert np.array_equal(_png(client, "/api/labels.png") == 1, after_two) and not np.array_equal(after_two, expected)

    state = client.post("/api/undo").json()
    assert len(state["objects"][0]["prompts"]) == 1 and state["objects"][0]["area"] == expected.sum()
    assert np.array_equal(_png(client, "/api/labels.png") == 1, expected)

    state = client.post("/api/reset").json()
    assert not state["can_undo"] and state["objects"][0]["prompts"] == [] and state["objects"][0]["area"] == 0
    assert not _png(client, "/api/labels.png").any() and not _png(client, "/api/overlay.png").any()
    assert client.post("/api/undo").status_code == 200  # nothing to undo is not an error


def test_objects_are_kept_apart_and_undo_follows_the_prompt_order(client, checkpoint) -> None:
    _open(client)
    _click(client, 36, 36)
    state = client.post("/api/objects").json()
    assert [obj["id"] for obj in state["objects"]] == [1, 2] and state["current"] == 2
    assert state["objects"][1]["color"] == "#3cb44b"
    state = _click(client, 40, 90)
    probs = np.stack([*_by_hand(checkpoint, [Click(36, 36, True)]), *_by_hand(checkpoint, [Click(40, 90, True)])])
    covered = probs > 0.49
    expected = np.where(covered.any(0), np.argmax(np.where(covered, probs, -1), axis=0) + 1, 0)
    labels = _png(client, "/api/labels.png")
    assert np.array_equal(labels, expected) and {1, 2} <= set(np.unique(labels))
    assert [obj["area"] for obj in state["objects"]] == [(expected == 1).sum(), (expected == 2).sum()]

    state = client.post("/api/select", json={"object": 1}).json()
    assert state["current"] == 1
    state = client.post("/api/undo").json()  # the last prompt went to object 2, whichever is current
    assert [len(obj["prompts"]) for obj in state["objects"]] == [1, 0] and state["current"] == 2
    assert np.array_equal(_png(client, "/api/labels.png") == 1, covered[0])
    state = _click(client, 36, 36, object_id=2)  # a prompt for an object that is not the current one
    assert [len(obj["prompts"]) for obj in state["objects"]] == [1, 1] and state["current"] == 2


def test_scribbles_and_boxes_are_offered_when_the_network_takes_them() -> None:
    app = create_app(DemoConfig(checkpoint="anchor-disk-net"), ModelLoader(DemoConfig(checkpoint="anchor-disk-net"), AnchorDiskNet()), start_loading=False)
    app.state.loader.load()
    client = TestClient(app)
    assert client.get("/api/status").json()["prompt_kinds"] == ["click", "scribble", "box"]
    _open(client)
    scribble = {"kind": "scribble", "points": [[20, 20], [20, 30], [22, 40]], "is_positive": True}
    state = client.post("/api/prompt", json=scribble).json()
    assert state["objects"][0]["prompts"] == [{**scribble, "points": [[20.0, 20.0], [20.0, 30.0], [22.0, 40.0]]}]
    yy, xx = np.mgrid[:80, :120]
    disks = lambda points: np.any([(yy - y) ** 2 + (xx - x) ** 2 <= 36 for y, x in points], axis=0)
    assert np.array_equal(_png(client, "/api/labels.png") == 1, disks(scribble["points"]))
    client.post("/api/objects")
    box = {"kind": "box", "y0": 50, "x0": 70, "y1": 70, "x1": 110}
    state = client.post("/api/prompt", json=box).json()
    assert state["objects"][1]["prompts"] == [{"kind": "box", "y0": 50.0, "x0": 70.0, "y1": 70.0, "x1": 110.0, "is_positive": True}]
    assert np.array_equal(_png(client, "/api/labels.png") == 2, disks([(60, 90)]))  # the stand-in's box centre
    response = client.post("/api/prompt", json={**box, "y0": 75})
    assert response.status_code == 422 and "box corners must be ordered" in response.json()["detail"]
    with pytest.warns(UserWarning, match=r"1 outside the 80x120 image .* clipped to its border"):
        response = client.post("/api/prompt", json={**scribble, "points": [[20, 20], [20, 130]]})
    assert response.status_code == 200  # a stroke leaving the image is clipped to it (S2M's rule)
    response = client.post("/api/prompt", json={**scribble, "points": [[20, 130], [30, 140]]})
    assert response.status_code == 422 and "every point lies outside the 80x120 image" in response.json()["detail"]


def test_coco_rle_decodes_to_the_downloaded_masks(client) -> None:
    _open(client)
    _click(client, 36, 36)
    client.post("/api/objects")
    _click(client, 40, 90)
    response = client.get("/api/rle.json")
    assert 'filename="scene_rle.json"' in response.headers["content-disposition"]
    content = response.json()
    assert content["image"] == {"file_name": "scene.png", "height": 80, "width": 120}
    labels = _png(client, "/api/labels.png")
    assert [a["object_id"] for a in content["annotations"]] == [1, 2]
    for annotation in content["annotations"]:
        rle = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode())
        with warnings.catch_warnings():  # pycocotools' own numpy-2 DeprecationWarning (__array__ copy)
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(decoded, labels == annotation["object_id"])
        assert annotation["area"] == decoded.sum()
        ys, xs = np.nonzero(decoded)
        assert annotation["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    json.dumps(content)  # plain JSON, as COCO files hold it


def test_large_images_are_scaled_down_with_a_note_and_exported_at_full_size(checkpoint) -> None:
    app = create_app(DemoConfig(checkpoint=str(checkpoint), max_side=60), start_loading=False)
    app.state.loader.load()
    client = TestClient(app)
    big = np.asarray(Image.fromarray(IMAGE).resize((240, 160)))
    state = _open(client, big, "big.png")
    assert (state["image"]["width"], state["image"]["height"]) == (60, 40)
    assert (state["image"]["original_width"], state["image"]["original_height"]) == (240, 160)
    assert "big.png is 240x160 px: shown and segmented at 60x40" in state["image"]["note"]
    _click(client, 18, 18)
    working = _png(client, "/api/overlay.png")[..., 3] > 0
    full = _png(client, "/api/labels.png")
    assert full.shape == (160, 240) and working.shape == (40, 60) and full.any()
    assert np.array_equal(_png(client, "/api/mask.png?object=1") == 255, full == 1)
    # the full-size mask is the working one scaled up: they agree away from the boundaries
    assert (np.asarray(Image.fromarray(working).resize((240, 160), Image.Resampling.NEAREST)) == (full == 1)).mean() > 0.9
    response = client.post("/api/prompt", json={"kind": "click", "y": 100, "x": 10, "is_positive": True})
    assert response.status_code == 422 and "outside the 40x60 image" in response.json()["detail"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", b"not an image", "notes.txt: not an image type the demo reads (PNG, JPEG"),
        ("drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "drawing.svg: not an image type"),
        ("empty.png", b"", "empty.png: the file is empty"),
        ("icon.ico", encoded(IMAGE[:32, :32], "ICO"), "icon.ico: ICO images are not supported"),
        ("cut.png", encoded(IMAGE)[:200], "cut.png: cannot decode the PNG data"),
        ("depth.tif", encoded(Image.fromarray(np.zeros((8, 8), np.int32)), "TIFF"), "32-bit) images are not supported"),
    ],
)
def test_unsupported_files_are_refused_by_name(client, name, data, message) -> None:
    response = client.post("/api/image", files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 415 and message in response.json()["detail"]


def test_bad_prompts_and_requests_get_clear_messages(client) -> None:
    fresh = create_app(DemoConfig(checkpoint=client.app.state.config.checkpoint), start_loading=False)
    fresh.state.loader.load()
    response = TestClient(fresh).post("/api/prompt", json={"kind": "click", "y": 1, "x": 1, "is_positive": True})
    assert response.status_code == 409 and response.json()["detail"] == "open an image first"

    _open(client)
    cases = [
        ({"kind": "click", "y": 80, "x": 5, "is_positive": True}, "point (y=80.0, x=5.0) lies outside the 80x120 image"),
        ({"kind": "click", "y": -1, "x": 5, "is_positive": True}, "lies outside the 80x120 image"),
        ({"kind": "scribble", "points": [[1, 2]], "is_positive": True}, "kind 'scribble' is not taken by this network; it takes ['click']"),
        ({"kind": "click", "y": "top", "x": 5, "is_positive": True}, "y: Input should be a valid number"),
        ({"kind": "click", "y": 5, "is_positive": True}, "x: Field required"),
        ({"kind": "click", "y": 5, "x": 5, "is_positive": True, "z": 1}, "unknown: ['z']"),
        ({"kind": "click", "y": 5, "x": 5, "is_positive": True, "object": 7}, "no object 7; objects: [1]"),
        ({"kind": "click", "y": 5, "x": 5, "is_positive": True, "object": "one"}, "object must be an object id"),
    ]  # fmt: skip
    for payload, message in cases:
        response = client.post("/api/prompt", json=payload)
        assert response.status_code in (409, 422) and message in response.json()["detail"], (payload, response.text)
    assert client.get("/api/state").json()["can_undo"] is False  # nothing was added
    response = client.get("/api/mask.png?object=3")
    assert response.status_code == 409 and "no object 3" in response.json()["detail"]


def test_a_file_that_is_not_a_checkpoint_is_reported_in_status_and_api(tmp_path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_text("these are not weights")
    app = create_app(DemoConfig(checkpoint=str(bad)), start_loading=False)
    app.state.loader.load()
    client = TestClient(app)
    status = client.get("/api/status").json()
    assert status["state"] == "error" and status["stage"] == "failed while reading the checkpoint"
    assert f"{bad}: cannot be read as a torch checkpoint" in status["error"]
    response = client.post("/api/image", files={"file": ("scene.png", encoded(IMAGE), "image/png")})
    assert response.status_code == 503
    assert response.json()["detail"].startswith(f"the checkpoint could not be loaded: {bad}: cannot be read")


def test_command_line_arguments() -> None:
    with pytest.raises(SystemExit, match="checkpoint=PATH is required"):
        parse_args([])
    with pytest.raises(SystemExit, match="checkpoint file nope.pth does not exist"):
        parse_args(["checkpoint=nope.pth"])
    with pytest.raises(SystemExit, match="Key 'prot' not in 'DemoConfig'"):
        parse_args(["checkpoint=nope.pth", "prot=1"])
    with pytest.raises(SystemExit, match="arguments are key=value pairs"):
        parse_args(["--port", "80"])
    with pytest.raises(SystemExit, match="port: Value 'high' of type 'str' could not be converted to Integer"):
        parse_args(["checkpoint=nope.pth", "port=high"])
    config = parse_args([f"checkpoint={__file__}", "port=8123"])
    assert config.host == "127.0.0.1" and config.port == 8123  # this computer only, unless asked


def test_the_command_serves_the_app_on_localhost(checkpoint, monkeypatch, capsys) -> None:
    import uvicorn

    from iseg.demo.__main__ import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    main([f"checkpoint={checkpoint}", "port=8123"])
    assert served["host"] == "127.0.0.1" and served["port"] == 8123
    assert served["app"].state.config.checkpoint == str(checkpoint) and served["app"].state.loader.state == "loading"
    assert "iseg demo: http://127.0.0.1:8123/" in capsys.readouterr().out
    done = subprocess.run(
        [sys.executable, "-m", "iseg.demo", "checkpoint=missing.pth"], cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 1 and "iseg.demo: checkpoint file missing.pth does not exist" in done.stderr


def test_jpeg_orientation_16_bit_and_reduced_decoding() -> None:
    rotated = Image.fromarray(IMAGE)
    exif = rotated.getexif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    image = load_image(encoded(rotated, "JPEG", exif=exif), "phone.jpg", max_side=1600)
    assert image.size == image.original_size == (120, 80)  # as a browser shows it
    deep = load_image(encoded(Image.fromarray(IMAGE[..., 0].astype(np.uint16) * 257)), "deep.png")
    assert np.array_equal(deep.rgb[..., 0], IMAGE[..., 0]) and deep.rgb.flags.writeable
    big = np.asarray(Image.fromarray(IMAGE).resize((1200, 800)))
    reduced = load_image(encoded(big, "JPEG"), "big.jpg", max_side=100)
    assert reduced.size == (67, 100) and reduced.original_size == (800, 1200) and "1200x800" in reduced.note
    with pytest.raises(ImageRejected, match=r"big.jpg: 1200x800 is 1 Mpx, more than the demo opens \(0 Mpx\)"):
        load_image(encoded(big, "JPEG"), "big.jpg", max_pixels=100_000)
    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)  # a PNG that claims 60000x60000 RGB
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(ImageRejected, match="bomb.png: too large to open"):
        load_image(bomb, "bomb.png")


def test_every_registered_prompt_encoder_says_which_prompts_it_takes() -> None:
    """The demo offers the prompt kinds of the network's encoders, so every encoder must declare them."""
    for name, cls in _ENCODERS.items():
        if not cls.__module__.startswith("iseg."):
            continue  # test-only encoders of other test modules
        assert isinstance(getattr(cls, "prompt_types", None), tuple) and cls.prompt_types, name
