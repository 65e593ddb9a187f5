"""Predictor: the RITM NoBRS pipeline golden (zoom-in + flip + previous-mask feedback with
fill-rule HRNet18s weights), and behaviour on small fake networks: logit-level flip averaging,
feedback, undo/reset, the reference's net_clicks_limit, bad clicks, device placement."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from iseg.evaluation.protocol import ProtocolConfig, evaluate_sample
from iseg.inference.flip import Flip
from iseg.inference.predictor import Predictor
from iseg.inference.zoom_in import ZoomIn
from iseg.interaction.clicks import Click, points_to_clicks
from iseg.models.fcfi.inputs import FCFIInputs
from iseg.models.inputs import ClickInputs
from tests.golden import fill_rule_state_dict, load_spec, official_config

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden" / "protocol" / "ritm_hrnet18s_nobrs_grabcut"
OVERRIDES = {"v1": {}, "v1_override": {"maps_transform.3.scale": 1.0, "feature_extractor.cls_head.bias": 15.0}}


# ---------------------------------------------------------------------------- golden


@pytest.fixture(scope="module")
def golden() -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(GOLDEN.with_suffix(".npz")) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(GOLDEN.with_suffix(".json").read_text()), arrays


def _checkpoint(setting: str, folder: Path) -> Path:
    """Official-format stand-in of ritm_hrnet18s_itermask with the setting's overridden scalars."""
    spec = load_spec("ritm_hrnet18s_itermask")
    state: OrderedDict[str, torch.Tensor] = fill_rule_state_dict(spec)
    for name, value in OVERRIDES[setting].items():
        assert state[name].shape == (1,), name
        state[name] = torch.full((1,), value)
    path = folder / f"ritm_hrnet18s_itermask_{setting}.pth"
    torch.save({"state_dict": state, "config": official_config(spec)}, path)
    return path



@pytest.mark.parametrize(
    "setting,fold_batchnorm", [("v1", False), ("v1_override", False), pytest.param("v1_override", True, marks=pytest.mark.slow)]
)
def test_nobrs_pipeline_matches_reference(setting: str, fold_batchnorm: bool, golden, tmp_path: Path, one_thread) -> None:
    """The reference's clicks, IoUs and maps; with BatchNorm folded into the convolutions too."""
    predictor = Predictor.from_checkpoint(
        str(_checkpoint(setting, tmp_path)), views=golden_views(golden), pred_thr=0.49, fold_batchnorm=fold_batchnorm
    )
    check_golden_protocol(predictor, golden, setting)


def golden_views(golden) -> dict:
    """The views of the NoBRS golden: RITM's zoom-in (target 400) and flip."""
    meta, _ = golden
    assert meta["predictor"]["zoom_in"]["target_size"] == 400 and meta["predictor"]["with_flip"]
    return {"zoom_in": ZoomIn(target_size=400), "flip": Flip()}


def check_golden_protocol(predictor: Predictor, golden, setting: str) -> None:
    """Run the NoBRS golden's protocol (6 clicks per image) and compare clicks, IoUs, maps and ROIs."""
    meta, arrays = golden
    for ref in meta["settings"][setting]:
        name = ref["image"]
        image, gt = arrays[f"image/{name}"], arrays[f"gt/{name}"]
        assert list(image.shape[:2]) == ref["resized_shape"] == list(gt.shape)
        predictor.set_image(image)
        maps, rois = [], []

        def record(prompt: Click) -> np.ndarray:
            probs = Predictor.add(predictor, prompt)
            maps.append(probs)
            rois.append(None if roi(predictor) is None else list(roi(predictor)))
            return probs

        predictor.add = record  # record every map and ROI of the protocol's calls
        result = evaluate_sample(predictor, gt, ProtocolConfig(max_clicks=6, target_iou=1.01))
        del predictor.add
        assert [[c.y, c.x, int(c.is_positive)] for c in result.clicks] == ref["clicks"], name
        np.testing.assert_allclose(result.ious, ref["ious"], atol=1e-3, err_msg=name)
        mean_prob = [float(m.astype(np.float64).mean()) for m in maps]
        np.testing.assert_allclose(mean_prob, ref["mean_prob"], atol=1e-4, rtol=0, err_msg=name)
        assert rois == ref["roi"], name
        # the reference itself flips a pixel across 0.49 between thread counts (README "Stability")
        n_fg = np.array([(m > 0.49).sum() for m in maps])
        assert np.abs(n_fg - ref["n_fg"]).max() <= 5, (name, n_fg.tolist(), ref["n_fg"])
        key = f"probs/{setting}/{name}"
        if key in arrays:
            np.testing.assert_allclose(np.stack(maps), arrays[key].astype(np.float32), atol=1e-3, rtol=0, err_msg=name)


# ---------------------------------------------------------------------------- fake networks


class DiskNet(nn.Module):
    """Pixel-wise logits from the image, the previous mask and radius-``r`` click disks.

    Every term is a function of a pixel and its distance to the clicks, so the net commutes with
    mirroring (image and click columns mirrored together). ``ramp`` adds a left-to-right slope
    that breaks that symmetry. Inputs are recorded for inspection.
    """

    with_prev_mask = True

    def default_inputs(self) -> ClickInputs:
        return ClickInputs(prev_mask=self.with_prev_mask)

    def __init__(self, radius: float = 6.0, ramp: float = 0.0):
        super().__init__()
        self.radius, self.ramp = radius, ramp
        self.weight = nn.Parameter(torch.tensor(2.0))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, image: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image
        self.calls.append((x.clone(), points.clone()))
        batch, _, height, width = x.shape
        rows = torch.arange(height, device=x.device, dtype=x.dtype).view(1, 1, height, 1)
        cols = torch.arange(width, device=x.device, dtype=x.dtype).view(1, 1, 1, width)
        num = points.shape[1] // 2
        disks = []
        for group in (points[:, :num], points[:, num:]):
            y, x_, valid = group[..., 0], group[..., 1], group[..., :2].max(dim=-1).values >= 0
            dist2 = (rows - y.view(batch, -1, 1, 1)) ** 2 + (cols - x_.view(batch, -1, 1, 1)) ** 2
            inside = (dist2 <= self.radius**2) & valid.view(batch, -1, 1, 1)
            disks.append(inside.any(dim=1, keepdim=True).to(x.dtype))
        logits = 6 * disks[0] - 6 * disks[1] + self.weight * (x[:, :1] - 0.5) + 1.5 * x[:, 3:4] - 1.0
        ramp = self.ramp * (cols / max(width - 1, 1) - 0.5)
        return {"instances": logits + ramp}


def make(net: nn.Module, flip: bool = False, zoom: dict | None = None, **kwargs) -> Predictor:
    """A predictor with RITM's view order: zoom-in (when given its parameters), then flip."""
    views = {"zoom_in": ZoomIn(**zoom) if zoom is not None else None, "flip": Flip() if flip else None}
    return Predictor(net, views=views, **kwargs)


def roi(predictor: Predictor):
    """The zoom-in ROI in effect, None without zoom-in or before the first crop."""
    zoom = predictor.views.get("zoom_in")
    return zoom.roi if zoom is not None else None


def _image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_flip_averages_logits_and_mirrors_click_columns() -> None:
    image, clicks = _image(), [Click(20, 10, True), Click(30, 50, False), Click(22, 12, True)]
    plain = make(DiskNet(), flip=False)
    flipped = make(DiskNet(), flip=True)
    ramped = make(DiskNet(ramp=5.0), flip=True)
    for predictor in (plain, flipped, ramped):
        predictor.set_image(image)
    for click in clicks:
        expected = plain.add(click)
        np.testing.assert_allclose(flipped.add(click), expected, atol=1e-6)
        # the slope cancels only if logits (not probabilities) of x and mirror(x) are averaged
        np.testing.assert_allclose(ramped.add(click), expected, atol=1e-6)
    x, points = flipped.net.calls[-1]
    assert x.shape == (2, 4, 48, 64) and torch.equal(x[1], torch.flip(x[0], dims=[2]))
    original, mirrored = points_to_clicks(points)
    assert [(c.y, 63 - c.x, c.is_positive) for c in original] == [(c.y, c.x, c.is_positive) for c in mirrored]


def test_previous_probabilities_are_fed_back() -> None:
    predictor = make(DiskNet())
    predictor.set_image(_image())
    first = predictor.add(Click(20, 10, True))
    predictor.add(Click(30, 50, False))
    x0, x1 = predictor.net.calls[0][0], predictor.net.calls[1][0]
    assert x0.shape == (1, 4, 48, 64) and torch.count_nonzero(x0[0, 3]) == 0
    np.testing.assert_array_equal(x1[0, 3].numpy(), first)


def test_zoom_in_runs_the_network_on_the_crop_and_zeroes_outside() -> None:
    predictor = make(DiskNet(radius=3.0), zoom={"target_size": 64, "min_crop_size": 8})
    predictor.set_image(_image(96, 128))
    predictor.add(Click(40, 60, True))
    assert roi(predictor) is None and predictor.net.calls[-1][0].shape == (1, 4, 96, 128)
    probs = predictor.add(Click(42, 62, True))
    rmin, rmax, cmin, cmax = roi(predictor)
    assert (rmax - rmin + 1, cmax - cmin + 1) != (96, 128)
    assert max(predictor.net.calls[-1][0].shape[2:]) == 64
    outside = probs.copy()
    outside[rmin : rmax + 1, cmin : cmax + 1] = 0
    assert outside.max() == 0 and probs[rmin : rmax + 1, cmin : cmax + 1].min() > 0


def test_small_first_object_is_predicted_again_with_a_crop_when_skip_clicks_is_zero() -> None:
    predictor = make(DiskNet(radius=3.0), zoom={"target_size": 64, "min_crop_size": 8, "skip_clicks": 0})
    predictor.set_image(_image(96, 128))
    predictor.add(Click(40, 60, True))
    assert len(predictor.net.calls) == 2  # full image, then the crop around that prediction
    assert predictor.net.calls[0][0].shape[2:] == (96, 128) and max(predictor.net.calls[1][0].shape[2:]) == 64
    assert roi(predictor) is not None


def test_undo_and_reset_restore_the_state() -> None:
    predictor = make(DiskNet(radius=3.0), flip=True, zoom={"target_size": 64, "min_crop_size": 8})
    predictor.set_image(_image(96, 128))
    clicks = [Click(40, 60, True), Click(42, 62, True), Click(10, 10, True), Click(41, 61, False)]
    after, rois = [], []
    for click in clicks:
        after.append(predictor.add(click).copy())
        rois.append(roi(predictor))
    assert rois[2] != rois[1]  # the far positive click moved the ROI, so undo has something to restore
    predictor.undo()
    predictor.undo()
    assert predictor.prompts == clicks[:2] and roi(predictor) == rois[1]
    np.testing.assert_array_equal(predictor.probs, after[1])
    for k in (2, 3):  # replaying gives the same maps as the first time: the state was restored exactly
        np.testing.assert_array_equal(predictor.add(clicks[k]), after[k])
    predictor.reset()
    assert predictor.prompts == [] and roi(predictor) is None and not predictor.probs.any()
    np.testing.assert_array_equal(predictor.add(clicks[0]), after[0])
    np.testing.assert_array_equal(predictor.undo(), np.zeros((96, 128), np.float32))
    assert roi(predictor) is None and predictor.undo().shape == (96, 128)  # undo with no clicks is a no-op


def test_set_image_clears_clicks_and_zoom_state() -> None:
    predictor = make(DiskNet(radius=3.0), zoom={"target_size": 64, "min_crop_size": 8})
    predictor.set_image(_image(96, 128))
    first = predictor.add(Click(40, 60, True)).copy()
    predictor.add(Click(42, 62, True))
    predictor.set_image(_image(96, 128))
    assert predictor.prompts == [] and roi(predictor) is None
    np.testing.assert_array_equal(predictor.add(Click(40, 60, True)), first)


def test_returned_map_cannot_corrupt_the_feedback() -> None:
    predictor = make(DiskNet())
    predictor.set_image(_image())
    probs = predictor.add(Click(20, 10, True))
    with pytest.raises(ValueError, match="read-only"):
        probs[0, 0] = 1.0


def test_net_clicks_limit_keeps_the_first_clicks_in_click_order() -> None:
    predictor = Predictor(DiskNet(), inputs=ClickInputs(net_clicks_limit=4))
    predictor.set_image(_image())
    clicks = [Click(5, 5 + k, True) for k in range(3)] + [Click(40, 5 + k, False) for k in range(3)]
    for click in clicks:
        predictor.add(click)
    points = predictor.net.calls[-1][1]
    # reference: N = min(limit, max(#pos, #neg)) = 3 rows per polarity; only clicks 0..3 are fed
    assert points.shape == (1, 6, 3)
    assert points[0, :, 2].tolist() == [0, 1, 2, 3, -1, -1]


def test_without_prev_mask_the_network_gets_rgb_only() -> None:
    net = DiskNet()
    net.with_prev_mask = False
    seen = []
    net.forward = lambda image, points: seen.append(image.shape) or {"instances": image[:, :1]}  # type: ignore[method-assign]
    predictor = make(net)
    predictor.set_image(_image())
    probs = predictor.add(Click(1, 1, True))
    assert seen == [(1, 3, 48, 64)] and probs.shape == (48, 64) and probs.dtype == np.float32


@pytest.mark.parametrize(
    "click",
    [
        Click(48, 10, True),
        Click(10, 64, False),
        Click(-1, 10, True),
        Click(10, -0.5, True),
        Click(float("nan"), 1, True),
    ],
)
def test_click_outside_the_image_is_rejected(click: Click) -> None:
    predictor = make(DiskNet())
    predictor.set_image(_image())
    with pytest.raises(ValueError, match=rf"point \(y={click.y}, x={click.x}\) lies outside the 48x64 image"):
        predictor.add(click)
    assert predictor.prompts == []


def test_bad_inputs_name_the_value() -> None:
    predictor = make(DiskNet())
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.add(Click(1, 1, True))
    with pytest.raises(ValueError, match=r"uint8 image \(H, W, 3\) RGB, got a float32 array of shape \(4, 4, 3\)"):
        predictor.set_image(np.zeros((4, 4, 3), np.float32))
    predictor.set_image(_image())
    with pytest.raises(TypeError, match=r"expected a prompt \(Click, Scribble, Box or InsideOutside\), got tuple"):
        predictor.add((1, 1, True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="net_clicks_limit"):
        Predictor(DiskNet(), inputs=ClickInputs(net_clicks_limit=0))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_device_argument_is_honoured(device: str) -> None:
    predictor = make(DiskNet(), device=device, flip=True, zoom={"target_size": 32, "min_crop_size": 8})
    assert predictor.device == torch.device(device)
    assert predictor.net.weight.device.type == device
    predictor.set_image(torch.from_numpy(_image()).permute(2, 0, 1).float() / 255)  # tensors are accepted too
    predictor.add(Click(20, 10, True))
    probs = predictor.add(Click(21, 11, True))
    assert isinstance(probs, np.ndarray) and probs.shape == (48, 64)
    for x, points in predictor.net.calls:
        assert x.device.type == device and points.device.type == device


# ---------------------------------------------------------------------------- FCFI feedback path


class FeedbackNet(DiskNet):
    """FCFI-contract stand-in: DiskNet's logits plus ``gate`` x a bump at the newest click; records
    every call's (input, points, new_points, gate). ``with_prev_mask`` is False on purpose: a
    feedback network gets the previous probabilities whatever that flag says."""

    with_prev_mask = False

    def default_inputs(self) -> FCFIInputs:
        return FCFIInputs()

    def __init__(self, radius: float = 6.0, ramp: float = 0.0):
        super().__init__(radius, ramp)
        self.feedback_calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]] = []

    def forward(self, image, points, new_points, gate, is_training=None):  # noqa: ANN001, ANN201 (the contract)
        x = image
        self.feedback_calls.append((x.clone(), points.clone(), new_points.clone(), gate))
        logits = super().forward(x, points)["instances"]
        rows = torch.arange(x.shape[2], dtype=x.dtype).view(1, 1, -1, 1)
        cols = torch.arange(x.shape[3], dtype=x.dtype).view(1, 1, 1, -1)
        y, x_ = new_points[:, 0, 0].view(-1, 1, 1, 1), new_points[:, 0, 1].view(-1, 1, 1, 1)
        bump = (((rows - y) ** 2 + (cols - x_) ** 2) <= 4).to(x.dtype)
        return {"instances": logits + gate * bump, "updated_feedback1": x[:, 3:4]}


def _newest_rows(points: torch.Tensor) -> torch.Tensor:
    """(B, 3) float rows (y, x, label) of the click with the highest order index in each batch item."""
    num = points.shape[1] // 2
    rows = []
    for item in points:
        index = int(torch.argmax(item[:, 2]))
        rows.append(torch.cat((item[index, :2], torch.tensor([1.0 if index < num else 0.0]))))
    return torch.stack(rows)


def test_feedback_net_gets_prev_probabilities_newest_click_and_gate() -> None:
    predictor = make(FeedbackNet())
    predictor.set_image(_image())
    clicks = [Click(20, 10, True), Click(30, 50, False), Click(22, 12, True)]
    maps = [predictor.add(click).copy() for click in clicks]
    calls = predictor.net.feedback_calls
    assert [gate for *_, gate in calls] == [0.0, 1.0, 1.0]  # FCFI: gate 0 on the first click only
    assert all(isinstance(gate, float) for *_, gate in calls)
    for k, (x, _, new_points, _) in enumerate(calls):
        assert x.shape == (1, 4, 48, 64) and new_points.dtype == torch.long and new_points.shape == (1, 1, 3)
        click = clicks[k]
        assert new_points.tolist() == [[[click.y, click.x, int(click.is_positive)]]]
        previous = np.zeros((48, 64), np.float32) if k == 0 else maps[k - 1]
        np.testing.assert_array_equal(x[0, 3].numpy(), previous)
    # against the same logits without the gated bump: equal at gate 0, raised at the newest click after
    plain = make(DiskNet())
    plain.set_image(_image())
    plain_maps = [plain.add(click).copy() for click in clicks[:2]]
    np.testing.assert_array_equal(maps[0], plain_maps[0])
    assert maps[1][30, 50] > plain_maps[1][30, 50] and maps[1][0, 0] == plain_maps[1][0, 0]


def test_feedback_new_points_follow_zoom_in_and_flip_and_are_truncated() -> None:
    predictor = make(FeedbackNet(radius=3.0), flip=True, zoom={"target_size": 70, "min_crop_size": 8})
    predictor.set_image(_image(96, 128))
    for click in (Click(40, 60, True), Click(43, 65, True), Click(47, 52, False)):
        predictor.add(click)
    x, points, new_points, gate = predictor.net.feedback_calls[-1]
    assert roi(predictor) is not None and max(x.shape[2:]) == 70 and gate == 1.0
    rows = _newest_rows(points)  # float click rows after zoom-in; the second batch item is mirrored
    assert not torch.equal(rows[:, :2], rows[:, :2].floor()), "expected fractional coordinates after zoom-in"
    assert torch.equal(new_points[:, 0], rows.float().long())
    assert new_points[:, 0, 2].tolist() == [0, 0]
    width = x.shape[3]
    assert rows[1, 1].item() == pytest.approx(width - 1 - rows[0, 1].item())


def test_feedback_undo_and_reset_replay_exactly() -> None:
    def run(clicks: list[Click], undo_after: int | None = None, replacement: Click | None = None):
        predictor = make(FeedbackNet(radius=3.0), flip=True, zoom={"target_size": 64, "min_crop_size": 8})
        predictor.set_image(_image(96, 128))
        maps = [predictor.add(c).copy() for c in clicks]
        if undo_after is not None:
            for _ in range(len(clicks) - undo_after):
                predictor.undo()
            maps.append(predictor.add(replacement).copy())
        return predictor, maps

    clicks = [Click(40, 60, True), Click(42, 62, True), Click(10, 10, True)]
    replacement = Click(41, 61, False)
    undone, maps = run(clicks, undo_after=2, replacement=replacement)
    fresh, fresh_maps = run(clicks[:2] + [replacement])
    np.testing.assert_array_equal(maps[-1], fresh_maps[-1])
    last, fresh_last = undone.net.feedback_calls[-1], fresh.net.feedback_calls[-1]
    assert torch.equal(last[2], fresh_last[2]) and last[3] == fresh_last[3] == 1.0
    undone.reset()
    undone.add(clicks[0])
    assert undone.net.feedback_calls[-1][3] == 0.0  # a new interaction starts with gate 0
    np.testing.assert_array_equal(undone.probs, maps[0])


def test_newest_clicks_truncate_after_float32_rounding() -> None:
    from iseg.interaction.encoders import NewestClickEncoder
    from iseg.models.fcfi.inputs import feedback_gate

    newest = NewestClickEncoder()
    points = newest([[Click(1, 1, True), Click(9.999999999, 3.7, False)], [Click(0.2, 5.99, True)]], "cpu")["new_points"]
    assert points.tolist() == [[[10, 3, 0]], [[0, 5, 1]]]  # 9.999999999 is 10.0 in float32, as in the reference
    assert feedback_gate(0) == 0.0 and feedback_gate(1) == feedback_gate(19) == 1.0
    with pytest.raises(ValueError, match="step"):
        feedback_gate(-1)
    with pytest.raises(ValueError, match="at least one click"):
        newest([[]], "cpu")


@pytest.mark.slow
def test_fcfi_predictor_builds_the_reference_network_inputs(tmp_path: Path, one_thread) -> None:
    """FCFI HRNet18s stand-in checkpoint (fill rule v1) clicked through the Predictor with the
    golden's clicks: click rows, newest click and gate equal the reference's, and the logits of the
    first call (empty feedback, gate 0) and of the last (gate 1, with the golden's soft previous
    mask put in as channel 3) match its outputs."""
    from iseg.models.checkpoints import load_model
    from tests.golden import GOLDEN_MODELS, load_io, make_official_checkpoint

    if not (GOLDEN_MODELS / "fcfi_hrnet18s" / "spec.json").is_file():
        pytest.skip("fcfi_hrnet18s golden not in tests/fixtures/golden/models")
    io = load_io("fcfi_hrnet18s")
    net = load_model(make_official_checkpoint(load_spec("fcfi_hrnet18s"), tmp_path / "fcfi_h18s.pth"))
    golden_prev = torch.from_numpy(io["prev_mask"])
    seen, logits = [], []

    def golden_feedback_on_later_clicks(module, args, kwargs):  # noqa: ANN001, ANN202 (a torch hook)
        x, points, new_points, gate = (kwargs[k] for k in ("image", "points", "new_points", "gate"))
        seen.append((x[:, 3:].clone(), points.clone(), new_points.clone(), gate))
        if gate:
            kwargs = {**kwargs, "image": torch.cat((x[:, :3], golden_prev), dim=1)}
        return args, kwargs

    net.register_forward_pre_hook(golden_feedback_on_later_clicks, with_kwargs=True)
    net.register_forward_hook(lambda module, args, out: logits.append(out["instances"].detach().clone()))
    predictor = make(net, flip=False, zoom=None)
    predictor.set_image(torch.from_numpy(io["image"][0]))
    for y, x, positive in io["clicks"]:
        predictor.add(Click(float(y), float(x), bool(positive)))
    (prev0, points0, new0, gate0), (_, points1, new1, gate1) = seen[0], seen[-1]
    assert gate0 == 0.0 and gate1 == 1.0 and torch.count_nonzero(prev0) == 0
    assert torch.equal(points0, torch.from_numpy(io["points_first"]))
    assert torch.equal(points1, torch.from_numpy(io["points"]))
    assert torch.equal(new0, torch.from_numpy(io["new_point_first"]))
    assert torch.equal(new1, torch.from_numpy(io["new_point_last"]))
    for ours, key in ((logits[0], "instances_gate0"), (logits[-1], "instances_gate1")):
        reference = io[key]
        assert np.abs(ours.numpy() - reference).max() <= 1e-4 * np.abs(reference).max() + 1e-5, key
