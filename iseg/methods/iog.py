"""IOG's training (s2m_iog_forte.md §2.5) on the shared :class:`~iseg.methods.interactive.InteractiveModule`.

Items come from :class:`~iseg.interaction.iog_sampler.IOGSampler`: the crop around one object and its
guidance heatmaps; there are no simulated click passes (``max_num_next_clicks`` 0).

- :class:`IOGModule` (main network): one forward; the loss table sums the void-masked BCE
  (:class:`~iseg.methods.iog_losses.IOGCrossEntropy`, batch-averaged sums) of coarse1..4 and
  the fine map, weight 1 each (conf/method/iog.yaml).
- :class:`IOGRefinementModule`: the refinement network's ``rounds`` (backbone once; a click
  simulated after each round from the crop GT); each round's loss is the weighted table (the
  reference counts coarse4 twice: weight 2 in conf/model/iog_refinement_resnet101.yaml) and the
  batch loss is :func:`~iseg.methods.iog_losses.refinement_loss` (round 0 alone once its IoU
  reaches 0.95, else the mean of rounds 0 and 1).

Validation runs the shared protocol with the IOG robot and the box-crop view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from iseg.evaluation.protocol import ProtocolConfig
from iseg.inference.views import View
from iseg.interaction.iog_robot import IOGRobot
from iseg.losses import LossTerm
from iseg.methods.interactive import InteractiveModule
from iseg.methods.iog_losses import refinement_loss
from iseg.models.inputs import NetInputs


class IOGModule(InteractiveModule):
    """IOG main network training: ``net(image=cat(255 x crop, guidance))`` and the loss table.

    Args are :class:`InteractiveModule`'s (no simulated clicks), plus ``robot``: the validation
    protocol's simulated user (default :class:`IOGRobot`).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        losses: Mapping[str, LossTerm | None],
        scheduler: Callable[..., Any] | None = None,
        inputs: NetInputs | None = None,
        protocol: ProtocolConfig | None = None,
        protocol_samples: int = 16,
        validation_views: Sequence[View | None] | Mapping[str, View | None] | None = None,
        num_logged_samples: int = 4,
        loss_check: bool = True,
        robot: Any | None = None,
    ):
        super().__init__(
            net,
            optimizer,
            losses,
            scheduler=scheduler,
            inputs=inputs,
            max_num_next_clicks=0,
            protocol=protocol,
            protocol_samples=protocol_samples,
            validation_views=validation_views,
            num_logged_samples=num_logged_samples,
            loss_check=loss_check,
            validation_robot=robot if robot is not None else IOGRobot(),
        )

    def interactive_forward(
        self, batch: Mapping[str, torch.Tensor], rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """One forward on the crop and its guidance: IOG draws no clicks, so ``rng`` is unused."""
        return self(batch["images"], self.inputs.training_prompts(batch))


class IOGRefinementModule(IOGModule):
    """IOG refinement training: ``num_rounds`` rounds (the reference: 2) and the round weighting.

    Args (besides :class:`IOGModule`'s): ``num_rounds`` (>= 2), ``iou_threshold`` (0.95).
    """

    def __init__(self, *args: Any, num_rounds: int = 2, iou_threshold: float = 0.95, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if num_rounds < 2:
            raise ValueError(f"num_rounds must be >= 2 (the loss mixes rounds 0 and 1), got {num_rounds}")
        self.num_rounds = num_rounds
        self.iou_threshold = iou_threshold
        self.hparams["num_rounds"] = num_rounds
        self.hparams["iou_threshold"] = iou_threshold

    def interactive_forward(
        self, batch: Mapping[str, torch.Tensor], rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        """The refinement rounds; their clicks follow from the crop's ground truth, so ``rng`` is unused."""
        images, gt = batch["images"], batch["instances"]
        inputs = self.inputs(images, torch.zeros_like(images[:, :1]), self.inputs.training_prompts(batch), 0, training=True)
        rounds = self.net.rounds(inputs["image"], inputs["guidance"], gt, self.num_rounds)
        outputs = [self.net.named_outputs(r.maps) for r in rounds]
        return {**outputs[0], "rounds": outputs, "round_ious": [r.iou for r in rounds]}

    def logged_names(self) -> list[str]:
        per_round = [f"round{index}_loss_{name}" for index in range(2) for name in self.loss_terms]
        return [*super().logged_names(), *per_round, "round0_iou"]

    def losses(self, outputs: Mapping[str, Any], gt: torch.Tensor, stage: str) -> tuple[torch.Tensor, dict]:
        totals, logs = [], {}
        for index, round_outputs in enumerate(outputs["rounds"][:2]):
            total, round_logs = super().losses(round_outputs, gt, stage)
            totals.append(total)
            logs.update({key.replace("/loss_", f"/round{index}_loss_"): value for key, value in round_logs.items()})
        iou0 = outputs["round_ious"][0]
        logs[f"{stage}/round0_iou"] = torch.tensor(iou0)
        return refinement_loss(totals, iou0, self.iou_threshold), logs
