"""Folding eval-mode BatchNorm into convolutions: which pairs fold, same outputs, same clicks."""

from __future__ import annotations

import pytest
import numpy as np
import torch
from torch import nn

from iseg.inference.brs import FeatureBRS
from iseg.inference.flip import Flip
from iseg.inference.fold_batchnorm import conv_batchnorm_pairs, fold_batchnorm
from iseg.inference.predictor import Predictor
from iseg.inference.zoom_in import ZoomIn
from iseg.interaction.prompts import Click
from iseg.models.hrnet_model import HRNetModel
from tests.test_models_hrnet import ITER_M


class Mixed(nn.Module):
    """conv->bn (folds); conv whose raw output is also added (no); one conv run twice (no)."""

    def __init__(self):
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv_b, self.bn_b = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.shared, self.bn_c, self.bn_d = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm2d(4)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.relu(self.bn_a(self.conv_a(image)))
        raw = self.conv_b(x)
        x = self.bn_b(raw) + raw
        return {"instances": self.bn_c(self.shared(x)) + self.bn_d(self.shared(x))}


def randomise_statistics(net: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
            module.weight.data.copy_(torch.randn(module.num_features, generator=gen))
            module.bias.data.copy_(torch.randn(module.num_features, generator=gen))
    return net.eval()


def test_only_exclusive_conv_batchnorm_pairs_fold():
    net = randomise_statistics(Mixed())
    example = {"image": torch.rand(1, 3, 8, 8)}
    assert conv_batchnorm_pairs(net, example) == [("conv_a", "bn_a")]
    folded = fold_batchnorm(net, example)
    assert isinstance(folded.bn_a, nn.Identity) and isinstance(net.bn_a, nn.BatchNorm2d), "a copy is folded"
    image = torch.rand(2, 3, 16, 12)
    torch.testing.assert_close(folded(image)["instances"], net(image)["instances"], atol=1e-5, rtol=1e-5)


def tiny_hrnet() -> HRNetModel:
    return randomise_statistics(HRNetModel(width=18, ocr_width=8, small=True, **ITER_M))


def test_every_hrnet_batchnorm_folds_and_the_predictor_gives_the_same_clicks():
    net = tiny_hrnet()
    views = lambda: {"zoom_in": ZoomIn(target_size=48, min_crop_size=16), "flip": Flip()}  # noqa: E731
    plain = Predictor(net, views=views())
    folded = Predictor(net, views=views(), fold_batchnorm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.net.modules())
    image = torch.randint(0, 256, (40, 56, 3), dtype=torch.uint8).numpy()
    plain.set_image(image)
    folded.set_image(image)
    for click in (Click(20, 28, True), Click(5, 6, False), Click(30, 40, True)):
        want, got = plain.add(click), folded.add(click)
        # random BatchNorm statistics (gamma/var up to ~3x) amplify the rounding of the folded weights
        assert abs(got - want).max() < 1e-3
        assert np.array_equal(got > 0.49, want > 0.49)


def test_channels_last_is_kept_and_brs_is_refused():
    net = tiny_hrnet().to(memory_format=torch.channels_last)
    folded = Predictor(net, fold_batchnorm=True).net
    assert folded.feature_extractor.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="fold_batchnorm=true needs a refiner"):
        Predictor(net, refiner=FeatureBRS(mode="B"), fold_batchnorm=True)
