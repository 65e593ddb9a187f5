"""Evaluate a checkpoint on evaluation sets under the NoC protocol: the code behind evaluate.py.

- :func:`evaluate_checkpoint` is the Python entry: a checkpoint (any format ``load_model``
  reads) and named evaluation sets in, one :class:`DatasetEvaluation` per set out.
- :func:`evaluate` is the Hydra entry (``conf/eval/evaluate.yaml``): it launches the processes
  with Lightning Fabric, builds the sets from the ``data`` entries, and on rank 0 prints the table
  and writes the reports into the run directory (and to the configured loggers).

Every sample is evaluated with a fresh interaction state, so the samples can be dealt over ranks
(:func:`~iseg.evaluation.distributed.shard_for_rank`) and gathered back in dataset order: any
number of processes gives the per-sample results of one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn

from iseg.data.eval import EvaluationSet, Exclusion, build_evaluation_dataset
from iseg.evaluation.distributed import gather_objects, shard_for_rank
from iseg.evaluation.protocol import DatasetResult, SampleResult, evaluate_sample, summarize_samples
from iseg.inference.predictor import Predictor
from iseg.interaction.boundary_metrics import DEFAULT_DILATION_RATIO
from iseg.interaction.clicks import Click
from iseg.interaction.metrics import noc_thresholds
from iseg.models.checkpoints import load_model

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The repository's ``conf/``: evaluate.yaml adds it to Hydra's search path for paths/hydra/logger."""

if not OmegaConf.has_resolver("iseg_config_dir"):
    OmegaConf.register_new_resolver("iseg_config_dir", lambda: str(CONFIG_DIR))

RITM_ZOOM_IN: dict[str, Any] = {
    "target_size": 400,
    "skip_clicks": 1,
    "expansion_ratio": 1.4,
    "min_crop_size": 200,
    "recompute_thresh_iou": 0.5,
    "prob_thresh": 0.5,
}
RITM_PREDICTOR: dict[str, Any] = {"with_flip": True, "net_clicks_limit": None, "zoom_in": RITM_ZOOM_IN}
RITM_ZOOM_IN_PER_DATASET: dict[str, dict[str, Any]] = {"davis": {"target_size": 600}}
FCFI_ZOOM_COLUMNS = ("hrnet18s", "resnet101")
"""Columns of FCFI's per-dataset zoom-in table (conf/eval/predictor/fcfi.yaml ``fcfi_zoom_in``)."""


@dataclass
class SampleRecord:
    """One evaluated sample: its position in the set, its name and the protocol result."""

    index: int
    name: str
    result: SampleResult


@dataclass
class Example:
    """What a picture of one interaction needs (kept for a few samples on rank 0 only)."""

    index: int
    name: str
    image: np.ndarray
    gt: np.ndarray
    probs: np.ndarray
    clicks: list[Click]


@dataclass
class DatasetEvaluation:
    """The results of one evaluation set.

    ``result.seconds`` is the evaluation loop time summed over ranks (sample loading, clicker,
    network, IoU), so ``result.seconds_per_click`` is one process's time per click, comparable
    with the reference's SPC whatever the number of processes; ``wall_seconds`` is rank 0's
    elapsed time including the gathering.
    """

    key: str
    title: str
    root: str
    records: list[SampleRecord]
    exclusions: list[Exclusion]
    result: DatasetResult
    wall_seconds: float
    predictor: dict[str, Any]
    protocol: dict[str, Any]
    world_size: int = 1
    examples: list[Example] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, float]:
        return self.result.summary

    @property
    def wall_seconds_per_click(self) -> float:
        """Elapsed time per click: what the user waits, lower than SPC with several processes."""
        return self.wall_seconds / max(self.result.num_clicks, 1)


def evaluate_checkpoint(
    checkpoint: str | Path | nn.Module,
    datasets: Mapping[str, EvaluationSet | str | Path],
    *,
    device: str | torch.device = "cpu",
    predictor: Mapping[str, Any] | None = None,
    zoom_in_per_dataset: Mapping[str, Mapping[str, Any]] | None = None,
    max_clicks: int = 20,
    target_iou: float = 0.90,
    min_clicks: int = 1,
    pred_thr: float = 0.49,
    boundary_metrics: bool = False,
    dilation_ratio: float = DEFAULT_DILATION_RATIO,
    max_samples: int | None = None,
    num_examples: int = 0,
    channels_last: bool = True,
) -> list[DatasetEvaluation]:
    """Run the NoC protocol of a checkpoint on each set; defaults are RITM's evaluation.

    Args:
        checkpoint: a checkpoint file (iseg or official, see :func:`~iseg.models.checkpoints.load_model`)
            or a network.
        datasets: name -> an :class:`~iseg.data.eval.EvaluationSet`, or the root folder of the
            registered set of that name (``{'grabcut': '/data/GrabCut'}``).
        device: where the network runs.
        predictor: keyword arguments of :class:`~iseg.inference.predictor.Predictor` (or of the
            class named by a ``_target_`` entry) over RITM's (flip on, zoom-in 400);
            ``{'zoom_in': None}`` turns zoom-in off.
        zoom_in_per_dataset: name -> changes of ``predictor['zoom_in']`` for that set (default:
            600 on DAVIS); ignored when zoom-in is off.
        max_clicks, target_iou, min_clicks, pred_thr: the protocol (see
            :func:`~iseg.evaluation.protocol.evaluate_sample`).
        boundary_metrics: also record boundary IoU (band ``dilation_ratio`` of the diagonal) and
            ASSD after every click, summarized as mBIoU@k and ASSD@k (FCFI's metrics).
        max_samples: evaluate only the first this-many samples of each set.
        num_examples: keep image, GT, final probabilities and clicks of this many samples per
            set (rank 0's first ones) for pictures.
        channels_last: convert the network (in place) to channels_last memory format: the same
            clicks, faster convolutions on oneDNN and cuDNN.

    Under ``torch.distributed`` every rank must call this with the same arguments; the samples are
    sharded over the ranks and every rank returns the gathered results.
    """
    if not datasets:
        raise ValueError("no evaluation set given")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    options = {**RITM_PREDICTOR, **(predictor or {})}
    per_dataset = RITM_ZOOM_IN_PER_DATASET if zoom_in_per_dataset is None else zoom_in_per_dataset
    sets = {key: _as_evaluation_set(key, value) for key, value in datasets.items()}
    net = checkpoint if isinstance(checkpoint, nn.Module) else load_model(checkpoint, map_location="cpu")
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    rank, world_size = _rank_and_world_size()
    protocol = {
        "max_clicks": max_clicks,
        "target_iou": target_iou,
        "min_clicks": min_clicks,
        "pred_thr": pred_thr,
        "boundary_metrics": bool(boundary_metrics),
        "dilation_ratio": dilation_ratio,
    }
    evaluations = []
    for key, dataset in sets.items():
        settings = {**options, "zoom_in": _dataset_zoom_in(options.get("zoom_in"), per_dataset.get(key))}
        model = _build_predictor(net, device, settings, pred_thr)
        evaluations.append(
            _evaluate_set(key, dataset, model, settings, protocol, max_samples, num_examples, rank, world_size)
        )
    return evaluations


def _as_evaluation_set(key: str, value: EvaluationSet | str | Path) -> EvaluationSet:
    if isinstance(value, EvaluationSet):
        return value
    if isinstance(value, (str, Path)):
        return build_evaluation_dataset(key, value)
    raise TypeError(f"evaluation set '{key}': expected an EvaluationSet or a root folder, got {type(value).__name__}")


def _dataset_zoom_in(base: Any, change: Mapping[str, Any] | None) -> Any:
    """The zoom-in of one set: the predictor's, updated by the set's entry (a mapping base only)."""
    if base is None or not change:
        return base
    if not isinstance(base, Mapping):
        raise ValueError(f"per-dataset zoom-in changes {dict(change)} need predictor zoom_in parameters, got {base!r}")
    return {**base, **change}


def _build_predictor(net: nn.Module, device: str | torch.device, settings: Mapping[str, Any], pred_thr: float) -> Any:
    """A Predictor (or the class named by ``_target_``) around ``net`` with ``settings``.

    A feedback network (FCFI) needs the newest click and the gate at every call: a predictor class
    that does not provide them (no ``supports_feedback_networks``) is refused before the run.
    """
    kwargs = {k: v for k, v in settings.items() if k != "_target_"}
    kwargs.setdefault("pred_thr", pred_thr)
    target = settings.get("_target_")
    if target is None:
        cls: type = Predictor
    else:
        from hydra.utils import get_class

        cls = get_class(str(target))
    if getattr(net, "takes_feedback", False) and not getattr(cls, "supports_feedback_networks", False):
        raise ValueError(
            f"the checkpoint holds {network_description(net)}, which needs the newest click and the gate at "
            f"every call; predictor class {cls.__module__}.{cls.__qualname__} does not provide them: use "
            "predictor=fcfi (FCFI's protocol) or predictor=ritm (RITM's settings), i.e. "
            "iseg.inference.predictor.Predictor"
        )
    return cls(net, device=device, **kwargs)


def network_description(net: nn.Module) -> str:
    """'FCFIHRNetModel (an FCFI feedback network)' or 'HRNetModel (a RITM-style network, no feedback input)'."""
    if getattr(net, "takes_feedback", False):
        return f"{type(net).__name__} (an FCFI feedback network)"
    return f"{type(net).__name__} (a RITM-style network, no feedback input)"


def fcfi_zoom_column(net: nn.Module) -> str:
    """FCFI's zoom-in table column for a network: HRNet -> 'hrnet18s', DeepLab (ResNet) -> 'resnet101'."""
    from iseg.models.deeplab_model import DeeplabModel
    from iseg.models.hrnet_model import HRNetModel

    if isinstance(net, HRNetModel):
        return "hrnet18s"
    if isinstance(net, DeeplabModel):
        return "resnet101"
    raise ValueError(
        f"cannot tell FCFI's zoom-in column for a {type(net).__name__} (neither HRNet nor DeepLab): "
        f"set fcfi_zoom_in.backbone to one of {list(FCFI_ZOOM_COLUMNS)}"
    )


def _rank_and_world_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _evaluate_set(
    key: str,
    dataset: EvaluationSet,
    predictor: Any,
    settings: dict[str, Any],
    protocol: dict[str, Any],
    max_samples: int | None,
    num_examples: int,
    rank: int,
    world_size: int,
) -> DatasetEvaluation:
    """This rank's share of one set, then the gathered, index-ordered results of all ranks."""
    total = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    if total == 0:
        raise ValueError(f"evaluation set '{key}' ({dataset.root}) has no sample to evaluate")
    indices = shard_for_rank(total, rank, world_size)
    log.info("%s: %d samples (%d on rank %d), %d excluded", key, total, len(indices), rank, len(dataset.exclusions))
    records: list[SampleRecord] = []
    examples: list[Example] = []
    failure: BaseException | None = None
    wall_start = start = time.perf_counter()
    try:
        for done, index in enumerate(indices, 1):
            sample = dataset[index]
            predictor.set_image(sample.image)
            result = evaluate_sample(
                lambda clicks: predictor.add_click(clicks[-1]),
                sample.gt,
                max_clicks=protocol["max_clicks"],
                target_iou=protocol["target_iou"],
                min_clicks=protocol["min_clicks"],
                pred_thr=protocol["pred_thr"],
                boundary_metrics=protocol["boundary_metrics"],
                dilation_ratio=protocol["dilation_ratio"],
            )
            records.append(SampleRecord(index, sample.name, result))
            if rank == 0 and len(examples) < num_examples:
                probs, clicks = predictor.probs, list(result.clicks)
                examples.append(Example(index, sample.name, sample.image, sample.gt, probs, clicks))
            if done % max(1, len(indices) // 10) == 0 or done == len(indices):
                log.info("%s: rank %d evaluated %d/%d samples", key, rank, done, len(indices))
    except Exception as error:  # reported to every rank below, so that none waits for it forever
        failure = error
    seconds = time.perf_counter() - start
    message = None if failure is None else f"{type(failure).__name__}: {failure}"
    shards = gather_objects([(rank, seconds, message, records)])
    if failure is not None:
        raise failure
    failed = [(r, m) for r, _, m, _ in shards if m is not None]
    if failed:
        raise RuntimeError(f"evaluation of '{key}' failed on rank {failed[0][0]}: {failed[0][1]}")
    gathered = sorted((record for *_, part in shards for record in part), key=lambda record: record.index)
    if [record.index for record in gathered] != list(range(total)):
        raise RuntimeError(f"evaluation of '{key}': gathered sample indices do not cover 0..{total - 1}")
    samples = [record.result for record in gathered]
    thresholds = noc_thresholds(protocol["target_iou"])
    summary = summarize_samples(samples, thresholds, protocol["max_clicks"])
    result = DatasetResult(samples, summary, sum(s for _, s, _, _ in shards))
    return DatasetEvaluation(
        key=key,
        title=dataset.title,
        root=str(dataset.root),
        records=gathered,
        exclusions=list(dataset.exclusions),
        result=result,
        wall_seconds=time.perf_counter() - wall_start,
        predictor=settings,
        protocol=dict(protocol),
        world_size=world_size,
        examples=examples,
    )


# ------------------------------------------------------------------------------------ Hydra


def build_datasets(config: DictConfig | Mapping[str, Any]) -> dict[str, EvaluationSet]:
    """The ``data`` entries of the config (name -> ``_target_`` config), built in order.

    A loader's own error (e.g. the expected layout of a missing folder) is raised as it is,
    not wrapped in Hydra's instantiation error.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    known = "grabcut, berkeley, davis, sbd, coco_mval, pascalvoc, folder (conf/eval/data)"
    if not config:
        raise ValueError(f"no evaluation set selected: use data=grabcut or 'data=[grabcut,davis]'; known: {known}")
    if "_target_" in config:
        raise ValueError(f"data is a single object config ({config['_target_']}), not evaluation sets; known: {known}")
    sets: dict[str, EvaluationSet] = {}
    for key, entry in config.items():
        if not isinstance(entry, (DictConfig, Mapping)) or "_target_" not in entry:
            raise ValueError(f"data entry '{key}' is not an evaluation set config with a _target_: {entry!r}; "
                             f"known: {known}")
        try:
            dataset = instantiate(entry)
        except InstantiationException as error:
            if error.__cause__ is None:
                raise
            raise error.__cause__ from None
        if not isinstance(dataset, EvaluationSet):
            raise TypeError(f"data entry '{key}' built a {type(dataset).__name__}, not an EvaluationSet")
        sets[str(key)] = dataset
    return sets


def _refuse_multirun_processes(cfg: DictConfig) -> None:
    """Fabric's DDP launcher re-runs the script per rank, which would re-run a whole Hydra sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    devices = cfg.fabric.get("devices", 1)
    if multirun and devices not in (1, "1"):
        raise ValueError(
            f"fabric.devices={devices} cannot run inside a Hydra multirun (each process would re-run the sweep); "
            "sweep with fabric.devices=1, or run one evaluation per call"
        )


def zoom_in_per_dataset(cfg: DictConfig, net: nn.Module) -> dict[str, Any]:
    """Per-set zoom-in changes: ``zoom_in_per_dataset``, or with predictor=fcfi the column of FCFI's
    table that ``fcfi_zoom_in.backbone`` names ('auto': chosen from the network, see :func:`fcfi_zoom_column`)."""
    table = cfg.get("fcfi_zoom_in")
    if table is None:
        return OmegaConf.to_container(cfg.get("zoom_in_per_dataset") or {}, resolve=True)
    column = str(table.get("backbone", "auto"))
    if column == "auto":
        column = fcfi_zoom_column(net)
        log.info("FCFI zoom-in: column '%s' of the per-dataset table for a %s", column, type(net).__name__)
    if column not in FCFI_ZOOM_COLUMNS or column not in table:
        raise ValueError(f"fcfi_zoom_in.backbone={column!r}: choose 'auto' or one of {list(FCFI_ZOOM_COLUMNS)}")
    return OmegaConf.to_container(table[column], resolve=True)


def _log_protocol_choice(cfg: DictConfig, net: nn.Module) -> None:
    """Say so when the predictor settings are not the ones of the checkpoint's method (an ablation)."""
    fcfi_settings = cfg.get("fcfi_zoom_in") is not None
    if getattr(net, "takes_feedback", False) and not fcfi_settings:
        log.warning(
            "the checkpoint holds %s, evaluated here with RITM's predictor settings (an ablation); "
            "FCFI's protocol (flip, 20 clicks, its zoom-in table, boundary metrics) is predictor=fcfi",
            network_description(net),
        )
    elif fcfi_settings and not getattr(net, "takes_feedback", False):
        log.warning(
            "the checkpoint holds %s, evaluated here with FCFI's protocol settings (an ablation); "
            "RITM's protocol is predictor=ritm",
            network_description(net),
        )


def evaluate(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Evaluate as configured (``conf/eval/evaluate.yaml``); returns the summary per set.

    Rank 0 prints the table and writes ``results.json``/``per_click.csv``, ``table.txt``,
    ``iou_curve.png`` and ``examples/`` into the Hydra output dir, then logs to the loggers.
    """
    from hydra.utils import instantiate

    from iseg.evaluation.report import check_formats, write_reports
    from iseg.evaluation.wandb_report import log_evaluations
    from iseg.runtime import finish_wandb, instantiate_group, single_log_file

    formats = check_formats(cfg.get("per_sample_formats", ["json"]))
    _refuse_multirun_processes(cfg)
    single_log_file()  # DDP children know their rank from the environment already
    fabric = instantiate(cfg.fabric)
    fabric.launch()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    net = load_model(str(cfg.checkpoint), map_location="cpu")
    per_dataset = zoom_in_per_dataset(cfg, net)
    _log_protocol_choice(cfg, net)
    datasets = build_datasets(cfg.get("data"))
    predictor = OmegaConf.to_container(cfg.predictor, resolve=True)
    evaluations = evaluate_checkpoint(
        net,
        datasets,
        device=fabric.device,
        predictor=predictor,
        zoom_in_per_dataset=per_dataset,
        max_samples=cfg.get("max_samples"),
        num_examples=int(cfg.get("num_examples", 0)),
        channels_last=bool(cfg.get("channels_last", True)),
        **OmegaConf.to_container(cfg.protocol, resolve=True),
    )
    if fabric.is_global_zero:
        meta = {
            "checkpoint": str(cfg.checkpoint),
            "protocol": OmegaConf.to_container(cfg.protocol, resolve=True),
            "world_size": fabric.world_size,
            "device": str(fabric.device),
        }
        outputs = write_reports(evaluations, Path(cfg.paths.output_dir), meta, formats)
        print(outputs.table, flush=True)
        log.info("reports written to %s", Path(cfg.paths.output_dir))
        loggers = instantiate_group(cfg.get("logger"), "logger")
        config = OmegaConf.to_container(cfg, resolve=True)
        config.pop("hydra", None)  # present when composed with the Hydra config (tests)
        try:
            log_evaluations(loggers, evaluations, outputs, config)
        finally:
            finish_wandb()
    return {evaluation.key: dict(evaluation.summary) for evaluation in evaluations}
