"""The demo page in real headless Chromium (Debian's ``chromium`` driven by Playwright).

The app ``python -m iseg.demo`` serves runs in uvicorn with a small deterministic-weight checkpoint; the
test opens an image, clicks, checks that the overlay on the page is exactly the server's mask,
undoes, downloads the mask, and keeps a screenshot (``demo.png`` in the test's tmp folder; set
``ISEG_DEMO_SCREENSHOT=path`` to copy it there, e.g. docs/demo.png). Nothing is downloaded: without
an installed Chromium the tests skip (CI installs it with apt).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.demo_files import demo_checkpoint, encoded, scene

CHROMIUM = next((path for path in ("/usr/bin/chromium", shutil.which("chromium")) if path and Path(path).is_file()), None)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra has it)")
pytest.importorskip("fastapi", reason="the demo extra is not installed (pip install -e '.[demo]')")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _get(f"{url}/api/status")
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the demo server did not answer at {url} within {seconds} s")


@contextmanager
def demo_server(checkpoint: Path | str, network: object | None = None) -> Iterator[str]:
    """The app ``python -m iseg.demo checkpoint=...`` serves, run by uvicorn in a thread; yields its URL.

    In-process, so the network loaded by other tests of the session is reused (the CLI is tested apart)."""
    import uvicorn

    from iseg.demo.app import create_app
    from iseg.demo.config import DemoConfig
    from iseg.demo.loader import ModelLoader

    port = _free_port()
    demo = DemoConfig(checkpoint=str(checkpoint), port=port)
    config = uvicorn.Config(create_app(demo, ModelLoader(demo, network)), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium_page(profile: Path) -> Iterator[object]:
    """A page of a fresh headless Chromium profile."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            accept_downloads=True, viewport={"width": 1100, "height": 640},
        )  # fmt: skip
        try:
            yield context.new_page()
        finally:
            context.close()


OVERLAY_ALPHA = "() => Array.from(document.getElementById('overlay').getContext('2d')" \
    ".getImageData(0, 0, overlay.width, overlay.height).data.filter((_, i) => i % 4 === 3))"


def _overlay_mask(page, shape: tuple[int, int]) -> np.ndarray:
    """Where the page's overlay canvas is drawn (alpha > 0), as a boolean image."""
    return np.array(page.evaluate(OVERLAY_ALPHA), np.uint8).reshape(shape) > 0


def _wait_for_overlay(page, after: int) -> int:
    """Wait until the page shows the overlay of a state newer than ``after``; its version."""
    page.wait_for_function(
        f"() => Number(document.body.dataset.version) > {after} && "
        "document.body.dataset.overlayVersion === document.body.dataset.version"
    )
    return int(page.evaluate("document.body.dataset.version"))


def _page_xy(page, y: int, x: int) -> tuple[float, float]:
    """Page coordinates of the centre of image pixel (y, x), whatever the canvas's displayed scale."""
    box = page.locator("#marks").bounding_box()
    width, height = page.evaluate("[marks.width, marks.height]")
    return box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height


def _click_pixel(page, y: int, x: int, button: str = "left") -> None:
    page.mouse.click(*_page_xy(page, y, x), button=button)


def _drag(page, points: list[tuple[int, int]], button: str = "left") -> None:
    """Press at the first pixel, move through the others, release at the last."""
    page.mouse.move(*_page_xy(page, *points[0]))
    page.mouse.down(button=button)
    for point in points[1:]:
        page.mouse.move(*_page_xy(page, *point), steps=4)
    page.mouse.up(button=button)


def _labels(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_get(f"{url}/api/labels.png"))))


def test_click_undo_and_download_in_chromium(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    checkpoint = demo_checkpoint(tmp_path_factory.getbasetemp())
    image_path = tmp_path / "scene.png"
    image_path.write_bytes(encoded(scene(240, 360)))
    (tmp_path / "notes.txt").write_text("not an image")
    shape = (240, 360)
    with demo_server(checkpoint) as url, chromium_page(tmp_path / "profile") as page:
        page.goto(url)
        page.wait_for_function("document.body.dataset.model === 'ready'", timeout=120_000)
        assert "HRNetModel from demo_hrnet18s_seed0.ckpt ready" in page.inner_text("#status")
        assert page.locator('input[name="kind"]').evaluate_all("inputs => inputs.map(i => i.value)") == ["click"]

        page.set_input_files("#file", str(tmp_path / "notes.txt"))  # a clear message, no crash
        page.wait_for_selector("#error:not([hidden])")
        assert "notes.txt: not an image type the demo reads" in page.inner_text("#error")

        page.set_input_files("#file", str(image_path))
        version = _wait_for_overlay(page, -1)
        assert page.locator("#error").is_hidden()
        assert page.evaluate("[marks.width, marks.height]") == [360, 240]
        assert not _overlay_mask(page, shape).any()  # nothing before the first click

        _click_pixel(page, 108, 108)  # positive click on the disk
        version = _wait_for_overlay(page, version)
        first = _overlay_mask(page, shape)
        assert first.any() and np.array_equal(first, _labels(url) == 1)  # the page shows the server's mask

        _click_pixel(page, 120, 260, button="right")  # negative click
        version = _wait_for_overlay(page, version)
        second = _overlay_mask(page, shape)
        assert np.array_equal(second, _labels(url) == 1) and not np.array_equal(second, first)
        state = json.loads(_get(f"{url}/api/state"))
        assert [p["is_positive"] for p in state["objects"][0]["prompts"]] == [True, False]

        page.click("#undo")
        version = _wait_for_overlay(page, version)
        assert np.array_equal(_overlay_mask(page, shape), first)

        with page.expect_download() as download_info:
            page.click("#download-mask")
        download = download_info.value
        assert download.suggested_filename == "scene_object1.png"
        download.save_as(tmp_path / "mask.png")
        mask = np.asarray(Image.open(tmp_path / "mask.png"))
        assert mask.shape == shape and np.array_equal(mask == 255, first)

        page.click("#new-object")  # a second object, in its own colour
        version = _wait_for_overlay(page, version)
        _click_pixel(page, 120, 260)
        version = _wait_for_overlay(page, version)
        colours = page.evaluate(
            "() => { const d = overlay.getContext('2d').getImageData(0, 0, overlay.width, overlay.height).data;"
            " const s = new Set(); for (let i = 0; i < d.length; i += 4) if (d[i + 3]) s.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);"
            " return [...s]; }"
        )
        found = sorted(tuple(int(v) for v in colour.split(",")) for colour in colours)
        expected = sorted([(230, 25, 75), (60, 180, 75)])  # objects 1 and 2 (canvas alpha rounds by 1-2)
        assert len(found) == 2 and np.abs(np.array(found) - np.array(expected)).max() <= 2, found
        assert page.locator("#objects li").count() == 2 and "current" in page.get_attribute("#objects li[data-object='2']", "class")
        page.screenshot(path=str(tmp_path / "demo.png"))
    target = os.environ.get("ISEG_DEMO_SCREENSHOT")
    if target:
        shutil.copyfile(tmp_path / "demo.png", target)


def test_scribbles_and_boxes_are_drawn_when_the_network_takes_them(tmp_path: Path) -> None:
    from tests.demo_files import AnchorDiskNet

    image_path = tmp_path / "scene.png"
    image_path.write_bytes(encoded(scene(240, 360)))
    shape = (240, 360)
    with demo_server("anchor-disk-net", AnchorDiskNet()) as url, chromium_page(tmp_path / "profile") as page:
        page.goto(url)
        page.wait_for_function("document.body.dataset.model === 'ready'", timeout=60_000)
        kinds = page.locator('input[name="kind"]').evaluate_all("inputs => inputs.map(i => i.value)")
        assert kinds == ["click", "scribble", "box"]
        page.set_input_files("#file", str(image_path))
        version = _wait_for_overlay(page, -1)

        page.check('input[name="kind"][value="scribble"]')
        _drag(page, [(100, 100), (110, 130), (120, 160)])
        version = _wait_for_overlay(page, version)
        (scribble,) = json.loads(_get(f"{url}/api/state"))["objects"][0]["prompts"]
        assert scribble["kind"] == "scribble" and scribble["is_positive"] and len(scribble["points"]) >= 3
        assert scribble["points"][0] == [100, 100] and scribble["points"][-1] == [120, 160]
        assert _overlay_mask(page, shape).any() and np.array_equal(_overlay_mask(page, shape), _labels(url) == 1)

        _drag(page, [(112, 140), (112, 150)], button="right")  # a negative scribble
        version = _wait_for_overlay(page, version)
        assert [p["is_positive"] for p in json.loads(_get(f"{url}/api/state"))["objects"][0]["prompts"]] == [True, False]

        page.click("#new-object")
        version = _wait_for_overlay(page, version)
        page.check('input[name="kind"][value="box"]')
        _drag(page, [(200, 300), (150, 200)])  # drawn from bottom right to top left
        version = _wait_for_overlay(page, version)
        (box,) = json.loads(_get(f"{url}/api/state"))["objects"][1]["prompts"]
        assert box == {"kind": "box", "y0": 150, "x0": 200, "y1": 200, "x1": 300, "is_positive": True}
        assert np.array_equal(_overlay_mask(page, shape), _labels(url) > 0) and (_labels(url) == 2).any()
        page.screenshot(path=str(tmp_path / "demo_scribble_box.png"))


def test_a_file_that_is_not_a_checkpoint_is_shown_on_the_page(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_text("these are not weights")
    with demo_server(bad) as url, chromium_page(tmp_path / "profile") as page:
        page.goto(url)
        page.wait_for_function("document.body.dataset.model === 'error'", timeout=60_000)
        assert "the model could not be loaded (failed while reading the checkpoint)" in page.inner_text("#status")
        assert f"{bad}: cannot be read as a torch checkpoint" in page.inner_text("#error")
        assert page.locator("#file").is_disabled()
