"""RITM-style iterative click training with previous-mask guidance (ITER-M), as a LightningModule.

Per batch (reference §2.3): draw 0..max_num_next_clicks extra clicks; for each, run the network
in eval mode without gradients, add a click at the current error and feed the probabilities
back; then one forward with gradients on the final input. Losses: normalized focal loss on
``instances`` plus weighted BCE on ``instances_aux``. Validation logs the same losses and runs
the evaluation protocol (NoC@85/90, mIoU@k) on the datamodule's protocol samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from iseg.evaluation.distributed import shard_for_rank, gather_objects
from iseg.evaluation.protocol import evaluate_sample
from iseg.inference.predictor import Predictor
from iseg.interaction.iterative import simulate_iterative_clicks
from iseg.interaction.metrics import summarize
from iseg.losses import NormalizedFocalLoss, SigmoidBinaryCrossEntropyLoss
from iseg.models.init import lr_multiplier_groups


def _as_plain(config: Any) -> Any:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


class IterativeClickModule(L.LightningModule):
    """Trains any ISModel-like network with the ITER-M recipe.

    Args:
        net: the network's config (``_target_`` mapping, stored in the checkpoint so
            ``iseg.models.checkpoints.load_model`` rebuilds it) or an nn.Module.
        optimizer: factory ``params -> Optimizer`` (Hydra ``_partial_``); learning rates are
            scaled per parameter by the network's ``lr_multipliers()``.
        scheduler: factory ``optimizer -> LRScheduler`` stepped per epoch, or None.
        max_num_next_clicks: extra simulated clicks per batch are drawn from 0..this.
        instance_loss_weight / aux_loss_weight: NFL and BCE weights (1.0 / 0.4 in the paper).
        focal_alpha / focal_gamma: NFL parameters.
        protocol: validation protocol settings: ``num_samples`` (objects), ``max_clicks``,
            ``target_iou``, ``thresholds``, ``with_flip``.
        num_logged_samples: protocol samples kept for image logging each validation.
        loss_check: raise on a non-finite loss instead of training on.
    """

    def __init__(
        self,
        net: Mapping | nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | Mapping,
        scheduler: Callable[..., Any] | Mapping | None = None,
        max_num_next_clicks: int = 3,
        instance_loss_weight: float = 1.0,
        aux_loss_weight: float = 0.4,
        focal_alpha: float = 0.5,
        focal_gamma: float = 2.0,
        protocol: Mapping | None = None,
        num_logged_samples: int = 4,
        loss_check: bool = True,
    ):
        super().__init__()
        net_config = _as_plain(net) if not isinstance(net, nn.Module) else None
        self.save_hyperparameters(
            {
                "net": net_config,
                "optimizer": _as_plain(optimizer) if isinstance(optimizer, (Mapping, DictConfig)) else None,
                "scheduler": _as_plain(scheduler) if isinstance(scheduler, (Mapping, DictConfig)) else None,
                "max_num_next_clicks": max_num_next_clicks,
                "instance_loss_weight": instance_loss_weight,
                "aux_loss_weight": aux_loss_weight,
                "focal_alpha": focal_alpha,
                "focal_gamma": focal_gamma,
                "protocol": _as_plain(protocol),
                "num_logged_samples": num_logged_samples,
                "loss_check": loss_check,
            }
        )
        self.net = instantiate(net_config) if net_config is not None else net
        if getattr(self.net, "takes_feedback", False) and type(self).interactive_forward is IterativeClickModule.interactive_forward:
            raise TypeError(
                f"{type(self.net).__name__} is an FCFI network (it needs the newest click and the feedback "
                "gate): train it with iseg.methods.fcfi.FCFIModule (model=fcfi_hrnet18s / fcfi_resnet101)"
            )
        self._optimizer_factory = instantiate(optimizer) if isinstance(optimizer, (Mapping, DictConfig)) else optimizer
        self._scheduler_factory = instantiate(scheduler) if isinstance(scheduler, (Mapping, DictConfig)) else scheduler
        self.max_num_next_clicks = max_num_next_clicks
        self.instance_loss_weight = instance_loss_weight
        self.aux_loss_weight = aux_loss_weight
        self.instance_loss = NormalizedFocalLoss(alpha=focal_alpha, gamma=focal_gamma)
        self.aux_loss = SigmoidBinaryCrossEntropyLoss()
        self.protocol = {
            "num_samples": 24,
            "max_clicks": 20,
            "target_iou": 1.01,
            "thresholds": [0.85, 0.90],
            "with_flip": False,
            **(_as_plain(protocol) or {}),
        }
        self.num_logged_samples = num_logged_samples
        self.loss_check = loss_check
        self.logged_samples: list[dict] = []
        self.last_protocol_metrics: dict[str, float] = {}
        self._rng: np.random.Generator | None = None

    # ------------------------------------------------------------------ training
    @property
    def rng(self) -> np.random.Generator:
        """Click-simulation randomness: seeded from torch's seed and the rank so runs repeat."""
        if self._rng is None:
            seed = (torch.initial_seed() + 1000003 * self.global_rank) % 2**63
            self._rng = np.random.default_rng(seed)
        return self._rng

    def forward(self, images: torch.Tensor, points: torch.Tensor, prev_masks: torch.Tensor | None = None) -> dict:
        if getattr(self.net, "with_prev_mask", False):
            if prev_masks is None:
                prev_masks = torch.zeros_like(images[:, :1])
            images = torch.cat((images, prev_masks), dim=1)
        return self.net(images, points)

    def _shared_step(self, batch: Mapping[str, torch.Tensor], stage: str) -> torch.Tensor:
        gt = batch["instances"]
        outputs = self.interactive_forward(batch)
        loss, logs = self.losses(outputs, gt, stage)
        if self.loss_check and not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite {stage} loss {loss.item()} at epoch {self.current_epoch}, global step "
                f"{self.global_step} ({', '.join(f'{k}={v.item():.4g}' for k, v in logs.items())}); "
                "lower the learning rate or check the inputs of this batch"
            )
        logs[f"{stage}/iou"] = batch_iou(outputs["instances"].detach(), gt)
        options = {"on_step": stage == "train", "on_epoch": True, "batch_size": gt.shape[0], "sync_dist": stage != "train"}
        self.log_dict(logs, **options)
        self.log(f"{stage}/loss", loss, prog_bar=True, **options)
        return loss

    def interactive_forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """ITER-M: a random number of gradient-free click passes, then the trained forward."""
        images, gt, points = batch["images"], batch["instances"], batch["points"]
        num_iters = int(self.rng.integers(0, self.max_num_next_clicks + 1))
        with_prev_mask = bool(getattr(self.net, "with_prev_mask", False))
        prev_masks, points = simulate_iterative_clicks(
            self.net, images, None, gt, points, num_iters, self.rng, with_prev_mask=with_prev_mask
        )
        return self(images, points, prev_masks)

    def losses(self, outputs: Mapping[str, torch.Tensor], gt: torch.Tensor, stage: str) -> tuple[torch.Tensor, dict]:
        """(weighted total, {'<stage>/loss_<term>': unweighted batch mean}): NFL + aux BCE."""
        instance_loss = self.instance_loss(outputs["instances"], gt).mean()
        loss = self.instance_loss_weight * instance_loss
        logs = {f"{stage}/loss_instance": instance_loss}
        if self.aux_loss_weight and "instances_aux" in outputs:
            aux_loss = self.aux_loss(outputs["instances_aux"], gt).mean()
            loss = loss + self.aux_loss_weight * aux_loss
            logs[f"{stage}/loss_aux"] = aux_loss
        return loss, logs

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    # ---------------------------------------------------------------- protocol
    def on_validation_epoch_end(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "protocol_samples"):
            return
        if self.trainer.sanity_checking:
            return
        metrics = self.run_protocol(datamodule.protocol_samples(self.protocol["num_samples"]))
        self.last_protocol_metrics = metrics
        for name, value in metrics.items():
            self.log(f"val/{name}", value, prog_bar=name in ("noc85", "noc90"), sync_dist=False, rank_zero_only=False)

    @torch.no_grad()
    def run_protocol(self, samples: list) -> dict[str, float]:
        """NoC protocol on (image, gt, name) samples, sharded over ranks and gathered on every rank."""
        was_training = self.net.training
        predictor = Predictor(self.net, device=self.device, with_flip=self.protocol["with_flip"])
        indices = shard_for_rank(len(samples), self.global_rank, self.trainer.world_size if self._trainer else 1)
        local = []
        for index in indices:
            image, gt, name = samples[index][:3]
            predictor.set_image(image)
            result = evaluate_sample(
                lambda clicks: predictor.add_click(clicks[-1]),
                gt,
                max_clicks=self.protocol["max_clicks"],
                target_iou=self.protocol["target_iou"],
            )
            local.append((index, name, np.asarray(result.ious, np.float32), result.clicks, predictor.probs))
        self.net.train(was_training)
        gathered = sorted(gather_objects([(i, n, ious) for i, n, ious, _, _ in local]), key=lambda r: r[0])
        self.logged_samples = [
            {"image": samples[i][0], "gt": samples[i][1], "name": n, "clicks": clicks, "probs": probs}
            for i, n, _, clicks, probs in local[: self.num_logged_samples]
        ]
        summary = summarize([ious for _, _, ious in gathered], thresholds=self.protocol["thresholds"], max_clicks=self.protocol["max_clicks"])
        return _flat_metric_names(summary)

    # -------------------------------------------------------------- optimizers
    def configure_optimizers(self):
        if not hasattr(self.net, "lr_multipliers"):
            raise TypeError(f"{type(self.net).__name__} has no lr_multipliers(); the paper recipes need one per parameter")
        params = dict(self.net.named_parameters())
        probe = self._optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
        base_lr = probe.defaults["lr"]
        optimizer = self._optimizer_factory(lr_multiplier_groups(params, self.net.lr_multipliers(), base_lr))
        if self._scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._scheduler_factory(optimizer), "interval": "epoch"}}


def batch_iou(logits: torch.Tensor, gt: torch.Tensor, threshold: float = 0.49) -> torch.Tensor:
    """Mean IoU over samples with a non-empty union; ignore (-1) pixels left out."""
    valid = gt != -1
    pred = (torch.sigmoid(logits) > threshold) & valid
    target = (gt > 0.5) & valid
    inter = (pred & target).flatten(1).sum(1).float()
    union = (pred | target).flatten(1).sum(1).float()
    keep = union > 0
    if not bool(keep.any()):
        return torch.tensor(1.0, device=logits.device)
    return (inter[keep] / union[keep]).mean()


def _flat_metric_names(summary: Mapping[str, float]) -> dict[str, float]:
    """'NoC@85' -> 'noc85', 'mIoU@5' -> 'miou5': names safe in file names and CLI overrides."""
    return {key.lower().replace("@", ""): float(value) for key, value in summary.items()}
