"""IOG networks: stand-ins of the official plain-state-dict checkpoints (with and without
num_batches_tracked) load through load_model and reproduce the reference outputs
(golden models/iog_resnet101 and models/iog_refinement_resnet101, fill-rule weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iseg.models.checkpoints import CheckpointError, load_model
from iseg.models.iog import IOGNetwork, IOGRefinementNetwork
from iseg.models.iog.refinement import simulate_click
from tests.golden import fill_rule_state_dict, load_io, load_spec

pytestmark = pytest.mark.slow
MAPS = ("coarse1", "coarse2", "coarse3", "coarse4", "fine")


def _assert_close(actual: torch.Tensor, reference: np.ndarray, name: str) -> None:
    """Golden README tolerance for logits: |a - ref| <= 1e-5 * max|ref| + 1e-3."""
    ref = torch.from_numpy(reference)
    assert actual.shape == ref.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    tolerance = 1e-5 * ref.abs().max().item() + 1e-3
    worst = (actual - ref).abs().max().item()
    assert worst <= tolerance, f"{name}: max |diff| {worst:.3g} > {tolerance:.3g}"


def test_main_network_from_a_file_without_num_batches_tracked(tmp_path: Path) -> None:
    spec, io = load_spec("iog_resnet101"), load_io("iog_resnet101")
    state = fill_rule_state_dict(spec)
    old_style = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 918 and len(old_style) == 765
    torch.save(old_style, tmp_path / "IOG_PASCAL_SBD.pth")
    model = load_model(tmp_path / "IOG_PASCAL_SBD.pth")
    assert type(model) is IOGNetwork and not model.training
    assert sum(p.numel() for p in model.parameters()) == 52_124_106
    with torch.no_grad():
        outputs = model(torch.from_numpy(io["input"]))
    for name in MAPS:
        output = outputs["instances" if name == "fine" else name]
        assert output.shape == (1, 1, 512, 512)  # fixed 512 whatever the input size (256 here)
        _assert_close(output[:, :, ::4, ::4], io[f"{name}_512_s4"], name)
        summary = spec["full_output_summary"][name]
        assert abs(output.double().sum().item() - summary["sum"]) <= 1e-5 * summary["abs_sum"]
    # a file that is not this network is named, with what it lacks
    del old_style["psp4.bottleneck.0.weight"]
    with pytest.raises(CheckpointError, match="missing keys.*psp4.bottleneck.0.weight"):
        load_model(old_style)


def test_refinement_network_rounds_parity_and_correct_label_rule(tmp_path: Path) -> None:
    spec, io = load_spec("iog_refinement_resnet101"), load_io("iog_refinement_resnet101")
    torch.save(fill_rule_state_dict(spec), tmp_path / "IOG_PASCAL_SBD_REFINEMENT.pth")
    model = load_model(tmp_path / "IOG_PASCAL_SBD_REFINEMENT.pth")
    assert type(model) is IOGRefinementNetwork and model.label_rule == "correct"
    assert sum(p.numel() for p in model.parameters()) == 53_433_546
    image, guidance, gts = (torch.from_numpy(io[k]) for k in ("input", "iog_points", "gts"))
    with torch.no_grad():
        rounds = model.rounds(image, guidance, gts, num_rounds=2, label_rule="parity")
    for k, result in enumerate(rounds):
        for name, output in zip(MAPS, result.maps):
            _assert_close(output, io[f"r{k}_{name}"], f"round {k} {name}")
        assert result.iou == pytest.approx(float(io[f"r{k}_iou"]), abs=1e-12)
        assert torch.equal(result.guidance_out, torch.from_numpy(io[f"r{k}_guidance_out"]))
    # the reference's click (row 335, col 163) lies on the object; parity wrote it as negative (channel 1)
    fine = torch.nn.functional.interpolate(rounds[0].maps[4], size=(512, 512), mode="bilinear", align_corners=True)
    _, corrected = simulate_click(fine, guidance, gts, "correct")
    assert corrected[0, 0, 335, 163] == 255 and corrected[0, 1, 335, 163] < 255
    assert rounds[0].guidance_out[0, 1, 335, 163] == 255
