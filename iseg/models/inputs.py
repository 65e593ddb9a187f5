"""Input adapters: the one place that knows what a method's network takes.

An adapter turns (image, previous probabilities, prompt tensors, step) into the keyword inputs of
its network; the predictor, the training simulation and the training module all call networks
through one, so none of them tests method flags. ``step`` counts the predictions made before this
one in the interaction (0 for the first click; in training, pass i of the simulation is step i-1
and the trained forward after k passes is step k).

Prompt tensors come from two places with the same keys: at inference the adapter's encoders
build them from prompt lists (:meth:`NetInputs.encode`); in training the sampler's batch gives the
first ones (:meth:`NetInputs.training_prompts`) and each simulated pass adds its clicks
(:meth:`NetInputs.add_clicks`).

A new method writes a subclass (e.g. FCFI's in :mod:`iseg.models.fcfi.inputs`) and its network's
``default_inputs()`` returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from iseg.interaction.device_clicks import ClickBatch
from iseg.interaction.encoders import PointsEncoder, PromptEncoder, PromptLists
from iseg.interaction.next_click import write_clicks
from iseg.interaction.prompts import Click, Prompt

PromptTensors = dict[str, torch.Tensor]


class NetInputs:
    """Base adapter: prompt encoding and the training prompts of the (B, 2N, 3) click layout."""

    output_space: Literal["logits", "probs"] = "logits"
    """What the network's ``instances`` holds: logits (most networks) or probabilities already
    (Forte et al.'s clamped alpha); :meth:`probabilities` turns either into probabilities."""

    def probabilities(self, outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The network's ``instances`` as probabilities."""
        instances = outputs["instances"]
        return torch.sigmoid(instances) if self.output_space == "logits" else instances

    def __init__(self, encoders: Sequence[PromptEncoder]):
        self.encoders = tuple(encoders)

    def config(self) -> dict[str, object]:
        """The constructor call that rebuilds this adapter (``_target_`` and arguments, JSON values),
        e.g. stored in an exported ONNX model so that the predictor can run it without the network."""
        raise NotImplementedError(f"{type(self).__name__} has no config(): it cannot be stored with an exported model")

    def encode(
        self, prompt_lists: PromptLists, device: torch.device | str, size: tuple[int, int] | None = None
    ) -> PromptTensors:
        """Prompt lists (one per batch item, network frame) -> the tensors of every encoder.

        ``size`` is the frame's (H, W), for adapters whose encoders draw maps (S2M's scribbles).
        """
        tensors: PromptTensors = {}
        for encoder in self.encoders:
            tensors.update(encoder(prompt_lists, device))
        return tensors

    def round_inputs(
        self, prompts: Sequence[Prompt], round_start: int, last: torch.Tensor, committed: torch.Tensor
    ) -> tuple[list[Prompt], torch.Tensor]:
        """What the next prediction sees: (prompts, previous map) given every prompt so far, where the
        open round starts (``Predictor.commit``), the last prediction and the map committed last.

        Click networks see every prompt and the last prediction (rounds change nothing); S2M sees
        only the open round's scribbles on top of the committed mask.
        """
        return list(prompts), last

    @property
    def prompt_types(self) -> tuple[type, ...]:
        """The prompt classes every encoder of this adapter takes: what a user interface may offer."""
        accepted: tuple[type, ...] | None = None
        for encoder in self.encoders:
            declared = getattr(encoder, "prompt_types", None)
            if declared is None:
                raise TypeError(f"prompt encoder {type(encoder).__qualname__} does not declare prompt_types")
            accepted = tuple(declared) if accepted is None else tuple(t for t in accepted if t in declared)
        return accepted or ()

    def training_prompts(self, batch: Mapping[str, torch.Tensor]) -> PromptTensors:
        """The prompt tensors of a training batch before any simulated pass."""
        return {"points": batch["points"]}

    def training_prev_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The previous mask a training batch starts from (None: zeros, as RITM's recipe)."""
        return None

    def add_clicks(
        self, prompts: PromptTensors, clicks: ClickBatch | Sequence[Click | None], probs: torch.Tensor, click_index: int
    ) -> PromptTensors:
        """Prompt tensors after simulated pass ``click_index`` (1-based) added ``clicks`` from ``probs``.

        ``clicks`` is the device :class:`ClickBatch` of the training rule (host click lists, None
        for no click, are accepted too); adapters keep the tensors on the device.
        """
        return {**prompts, "points": write_clicks(prompts["points"], clicks, click_index)}

    def __call__(
        self,
        image: torch.Tensor,
        prev_probs: torch.Tensor,
        prompts: PromptTensors,
        step: int,
        training: bool = False,
    ) -> dict[str, object]:
        raise NotImplementedError(f"{type(self).__name__} must build the network's inputs")


def inputs_for(net: object, inputs: NetInputs | None = None) -> NetInputs:
    """``inputs`` if given, else the network's own adapter (``net.default_inputs()``)."""
    if inputs is not None:
        return inputs
    if not hasattr(net, "default_inputs"):
        raise TypeError(
            f"{type(net).__name__} has no default_inputs(): pass the method's input adapter as inputs= "
            "(e.g. iseg.models.inputs.ClickInputs)"
        )
    return net.default_inputs()


class ClickInputs(NetInputs):
    """RITM-lineage networks: ``net(image, points)``, image + previous probabilities as channel 3
    when ``prev_mask`` (ITER-M networks)."""

    def __init__(self, prev_mask: bool = True, net_clicks_limit: int | None = None):
        super().__init__([PointsEncoder(net_clicks_limit)])
        self.prev_mask = prev_mask
        self.net_clicks_limit = net_clicks_limit

    def config(self) -> dict[str, object]:
        return {
            "_target_": f"{type(self).__module__}.{type(self).__qualname__}",
            "prev_mask": self.prev_mask,
            "net_clicks_limit": self.net_clicks_limit,
        }

    def network_image(self, image: torch.Tensor, prev_probs: torch.Tensor) -> torch.Tensor:
        return torch.cat((image, prev_probs), dim=1) if self.prev_mask else image

    def __call__(
        self,
        image: torch.Tensor,
        prev_probs: torch.Tensor,
        prompts: PromptTensors,
        step: int,
        training: bool = False,
    ) -> dict[str, object]:
        return {"image": self.network_image(image, prev_probs), "points": prompts["points"]}
