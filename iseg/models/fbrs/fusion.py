"""f-BRS's click fusion ("DMF" in the RITM paper): a 1x1-conv network that turns the normalised
image and the two distance maps into the 3-channel input of the backbone (spec §1.5).

It differs from RITM's ``use_rgb_conv`` block: the activation (LeakyReLU 0.2) comes before the
norm, and the hidden width is 8 (keys ``rgb_conv.0`` conv, ``rgb_conv.2`` norm, ``rgb_conv.3`` conv).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from iseg.models.init import xavier_gluon_init_

IMAGE_CHANNELS = 3
CLICK_MAPS = 2  # positive, negative distance maps
HIDDEN_CHANNELS = 8
NORM_RADIUS = 260

# ISModel options that make it an f-BRS network; any other value would change the architecture.
FBRS_ISMODEL_OPTIONS: dict[str, Any] = {
    "use_rgb_conv": True,
    "use_disks": False,
    "with_prev_mask": False,
    "conv_extend": False,
    "clicks_groups": None,
}


def fbrs_rgb_conv(norm_layer: type[nn.Module] = nn.BatchNorm2d) -> nn.Sequential:
    """Conv1x1(5 -> 8) -> LeakyReLU(0.2) -> norm(8) -> Conv1x1(8 -> 3), XavierGluon-initialised."""
    block = nn.Sequential(
        nn.Conv2d(IMAGE_CHANNELS + CLICK_MAPS, HIDDEN_CHANNELS, kernel_size=1),
        nn.LeakyReLU(negative_slope=0.2),
        norm_layer(HIDDEN_CHANNELS),
        nn.Conv2d(HIDDEN_CHANNELS, IMAGE_CHANNELS, kernel_size=1),
    )
    return xavier_gluon_init_(block)


def fbrs_ismodel_kwargs(owner: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for ISModel with the f-BRS options fixed; a conflicting value is an error.

    Options without effect on f-BRS's fusion (e.g. ``maps_scale_init``, ``use_leaky_relu``, set by
    shared recipes) pass through unchanged.
    """
    for name, value in FBRS_ISMODEL_OPTIONS.items():
        if name in kwargs and kwargs[name] != value:
            raise ValueError(
                f"{owner} is an f-BRS network ({', '.join(f'{k}={v}' for k, v in FBRS_ISMODEL_OPTIONS.items())}); "
                f"got {name}={kwargs[name]!r}"
            )
    return {**kwargs, **FBRS_ISMODEL_OPTIONS}
