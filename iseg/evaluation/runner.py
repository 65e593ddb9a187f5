"""Evaluate a checkpoint on evaluation sets under the NoC protocol: the code behind evaluate.py.

- :func:`evaluate_checkpoint` is the Python entry: a checkpoint (any format ``load_model``
  reads, or an ``.onnx`` export) and named evaluation sets in, one :class:`DatasetEvaluation` per set out.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn

from iseg.data.eval import EvaluationSet, Exclusion, build_evaluation_dataset
from iseg.evaluation.distributed import shard_for_rank
from iseg.evaluation.protocol import (
    DatasetResult,
    Interactive,
    ProtocolConfig,
    SampleRecord,
    evaluate_one_object,
    run_protocol,
)
from iseg.interaction.prompts import Prompt
from iseg.interaction.robots import Robot
from iseg.inference.backends import EXPORTED_BACKENDS, default_backend, network_backend, read_network
from iseg.inference.exported import ExportedNetwork

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The repository's ``conf/``: evaluate.yaml adds it to Hydra's search path for paths/hydra/logger."""

if not OmegaConf.has_resolver("iseg_config_dir"):
    OmegaConf.register_new_resolver("iseg_config_dir", lambda: str(CONFIG_DIR))

@dataclass
class Example:
    """What a picture of one interaction needs (kept for a few samples on rank 0 only)."""

    index: int
    name: str
    image: np.ndarray
    gt: np.ndarray
    probs: np.ndarray
    clicks: list[Prompt]


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


PredictorFactory = Callable[..., Interactive]
"""``factory(net, device=...)`` -> a fresh predictor, e.g. ``functools.partial(Predictor, views=...)``
or what Hydra builds from a ``_partial_`` predictor config."""


def compose_eval_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/eval/evaluate.yaml composed with Hydra overrides, for Python callers outside a Hydra app.

    ``compose_eval_config(["predictor=fcfi_h18s"]).predictor`` is the predictor config evaluate.py
    would build; the defaults live in the config files only.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR / "eval"), version_base="1.3"):
        return compose("evaluate", overrides=["checkpoint=unused", *overrides])


def evaluate_checkpoint(
    checkpoint: str | Path | nn.Module | ExportedNetwork,
    datasets: Mapping[str, EvaluationSet | str | Path],
    predictor: PredictorFactory | Mapping[str, Any] | None = None,
    *,
    predictor_per_dataset: Mapping[str, Mapping[str, Any]] | None = None,
    protocol: ProtocolConfig | None = None,
    robot: Robot | None = None,
    device: str | torch.device = "cpu",
    max_samples: int | None = None,
    num_examples: int = 0,
    channels_last: bool = True,
    multi_object: bool = False,
) -> list[DatasetEvaluation]:
    """Run the protocol of a checkpoint on each set.

    Args:
        checkpoint: a checkpoint file (iseg or official, see :func:`~iseg.models.checkpoints.load_model`),
            an exported ``.onnx`` model (run with onnxruntime unless the predictor config names
            another exported backend), or a network. A predictor config with ``backend: onnxruntime``
            or ``openvino`` exports a PyTorch network once, before the first set.
        datasets: name -> an :class:`~iseg.data.eval.EvaluationSet`, or the root folder of the
            registered set of that name (``{'grabcut': '/data/GrabCut'}``).
        predictor: a predictor factory, or its Hydra config (``_target_`` + ``_partial_: true``,
            e.g. the ``predictor`` node of conf/eval/predictor/ritm.yaml); None: RITM's, that file
            with its ``predictor_per_dataset`` (see :func:`compose_eval_config`).
        predictor_per_dataset: set name -> changes merged into the predictor config for that set
            (e.g. ``{'davis': {'views': {'zoom_in': {'target_size': 600}}}}``); needs a config predictor.
        protocol: the loop's settings (default: :class:`ProtocolConfig`'s, RITM's protocol).
        robot: the simulated user (default: the protocol's clicker).
        device: where the network runs.
        max_samples: evaluate only the first this-many samples of each set.
        num_examples: keep image, GT, final probabilities and prompts of this many samples per
            set (rank 0's first ones) for pictures.
        channels_last: convert the network (in place) to channels_last memory format: the same
            clicks, faster convolutions on oneDNN and cuDNN.
        multi_object: all objects of an image at once (:mod:`iseg.evaluation.multi_object`): the
            predictor must be a multi-object one (``predictor=s2m_multi``); samples are images,
            results objects.

    Under ``torch.distributed`` every rank must call this with the same arguments; the samples are
    sharded over the ranks and every rank returns the gathered results.
    """
    if not datasets:
        raise ValueError("no evaluation set given")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    if predictor is None:
        defaults = compose_eval_config()
        predictor = OmegaConf.to_container(defaults.predictor, resolve=True)
        if predictor_per_dataset is None:
            predictor_per_dataset = OmegaConf.to_container(defaults.predictor_per_dataset, resolve=True)
    if predictor_per_dataset and not isinstance(predictor, Mapping):
        raise ValueError("predictor_per_dataset changes a predictor config: pass predictor as a mapping with _target_")
    protocol = protocol or ProtocolConfig()
    sets = {key: _as_evaluation_set(key, value) for key, value in datasets.items()}
    # read as stored: the memory format is set below, once the backend is known (an export takes NCHW)
    net = checkpoint if isinstance(checkpoint, (nn.Module, ExportedNetwork)) else read_network(checkpoint, channels_last=False)
    if isinstance(predictor, Mapping):
        # the backend is chosen once for every set: an nn.Module for an exported backend is exported once here
        backend = predictor.get("backend") or default_backend(net)
        if backend in EXPORTED_BACKENDS:
            net = network_backend(net, backend, torch.device(device))
            predictor = {**predictor, "backend": backend}
    if channels_last and isinstance(net, nn.Module):
        net = net.to(memory_format=torch.channels_last)
    rank, world_size = _rank_and_world_size()
    evaluations = []
    for key, dataset in sets.items():
        config = _dataset_predictor_config(predictor, (predictor_per_dataset or {}).get(key))
        model = _build_predictor(config, net, device)
        evaluations.append(
            _evaluate_set(
                key, dataset, model, config, protocol, robot, max_samples, num_examples, rank, world_size, multi_object
            )
        )
    return evaluations


def _as_evaluation_set(key: str, value: EvaluationSet | str | Path) -> EvaluationSet:
    if isinstance(value, EvaluationSet):
        return value
    if isinstance(value, (str, Path)):
        return build_evaluation_dataset(key, value)
    raise TypeError(f"evaluation set '{key}': expected an EvaluationSet or a root folder, got {type(value).__name__}")


def _dataset_predictor_config(
    predictor: PredictorFactory | Mapping[str, Any], change: Mapping[str, Any] | None
) -> PredictorFactory | dict[str, Any]:
    """The predictor config of one set: the base config with the set's changes merged in."""
    if not isinstance(predictor, Mapping):
        return predictor
    base = OmegaConf.create(dict(predictor) if not isinstance(predictor, DictConfig) else predictor)
    if change:
        base = OmegaConf.merge(base, OmegaConf.create(dict(change)))
    return OmegaConf.to_container(base, resolve=True)


def _build_predictor(config: PredictorFactory | Mapping[str, Any], net: nn.Module, device: str | torch.device) -> Interactive:
    if not isinstance(config, Mapping):
        return config(net, device=device)
    from hydra.utils import instantiate

    if "_target_" not in config:
        raise ValueError(f"predictor config needs a _target_ (e.g. iseg.inference.predictor.Predictor), got {config}")
    factory = instantiate({**config, "_partial_": True})
    return factory(net, device=device)


def _rank_and_world_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _evaluate_set(
    key: str,
    dataset: EvaluationSet,
    predictor: Interactive,
    settings: Any,
    protocol: ProtocolConfig,
    robot: Robot | None,
    max_samples: int | None,
    num_examples: int,
    rank: int,
    world_size: int,
    multi_object: bool = False,
) -> DatasetEvaluation:
    """This rank's share of one set, then the gathered, index-ordered results of all ranks."""
    from iseg.evaluation.multi_object import LabelMapSamples, evaluate_objects

    samples: Any = LabelMapSamples(dataset) if multi_object else dataset
    evaluator = evaluate_objects if multi_object else evaluate_one_object
    if multi_object and num_examples:
        log.info("%s: no example pictures under the multi-object protocol", key)
        num_examples = 0
    total = len(samples) if max_samples is None else min(max_samples, len(samples))
    if total == 0:
        raise ValueError(f"evaluation set '{key}' ({dataset.root}) has no sample to evaluate")
    share = len(shard_for_rank(total, rank, world_size))
    log.info("%s: %d samples (%d on rank %d), %d excluded", key, total, share, rank, len(dataset.exclusions))
    examples: list[Example] = []
    done = 0

    def on_record(record: SampleRecord, sample: Any, model: Any) -> None:
        nonlocal done
        done += record.object_index == 0  # samples, not objects (the multi-object protocol has several)
        if rank == 0 and len(examples) < num_examples:
            clicks = list(record.result.clicks)
            examples.append(Example(record.index, sample.name, sample.image, sample.gt, model.probs, clicks))
        if record.object_index == 0 and (done % max(1, share // 10) == 0 or done == share):
            log.info("%s: rank %d evaluated %d/%d samples", key, rank, done, share)

    wall_start = time.perf_counter()
    try:
        run = run_protocol(
            predictor, samples, protocol, robot, num_samples=total, rank=rank, world_size=world_size,
            on_record=on_record, evaluator=evaluator,
        )
    except RuntimeError as error:
        raise RuntimeError(f"evaluation of '{key}': {error}") from error
    return DatasetEvaluation(
        key=key,
        title=dataset.title,
        root=str(dataset.root),
        records=run.records,
        exclusions=list(dataset.exclusions),
        result=run.dataset_result(),
        wall_seconds=time.perf_counter() - wall_start,
        predictor=settings if isinstance(settings, Mapping) else {"factory": repr(settings)},
        protocol=protocol.as_dict(),
        world_size=world_size,
        examples=examples,
    )


# ------------------------------------------------------------------------------------ Hydra


def evaluation_set_options() -> list[str]:
    """The ``data`` options of evaluate.py: the files of conf/eval/data (not the training sets of conf/data)."""
    return sorted(path.stem for path in (CONFIG_DIR / "eval" / "data").glob("*.yaml"))


def data_choice_error(args: Sequence[str]) -> str | None:
    """The message for ``data=`` command-line choices that are not evaluation sets, or None.

    Hydra's own message would list the training sets of conf/data too (evaluate.py's search path
    holds conf/ for the shared paths/hydra/logger groups), so evaluate.py asks this first.
    Arguments Hydra's parser rejects are left to Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser, known, unknown = OverridesParser.create(), evaluation_set_options(), []
    for arg in args:
        try:
            override = parser.parse_override(arg)
        except HydraException:  # not an override (a flag such as --help) or bad syntax: Hydra's to report
            continue
        if override.get_key_element().lstrip("+~") != "data" or override.is_delete():
            continue
        try:
            values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        except HydraException:  # glob(...) needs Hydra's config loader: Hydra lists the matches itself
            continue
        for value in values:
            for name in value if isinstance(value, list) else [value]:
                if isinstance(name, str) and name not in known and name not in unknown:
                    unknown.append(name)
    if not unknown:
        return None
    return (
        f"evaluate.py: no evaluation set {', '.join(map(repr, unknown))} (data=...). Evaluation sets (conf/eval/data):\n\t"
        + "\n\t".join(known)
    )


def build_datasets(config: DictConfig | Mapping[str, Any]) -> dict[str, EvaluationSet]:
    """The ``data`` entries of the config (name -> ``_target_`` config), built in order.

    A loader's own error (e.g. the expected layout of a missing folder) is raised as it is,
    not wrapped in Hydra's instantiation error.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    known = f"{', '.join(evaluation_set_options())} (conf/eval/data)"
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


def check_predictor_networks(cfg: DictConfig, net: nn.Module | ExportedNetwork) -> None:
    """Say so when the predictor option is made for other networks than the checkpoint's (an ablation).

    Each conf/eval/predictor file lists its networks (class names) under ``predictor_networks``.
    """
    networks = cfg.get("predictor_networks")
    # an exported model stores its network's dotted class path
    name = net.network_name.rsplit(".", 1)[-1] if isinstance(net, ExportedNetwork) else type(net).__name__
    if networks and name not in networks:
        choice = _predictor_choice()
        log.warning(
            "the checkpoint holds a %s; the predictor settings%s are made for %s, so this run is an ablation",
            name,
            f" (predictor={choice})" if choice else "",
            ", ".join(networks),
        )


def _predictor_choice() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("predictor")


def evaluate(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Evaluate as configured (``conf/eval/evaluate.yaml``); returns the summary per set.

    Rank 0 prints the table and writes ``results.json``/``per_click.csv``, ``table.txt``,
    ``iou_curve.png`` and ``examples/`` into the Hydra output dir, then logs to the loggers.
    """
    from hydra.utils import instantiate

    from iseg.evaluation.report import check_formats
    from iseg.allocator import keep_freed_memory
    from iseg.runtime import single_log_file, thread_settings

    formats = check_formats(cfg.get("per_sample_formats", ["json"]))
    _refuse_multirun_processes(cfg)
    single_log_file()  # DDP children know their rank from the environment already
    fabric = instantiate(cfg.fabric)
    fabric.launch()
    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()
    with thread_settings(cfg.get("threads"), fabric.world_size):
        return _evaluate_launched(cfg, fabric, formats)


def _evaluate_launched(cfg: DictConfig, fabric: Any, formats: Any) -> dict[str, dict[str, float]]:
    """evaluate() once the processes run and the threads are set."""
    from hydra.utils import instantiate

    from iseg.evaluation.report import write_reports
    from iseg.provenance import provenance
    from iseg.evaluation.wandb_report import log_evaluations
    from iseg.runtime import finish_wandb, instantiate_group

    net = read_network(str(cfg.checkpoint), channels_last=False)  # evaluate_checkpoint sets the format
    check_predictor_networks(cfg, net)
    datasets = build_datasets(cfg.get("data"))
    per_dataset = cfg.get("predictor_per_dataset")  # an empty {} (S2M) is falsy, to_container refuses a plain dict
    evaluations = evaluate_checkpoint(
        net,
        datasets,
        OmegaConf.to_container(cfg.predictor, resolve=True),
        predictor_per_dataset=OmegaConf.to_container(per_dataset, resolve=True) if per_dataset else {},
        protocol=instantiate(cfg.protocol),
        robot=instantiate(cfg.robot) if cfg.get("robot") else None,
        device=fabric.device,
        max_samples=cfg.get("max_samples"),
        num_examples=int(cfg.get("num_examples", 0)),
        channels_last=bool(cfg.get("channels_last", True)),
        multi_object=bool(cfg.get("multi_object", False)),
    )
    if fabric.is_global_zero:
        meta = {
            "checkpoint": str(cfg.checkpoint),
            "protocol": OmegaConf.to_container(cfg.protocol, resolve=True),
            "predictor": OmegaConf.to_container(cfg.predictor, resolve=True),
            "world_size": fabric.world_size,
            "device": str(fabric.device),
            # package versions, git commit and the full config that produced these numbers
            "provenance": provenance(cfg),
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
