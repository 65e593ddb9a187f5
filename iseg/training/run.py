"""The importable training function behind train.py: compose-able, testable, sweep-friendly."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf

from iseg.allocator import keep_freed_memory
from iseg.runtime import (
    finish_wandb,
    instantiate_group,
    quiet_start,
    remove_unstarted_run_dir,
    setup_phase,
    single_log_file,
    thread_settings,
)
from iseg.training.checkpointing import check_resume_checkpoint
from iseg.training.resume import RunRecord, carry_wandb_run, resolve_ckpt_path

log = logging.getLogger(__name__)


@rank_zero_only
def log_hyperparameters(cfg: DictConfig, model: L.LightningModule, trainer: L.Trainer) -> None:
    """Send the composed config and parameter counts to every logger (rank 0 only)."""
    if not trainer.loggers:
        return
    params = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "model/params_total": sum(p.numel() for p in model.parameters()),
        "model/params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def _protocol_metrics(results: list[Mapping[str, Any]]) -> dict[str, float]:
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


@rank_zero_only
def print_comparison(before: Mapping[str, float], after: Mapping[str, float], keys: list[str]) -> None:
    """The closing table: the protocol metrics of the untrained and the trained network."""
    width = max(len(k) for k in keys) + 2
    lines = ["", "Evaluation protocol on the validation split (NoC: mean clicks to reach the IoU, lower is better;",
             "mIoU@k: mean IoU after k clicks, higher is better)",
             f"{'metric':<{width}}{'untrained':>12}{'trained':>12}"]
    for key in keys:
        b, a = before.get(key, float("nan")), after.get(key, float("nan"))
        lines.append(f"{key:<{width}}{b:>12.2f}{a:>12.2f}")
    print("\n".join(lines), flush=True)


def _refuse_multirun_ddp(cfg: DictConfig) -> None:
    """Lightning's `ddp` re-runs the script per rank, which would re-run a whole Hydra sweep."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        # submitit's launchers start every rank as a task of its own (Lightning's SLURM environment)
        launcher = str(HydraConfig.get().launcher.get("_target_", "")) if multirun else ""
        multirun = multirun and "submitit" not in launcher
    except ValueError:
        multirun = False
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if multirun and strategy.startswith("ddp") and not strategy.startswith("ddp_spawn"):
        raise ValueError(
            f"trainer.strategy={strategy} cannot run inside a Hydra multirun (each rank would re-run the "
            "sweep); use trainer.strategy=ddp_spawn for sweeps, or a cluster launcher (hydra/launcher=submitit_slurm)"
        )


def _output_dir(cfg: DictConfig) -> Path | None:
    try:
        return Path(str(cfg.paths.output_dir))
    except Exception:  # composed without Hydra's runtime (no paths group): no run folder to manage
        return None


def _processes_per_node(cfg: DictConfig) -> int:
    """Training processes this machine runs (the devices of a DDP run), which share its CPUs."""
    devices = (cfg.get("trainer") or {}).get("devices", 1)
    if isinstance(devices, int) and devices > 1:
        return devices
    if isinstance(devices, (list, tuple, ListConfig)):
        return max(1, len(devices))
    if isinstance(devices, str) and devices.isdigit():
        return max(1, int(devices))
    return 1


def train(cfg: DictConfig) -> float | None:
    """Train as configured; returns ``cfg.optimized_metric`` after training (for sweeps).

    A run that fails before writing anything (a config or data error) leaves no run folder; errors
    raised while the run is set up are marked so that train.py reports them as user errors.
    """
    single_log_file()
    quiet_start()
    output_dir = _output_dir(cfg)
    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()  # before the loader workers fork: they inherit it
    try:
        with thread_settings(cfg.get("threads"), _processes_per_node(cfg)):
            return _train(cfg)
    except BaseException:
        if output_dir is not None and remove_unstarted_run_dir(output_dir):
            log.debug("removed the run folder %s: the run never started", output_dir)
        raise


def _train(cfg: DictConfig) -> float | None:
    with setup_phase():
        _refuse_multirun_ddp(cfg)
        if cfg.get("seed") is not None:
            L.seed_everything(cfg.seed, workers=True)
        torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))

        datamodule: L.LightningDataModule = instantiate(cfg.data)
        model: L.LightningModule = instantiate(cfg.model)
        model.record_config(cfg.model)  # the network's config travels in the checkpoint (load_model rebuilds it)
        ckpt_path = resolve_ckpt_path(cfg, _output_dir(cfg))
        if ckpt_path:
            checkpoint = check_resume_checkpoint(ckpt_path, model)
            carry_wandb_run(cfg.get("logger"), checkpoint)  # the resumed run continues the same W&B run
            del checkpoint
        # every checkpoint records the versions, the git commit and the config that produced it
        callbacks = [*instantiate_group(cfg.get("callbacks"), "callbacks"), RunRecord(cfg)]
        loggers = instantiate_group(cfg.get("logger"), "logger")
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log_hyperparameters(cfg, model, trainer)

    report_keys = [f"val/{k}" for k in cfg.get("report_metrics", ["noc85", "noc90"])]
    before: dict[str, float] = {}
    try:
        if cfg.get("validate_before_training", False) and not trainer.fast_dev_run:
            before = _protocol_metrics(trainer.validate(model, datamodule=datamodule, verbose=False))
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if before:
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            after = _protocol_metrics(
                trainer.validate(model, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=False)
            )
            print_comparison(before, after, report_keys)
            metrics.update(after)
        log.info(
            "rank %d/%d finished: epoch %d, global step %d",
            trainer.global_rank, trainer.world_size, trainer.current_epoch, trainer.global_step,
        )
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
        if best and trainer.is_global_zero:
            log.info("best checkpoint: %s", best)
    finally:
        finish_wandb()

    name = cfg.get("optimized_metric")
    if not name:
        return None
    monitor = trainer.checkpoint_callback
    if not before and getattr(monitor, "monitor", None) == name and getattr(monitor, "best_model_score", None) is not None:
        metrics[name] = float(monitor.best_model_score)  # the best epoch's value (the kept checkpoint's), for sweeps
    if name not in metrics:
        raise KeyError(f"optimized_metric '{name}' was not logged; logged metrics: {sorted(metrics)}")
    return metrics[name]
