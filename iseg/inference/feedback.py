"""The two extra inputs of feedback networks (FCFI): the newest click and the gate.

FCFI's network gets, besides the image + previous probabilities and the click rows, the newest
click alone (FFCM corrects the feedback in a window around it) and a gate for CFFM's residual.
The reference evaluation (``fcfi:isegm/inference/{evaluation,predictors/base}.py``) builds them as:

- new click: the last click of each (zoom-in / flip transformed) click list as the float32 tensor
  (y, x, label) converted with ``.long()``, i.e. coordinates truncated toward zero after a float32
  rounding; label 1 = positive, 0 = negative;
- gate: 0.0 for the first click of an interaction (the feedback is then all zeros), 1.0 for every
  later click, whatever the previous mask holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from iseg.interaction.clicks import Click


def newest_clicks(click_lists: Sequence[Sequence[Click]], device: str | torch.device = "cpu") -> torch.Tensor:
    """(B, 1, 3) long tensor of the last click of each list: (y, x, 1 positive / 0 negative)."""
    if not click_lists or any(len(clicks) == 0 for clicks in click_lists):
        raise ValueError("every click list needs at least one click to take the newest from")
    rows = [[[float(c.y), float(c.x), float(c.is_positive)]] for c in (clicks[-1] for clicks in click_lists)]
    return torch.tensor(rows, dtype=torch.float32, device=device).long()


def feedback_gate(num_clicks: int) -> float:
    """CFFM's gate for a prediction made with ``num_clicks`` clicks: 0.0 for the first, then 1.0."""
    if num_clicks < 1:
        raise ValueError(f"a prediction needs at least one click, got {num_clicks}")
    return 0.0 if num_clicks == 1 else 1.0
