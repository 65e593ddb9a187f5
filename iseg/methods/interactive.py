"""Iterative interactive training (RITM's ITER-M recipe) for any method, as a LightningModule.

Per batch (reference §2.3): draw 0..max_num_next_clicks extra clicks; for each, run the network
in eval mode without gradients, add a click at the current error and feed the probabilities
back; then one forward with gradients on the final inputs. Validation logs the same losses and
runs the evaluation protocol (:func:`~iseg.evaluation.protocol.run_protocol`) on the datamodule's
protocol samples.

A method is this module with its parts: the network, its input adapter
(:class:`~iseg.models.inputs.NetInputs`, default ``net.default_inputs()``) and its table of named,
weighted loss terms (:class:`~iseg.losses.LossTerm`). RITM: NFL on ``instances`` + 0.4 BCE on
``instances_aux``; FCFI: NFL + its feedback terms (conf/method/*.yaml). All arrive built (Hydra
instantiates them from the config); the module instantiates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MeanMetric

from iseg.evaluation.distributed import shard_for_rank
from iseg.evaluation.protocol import ProtocolConfig, Sample, SampleRecord, run_protocol
from iseg.inference.predictor import Predictor
from iseg.inference.views import View
from iseg.interaction.device_clicks import ClickSampler, DeviceClickSampler
from iseg.interaction.iterative import simulate_iterative_clicks
from iseg.interaction.next_click import ClickRule, HostClickSampler
from iseg.interaction.robots import Robot
from iseg.losses import LossTerm
from iseg.models.init import lr_multiplier_groups
from iseg.models.inputs import NetInputs, PromptTensors, inputs_for
from iseg.training.loss_check import NonFiniteLossCheck
from iseg.training.resume import random_state, restore_generator, restore_torch_random_state


class InteractiveModule(L.LightningModule):
    """Trains a network with the iterative click recipe.

    Args:
        net: the network (an ``nn.Module`` with ``lr_multipliers()``).
        optimizer: factory ``params -> Optimizer`` (Hydra ``_partial_``); learning rates are
            scaled per parameter by the network's ``lr_multipliers()``.
        losses: name -> :class:`~iseg.losses.LossTerm`, added in order; None entries are off.
        scheduler: factory ``optimizer -> LRScheduler`` stepped per epoch, or None.
        inputs: the method's input adapter; None takes ``net.default_inputs()``.
        max_num_next_clicks: extra simulated clicks per batch are drawn from 0..this.
        protocol: the validation protocol's settings (conf/method: all 20 clicks, NoC@85/90).
        protocol_samples: number of validation objects the protocol runs on.
        validation_views: the validation predictor's views (none: the plain network).
        num_logged_samples: protocol samples kept for image logging each validation.
        loss_check: raise on a non-finite loss instead of training on.
        click_rule: how a simulated pass places its click (None: RITM's random rule; Forte et al.:
            :func:`~iseg.interaction.forte_robot.forte_training_clicks`).
        validation_robot: the validation protocol's simulated user (None: the standard clicker).
        simulate_on_device: run the simulated clicks' rule on the batch's device (no host round
            trip); False runs the same rule on the host, one sample at a time (the reference's way).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        losses: Mapping[str, LossTerm | None],
        scheduler: Callable[..., Any] | None = None,
        inputs: NetInputs | None = None,
        max_num_next_clicks: int = 3,
        protocol: ProtocolConfig | None = None,
        protocol_samples: int = 16,
        validation_views: Sequence[View | None] | Mapping[str, View | None] | None = None,
        num_logged_samples: int = 4,
        loss_check: bool = True,
        click_rule: ClickRule | None = None,
        validation_robot: Robot | None = None,
        simulate_on_device: bool = True,
    ):
        super().__init__()
        self.net = net
        self.inputs = inputs_for(net, inputs)
        self.loss_terms = nn.ModuleDict({name: term for name, term in losses.items() if term is not None})
        if not self.loss_terms:
            raise ValueError("losses is empty: give at least one loss term (name -> iseg.losses.LossTerm)")
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler
        self.max_num_next_clicks = max_num_next_clicks
        self.protocol = protocol or ProtocolConfig()
        self.protocol_samples = protocol_samples
        self.validation_views = validation_views
        self.num_logged_samples = num_logged_samples
        self.loss_check = loss_check
        self._loss_check = NonFiniteLossCheck()
        self.click_rule = click_rule
        self.validation_robot = validation_robot
        self.simulate_on_device = simulate_on_device
        self.save_hyperparameters(
            {
                "max_num_next_clicks": max_num_next_clicks,
                "losses": {name: term.weight for name, term in self.loss_terms.items()},
                "protocol": self.protocol.as_dict(),
                "protocol_samples": protocol_samples,
                "num_logged_samples": num_logged_samples,
                "loss_check": loss_check,
            }
        )
        # per-stage running means (batch-size weighted) whose states torchmetrics syncs across ranks:
        # an epoch value is the mean over every sample of every rank, not a mean of per-rank means.
        # No NaN screening: it reads every value back to the host, and the loss check stops a
        # non-finite loss (with loss_check off, a NaN shows in the mean rather than being dropped).
        self.stage_metrics = nn.ModuleDict(
            {
                _metric_key(f"{stage}/{name}"): MeanMetric(nan_strategy="disable")
                for stage in ("train", "val")
                for name in self.logged_names()
            }
        )
        self.logged_samples: list[dict] = []
        self.last_protocol_metrics: dict[str, float] = {}
        self._rng: np.random.Generator | None = None
        self._val_rng: np.random.Generator | None = None
        self._restored_random_state: dict[str, Any] | None = None

    def logged_names(self) -> list[str]:
        """The per-stage values :meth:`losses` and the step log (``'<stage>/<name>'``), each a running mean."""
        return ["loss", "iou", *(f"loss_{name}" for name in self.loss_terms)]

    def record_config(self, config: DictConfig | Mapping[str, Any]) -> None:
        """Keep the module's Hydra config in the checkpoint: ``hyper_parameters['net']`` is what
        :func:`iseg.models.checkpoints.load_model` rebuilds the network from."""
        plain = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else dict(config)
        self.hparams["net"] = plain["net"]
        self.hparams["config"] = plain

    # ------------------------------------------------------------------ training
    @property
    def rng(self) -> np.random.Generator:
        """Training click-simulation randomness: seeded from torch's seed and the rank so runs repeat;
        its state travels in checkpoints, so a resumed run continues the same stream."""
        if self._rng is None:
            seed = (torch.initial_seed() + 1000003 * self.global_rank) % 2**63
            self._rng = np.random.default_rng(seed)
        return self._rng

    def on_validation_epoch_start(self) -> None:
        # validation simulates the same clicks every time, and leaves the training stream alone
        self._val_rng = np.random.default_rng([torch.initial_seed() % 2**63, self.global_rank, 1])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._loss_check.verify()  # no checkpoint of weights updated from a non-finite loss
        checkpoint["random_state"] = random_state(self.rng)
        trainer = self._trainer
        if trainer is not None and trainer.training and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            # mid-epoch: the epoch's running training means go on after a resume
            checkpoint["train_metric_states"] = {
                key: {name: value.detach().clone() for name, value in metric.metric_state.items()}
                for key, metric in self.stage_metrics.items()
                if key.startswith("train_")
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the click stream now; torch's generators when training starts (not when a checkpoint is only read)
        state = checkpoint.get("random_state")
        if state is not None:
            self._rng = restore_generator(state)
            self._restored_random_state = state
        for key, states in checkpoint.get("train_metric_states", {}).items():
            if key in self.stage_metrics:
                metric = self.stage_metrics[key]
                for name, value in states.items():
                    setattr(metric, name, value)
                metric._update_count = 1  # it has been updated (torchmetrics warns on compute otherwise)

    def on_train_start(self) -> None:
        if self._restored_random_state is not None:
            restore_torch_random_state(self._restored_random_state)
            self._restored_random_state = None

    def click_sampler(self, rng: np.random.Generator) -> ClickSampler:
        """The simulated passes' next-click rule drawing from ``rng``: the method's own rule on the host,
        else the training rule on the batch's device (or on the host, one sample at a time)."""
        if self.click_rule is not None:
            return HostClickSampler(rng, rule=self.click_rule)
        return DeviceClickSampler(rng) if self.simulate_on_device else HostClickSampler(rng)

    def forward(
        self, images: torch.Tensor, prompts: PromptTensors, prev_masks: torch.Tensor | None = None, step: int = 0
    ) -> dict[str, torch.Tensor]:
        """The training-path forward on images, prompt tensors and previous probabilities (zeros if None)."""
        if prev_masks is None:
            prev_masks = torch.zeros_like(images[:, :1])
        return self.net(**self.inputs(images, prev_masks, prompts, step, training=True))

    def interactive_forward(
        self, batch: Mapping[str, torch.Tensor], rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """ITER-M: a random number of gradient-free click passes, then the trained forward."""
        rng = self.rng if rng is None else rng
        images, gt = batch["images"], batch["instances"]
        num_iters = int(rng.integers(0, self.max_num_next_clicks + 1))
        prompts = self.inputs.training_prompts(batch)
        prev_masks, prompts = simulate_iterative_clicks(
            self.net, self.inputs, images, gt, prompts, num_iters, self.click_sampler(rng),
            self.inputs.training_prev_mask(batch),
        )
        return self(images, prompts, prev_masks, step=num_iters)

    def losses(self, outputs: Mapping[str, torch.Tensor], gt: torch.Tensor, stage: str) -> tuple[torch.Tensor, dict]:
        """(weighted total, {'<stage>/loss_<name>': unweighted batch mean}); zero-weight terms are skipped."""
        total: torch.Tensor | None = None
        logs = {}
        for name, term in self.loss_terms.items():
            if not term.weight:
                continue
            value = term(outputs, gt, step=self.global_step)
            weighted = term.weight * value
            total = weighted if total is None else total + weighted
            logs[f"{stage}/loss_{name}"] = value
        if total is None:
            raise ValueError(f"every loss term has weight 0: {list(self.loss_terms)}")
        return total, logs

    def _shared_step(self, batch: Mapping[str, torch.Tensor], stage: str) -> torch.Tensor:
        gt = batch["instances"]
        if stage != "train" and self._val_rng is None:
            self.on_validation_epoch_start()
        outputs = self.interactive_forward(batch, self.rng if stage == "train" else self._val_rng)
        loss, logs = self.losses(outputs, gt, stage)
        if self.loss_check:
            self._loss_check(loss, logs, stage, self.current_epoch, self.global_step)
        logs[f"{stage}/iou"] = batch_iou(self.inputs.probabilities(outputs).detach(), gt)
        logs[f"{stage}/loss"] = loss
        batch_size = gt.shape[0]
        for name, value in logs.items():
            metric = self.stage_metrics[_metric_key(name)]
            metric(value.detach(), batch_size)  # updates the epoch state; the batch value for on_step logging
            self.log(name, metric, on_step=stage == "train", on_epoch=True, batch_size=batch_size,
                     prog_bar=name == f"{stage}/loss")
        return loss

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    # ---------------------------------------------------------------- protocol
    def on_train_epoch_end(self) -> None:
        self._loss_check.verify()

    def on_validation_epoch_end(self) -> None:
        self._loss_check.verify()
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "protocol_samples"):
            return
        if self.trainer.sanity_checking:
            return
        num_samples, protocol = self.protocol_samples, self.protocol
        if self.trainer.fast_dev_run:  # a config check: a tiny protocol, not the whole one
            num_samples, protocol = 1, replace(protocol, max_clicks=min(2, protocol.max_clicks))
        metrics = self.run_protocol(datamodule.protocol_samples(num_samples), protocol)
        self.last_protocol_metrics = metrics
        for name, value in metrics.items():
            self.log(f"val/{name}", value, prog_bar=name in ("noc85", "noc90"), sync_dist=False, rank_zero_only=False)

    @torch.no_grad()
    def run_protocol(self, samples: Sequence, protocol: ProtocolConfig | None = None) -> dict[str, float]:
        """The protocol on (image, gt, name) samples, sharded over ranks and gathered on every rank.

        Trainer callbacks with ``on_protocol_start/record/end`` hooks hear of its progress
        (:class:`~iseg.training.progress.ProgressLog`: a bar task in a terminal, log lines elsewhere).
        """
        protocol = protocol or self.protocol
        was_training = self.net.training
        predictor = Predictor(self.net, self.inputs, self.validation_views, device=self.device, pred_thr=protocol.pred_thr)
        items = [Sample(name, image, gt) for image, gt, name, *_ in samples]  # the datamodule's (image, gt, name)
        kept: list[dict] = []
        world_size = self.trainer.world_size if self._trainer else 1
        share = len(shard_for_rank(len(items), self.global_rank, world_size)) if items else 0
        listeners = self._protocol_listeners()
        done = 0

        def on_record(record: SampleRecord, sample: Sample, model: Predictor) -> None:
            nonlocal done
            done += 1
            if len(kept) < self.num_logged_samples:
                kept.append(
                    {"image": sample.image, "gt": sample.gt, "name": sample.name, "clicks": record.result.clicks, "probs": model.probs}
                )
            for listener in listeners:
                listener.on_protocol_record(self.trainer, self, done, share, record)

        for listener in listeners:
            listener.on_protocol_start(self.trainer, self, share)
        try:
            run = run_protocol(
                predictor, items, protocol, self.validation_robot,
                rank=self.global_rank, world_size=world_size, on_record=on_record,
            )
        finally:
            self.net.train(was_training)
        self.logged_samples = kept
        metrics = _flat_metric_names(run.dataset_result().summary)
        for listener in listeners:
            listener.on_protocol_end(self.trainer, self, metrics, done, share)
        return metrics

    def _protocol_listeners(self) -> list[Any]:
        """The trainer's callbacks that follow the protocol (``on_protocol_start/record/end``)."""
        if self._trainer is None:
            return []
        hooks = ("on_protocol_start", "on_protocol_record", "on_protocol_end")
        return [cb for cb in self.trainer.callbacks if all(callable(getattr(cb, hook, None)) for hook in hooks)]

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


def _metric_key(name: str) -> str:
    """A logged name's key in the metrics' ModuleDict: 'train/loss' -> 'train_loss' (no dots or slashes)."""
    return name.replace("/", "_").replace(".", "_")


def batch_iou(probs: torch.Tensor, gt: torch.Tensor, threshold: float = 0.49) -> torch.Tensor:
    """Mean IoU of probabilities over samples with a non-empty union; ignore (-1) pixels left out."""
    valid = gt != -1
    pred = (probs > threshold) & valid
    target = (gt > 0.5) & valid
    inter = (pred & target).flatten(1).sum(1).float()
    union = (pred | target).flatten(1).sum(1).float()
    kept = (union > 0).sum()
    mean = (inter / union.clamp(min=1)).sum() / kept.clamp(min=1)  # an empty union has inter 0
    return torch.where(kept > 0, mean, torch.ones_like(mean))  # computed on the device: no host read


def _flat_metric_names(summary: Mapping[str, float]) -> dict[str, float]:
    """'NoC@85' -> 'noc85', 'mIoU@5' -> 'miou5': names safe in file names and CLI overrides."""
    return {key.lower().replace("@", ""): float(value) for key, value in summary.items()}
