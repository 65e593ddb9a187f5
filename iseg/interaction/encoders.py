"""Prompt encoders: prompt lists (one per batch item, in the network's frame) -> tensors.

An encoder returns a dict of named tensors; a method's input adapter
(:mod:`iseg.models.inputs`) merges the dicts of its encoders and passes them to the network.
Encoders are registered by name so that a config or a new method can ask for one
(``make_encoder("points", net_clicks_limit=4)``); a new prompt encoding is a new class with
``@register_encoder("name")`` and a ``prompt_types`` tuple naming the prompt classes it takes
(a user interface offers those, see ``NetInputs.prompt_types``).

The maps themselves (disks, distance maps) are drawn inside RITM-lineage networks from the
(B, 2N, 3) points layout (:mod:`iseg.interaction.encoding`), so that the official state dicts
load unchanged; the encoders here build that layout and the other prompt tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from iseg.interaction.clicks import clicks_to_points
from iseg.interaction.prompts import Click, Prompt

PromptLists = Sequence[Sequence[Prompt]]


class PromptEncoder(Protocol):
    prompt_types: tuple[type, ...]
    """The prompt classes this encoder takes (e.g. ``(Click,)``)."""

    def __call__(self, prompt_lists: PromptLists, device: torch.device | str) -> dict[str, torch.Tensor]: ...


_ENCODERS: dict[str, Callable[..., PromptEncoder]] = {}


def register_encoder(name: str) -> Callable[[type], type]:
    """Class decorator: make the encoder available as ``make_encoder(name, ...)``."""

    def register(cls: type) -> type:
        if name in _ENCODERS and _ENCODERS[name] is not cls:
            raise ValueError(f"prompt encoder '{name}' is registered already ({_ENCODERS[name].__qualname__})")
        _ENCODERS[name] = cls
        return cls

    return register


def make_encoder(name: str, **kwargs: Any) -> PromptEncoder:
    """A registered encoder by name."""
    if name not in _ENCODERS:
        raise KeyError(f"unknown prompt encoder '{name}'; registered: {sorted(_ENCODERS)}")
    return _ENCODERS[name](**kwargs)


def only_clicks(prompt_lists: PromptLists, encoder: str) -> list[list[Click]]:
    """The lists as clicks, or an error naming the first prompt this encoder cannot take."""
    for prompts in prompt_lists:
        for prompt in prompts:
            if not isinstance(prompt, Click):
                raise TypeError(f"the '{encoder}' encoder takes clicks only, got {prompt!r}")
    return [list(prompts) for prompts in prompt_lists]


@register_encoder("points")
class PointsEncoder:
    """Clicks -> ``points`` (B, 2N, 3), the RITM/FCFI layout (positives first, order column).

    ``net_clicks_limit`` feeds only the first this-many clicks (the reference's BRS evaluation
    modes); as in the reference, N is sized from the full lists (capped by the limit) first.
    """

    prompt_types = (Click,)

    def __init__(self, net_clicks_limit: int | None = None):
        if net_clicks_limit is not None and net_clicks_limit < 1:
            raise ValueError(f"net_clicks_limit must be >= 1 or None, got {net_clicks_limit}")
        self.net_clicks_limit = net_clicks_limit

    def __call__(self, prompt_lists: PromptLists, device: torch.device | str) -> dict[str, torch.Tensor]:
        click_lists = only_clicks(prompt_lists, "points")
        limit = self.net_clicks_limit
        if limit is None:
            return {"points": clicks_to_points(click_lists, device=device)}
        num_pos = [sum(c.is_positive for c in clicks) for clicks in click_lists]
        most = max(num_pos + [len(clicks) - n for clicks, n in zip(click_lists, num_pos)])
        num_max_points = max(1, min(limit, most))
        return {"points": clicks_to_points([c[:limit] for c in click_lists], num_max_points, device=device)}


@register_encoder("newest_click")
class NewestClickEncoder:
    """The last click of each list -> ``new_points`` long (B, 1, 3): (y, x, 1 positive / 0 negative).

    As FCFI's evaluation builds it: the float32 row converted with ``.long()``, i.e. coordinates
    truncated toward zero after a float32 rounding.
    """

    prompt_types = (Click,)

    def __call__(self, prompt_lists: PromptLists, device: torch.device | str) -> dict[str, torch.Tensor]:
        click_lists = only_clicks(prompt_lists, "newest_click")
        if not click_lists or any(len(clicks) == 0 for clicks in click_lists):
            raise ValueError("every click list needs at least one click to take the newest from")
        rows = [[[float(c.y), float(c.x), float(c.is_positive)]] for c in (clicks[-1] for clicks in click_lists)]
        return {"new_points": torch.tensor(rows, dtype=torch.float32, device=device).long()}
