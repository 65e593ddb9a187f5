"""Several objects at once: one predictor per object, fused by S2M's soft aggregation.

MiVOS's multi-object use of S2M (reference §1.4): every stroke carries one label; for object k the
positive strokes are its own, the negative ones are the background strokes and every other
object's strokes. S2M runs once per object on the round's strokes and the object's committed mask,
the K sigmoids are aggregated with the background (:mod:`iseg.inference.aggregation`), and a
commit stores each object's aggregated map as its next previous mask.

Here ``add(prompt, object_id)`` labels a stroke as MiVOS does:
- a positive prompt is a stroke of ``object_id``: positive for it, negative for every other object;
- a negative prompt, or ``object_id=0``, is a background stroke: negative for every object. MiVOS has
  no "not this object" stroke; to say "this is object j, not k", add a positive stroke for j.
So every prompt reaches every object's network, and all objects are predicted again after each.

Options for the reference's quirks: ``hard_aggregation`` (MiVOS fuses with a softmax of 1000 x the
logits), ``hard_commit`` (MiVOS commits the hard label map; the single-object demo the soft map).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from iseg.inference.aggregation import aggregate
from iseg.inference.predictor import Predictor
from iseg.inference.views import View
from iseg.interaction.prompts import Prompt
from iseg.models.inputs import NetInputs, inputs_for

BACKGROUND = 0


@dataclass(frozen=True)
class _Step:
    """One action (a prompt or a commit) and the aggregated probabilities after it."""

    probabilities: np.ndarray
    prompt: Prompt | None
    object_id: int | None


class MultiObjectPredictor:
    """``set_image(image, object_ids)``, then ``add(prompt, object_id)``, ``commit()``, ``undo()``, ``reset()``.

    Args:
        net: an S2M-style network returning per-object logits under ``output``.
        object_ids: the objects (positive ints) of every image unless ``set_image`` names others.
        inputs: the method's adapter (None: ``net.default_inputs()``).
        views: a factory of one object's views (each object keeps its own view state), or None.
        output: the network output with one object's logits (S2M: ``object_logits``, the raw z).
        hard_aggregation / hard_commit: MiVOS's choices (see the module docstring).
    """

    def __init__(
        self,
        net: nn.Module,
        object_ids: Sequence[int] = (1,),
        inputs: NetInputs | None = None,
        views: Callable[[], Sequence[View | None] | Mapping[str, View | None] | None] | None = None,
        device: str | torch.device = "cpu",
        output: str = "object_logits",
        hard_aggregation: bool = False,
        hard_commit: bool = False,
    ):
        self.net = net
        self.inputs = inputs_for(net, inputs)
        self.make_views = views
        self.device = torch.device(device)
        self.output = output
        self.hard_aggregation = hard_aggregation
        self.hard_commit = hard_commit
        self._object_ids = self._checked_ids(object_ids)
        self._predictors: dict[int, Predictor] = {}
        self._image: np.ndarray | torch.Tensor | None = None
        self._steps: list[_Step] = []

    @staticmethod
    def _checked_ids(object_ids: Sequence[int]) -> tuple[int, ...]:
        ids = tuple(int(i) for i in object_ids)
        if not ids or len(set(ids)) != len(ids) or min(ids) <= BACKGROUND:
            raise ValueError(f"object_ids must be distinct positive integers (0 is the background), got {list(object_ids)}")
        return ids

    @property
    def object_ids(self) -> tuple[int, ...]:
        return self._object_ids

    def _predictor(self) -> Predictor:
        views = self.make_views() if self.make_views is not None else None
        return Predictor(self.net, self.inputs, views, device=self.device, output=self.output)

    def set_image(self, image: np.ndarray | torch.Tensor, object_ids: Sequence[int] | None = None) -> None:
        """Show a new image (forgets every prompt); ``object_ids`` replaces the objects for this image."""
        if object_ids is not None:
            self._object_ids = self._checked_ids(object_ids)
        self._predictors = {object_id: self._predictor() for object_id in self._object_ids}
        for predictor in self._predictors.values():
            predictor.set_image(image)
        self._image = image
        self._steps = []

    def _any(self) -> Predictor:
        if not self._predictors:
            raise RuntimeError("call set_image() before adding prompts")
        return next(iter(self._predictors.values()))

    def reset(self) -> None:
        """Forget every prompt and commit; keep the image and the objects."""
        for predictor in self._predictors.values():
            predictor.reset()
        self._steps = []

    @staticmethod
    def object_prompt(prompt: Prompt, object_id: int, target: int) -> Prompt:
        """How a prompt given for ``object_id`` reaches object ``target``'s network (module docstring)."""
        if prompt.is_positive and object_id == target:
            return prompt
        return replace(prompt, is_positive=False) if prompt.is_positive else prompt

    def add(self, prompt: Prompt, object_id: int) -> np.ndarray:
        """Add one prompt for ``object_id`` (0: background) and return the label map."""
        if object_id != BACKGROUND and object_id not in self._object_ids:
            raise KeyError(f"unknown object id {object_id}: this image's objects are {list(self._object_ids)} (0 = background)")
        self._any()
        for target, predictor in self._predictors.items():
            predictor.add(self.object_prompt(prompt, object_id, target))
        self._steps.append(_Step(self._aggregate(), prompt, object_id))
        return self.label_map()

    def commit(self) -> np.ndarray:
        """End the round: each object's aggregated map (soft, or the hard label map with
        ``hard_commit``) becomes its previous mask. Returns the label map."""
        self._any()
        probabilities = self.probabilities()
        labels = probabilities.argmax(0)
        for index, predictor in enumerate(self._predictors.values(), start=1):
            committed = (labels == index).astype(np.float32) if self.hard_commit else probabilities[index]
            predictor.commit(committed)
        self._steps.append(_Step(probabilities, None, None))
        return self.label_map()

    def undo(self) -> np.ndarray:
        """Take back the last prompt or commit; returns the label map before it."""
        if self._steps:
            self._steps.pop()
            for predictor in self._predictors.values():
                predictor.undo()
        return self.label_map()

    def _aggregate(self) -> np.ndarray:
        probs = np.stack([predictor.probs for predictor in self._predictors.values()])
        fused = aggregate(torch.from_numpy(probs)[None], keep_bg=True, hard=self.hard_aggregation)[0]
        return fused.numpy()

    def probabilities(self) -> np.ndarray:
        """(K + 1, H, W) float32: background, then the objects in ``object_ids`` order."""
        if self._steps:
            return self._steps[-1].probabilities
        height, width = self._any().image_size
        empty = np.zeros((len(self._object_ids) + 1, height, width), np.float32)
        empty[0] = 1.0
        return empty

    def label_map(self) -> np.ndarray:
        """(H, W) int32: 0 background, else the object id with the highest aggregated probability."""
        ids = np.asarray((BACKGROUND, *self._object_ids), np.int32)
        return ids[self.probabilities().argmax(0)]
