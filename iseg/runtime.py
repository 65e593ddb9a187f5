"""Process-level helpers shared by the train.py and evaluate.py runs.

- building named callback or logger groups, one log file per run under DDP, closing W&B between
  multirun jobs;
- CPU threads: :func:`resolve_threads` / :func:`thread_settings` (``threads=auto|N|null``);
- user errors: :class:`UserError` and :func:`user_errors` turn a mistake in the command line,
  the config or the files into its exact message, without Hydra's traceback wrapper;
- run folders: :func:`remove_unstarted_run_dir` drops the folder of a run that never started;
- :class:`SweepSummary`, a Hydra callback that ends a multirun with a table of what each job returned;
- :func:`quiet_start`: targeted filters for library start-up messages that carry no information here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_group(config: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate a dict of named ``_target_`` configs (callbacks, loggers); entries set to null are off."""
    from hydra.utils import instantiate

    objects: list[Any] = []
    if not config:
        return objects
    if not isinstance(config, (DictConfig, Mapping)):
        raise TypeError(f"the {kind} config must be a mapping of named entries, got {type(config).__name__}")
    for name, entry in config.items():
        if entry is None:
            continue
        if not isinstance(entry, (DictConfig, Mapping)) or "_target_" not in entry:
            raise ValueError(f"{kind} entry '{name}' has no _target_: {entry}")
        objects.append(instantiate(entry))
    return objects


def _rank() -> int:
    """This process's global rank: Lightning's once it is loaded, else from the launcher's
    environment as Lightning reads it (0 outside distributed runs); never imports Lightning."""
    import sys

    module = sys.modules.get("lightning.pytorch.utilities.rank_zero")
    rank = getattr(getattr(module, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def single_log_file() -> None:
    """Keep the run's log file to rank 0: other DDP ranks log to the console only."""
    if _rank() == 0:
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def finish_wandb() -> None:
    """Close the W&B run so the next job of a multirun starts a new one (no import when unused)."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


# ------------------------------------------------------------------------------------ threads


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (containers)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def resolve_threads(setting: int | str | None, processes: int = 1) -> tuple[int | None, str]:
    """Intra-op threads per process for ``threads=`` and why: ``(None, ...)`` leaves torch's default.

    ``auto``: ``OMP_NUM_THREADS`` when set. Otherwise one thread when the machine has at most 2
    CPUs per process (``processes``: the training processes on this machine), else the CPUs not
    already busy (available CPUs minus the 1-minute load average, rounded) shared by the processes.
    On few cores a second thread gains less than it costs as soon as anything else runs (which
    may start after the threads were chosen): on 2 cores with another CPU-bound process, one
    HRNet18s forward took 1106 ms with 2 threads and 47 ms with 1 (a train step of the default run:
    0.40 vs 13.3 samples/s), while idle 2 threads gave 25.3 samples/s and 1 gave 17.4.
    """
    if setting is None or (isinstance(setting, str) and setting.lower() in ("null", "none", "")):
        return None, "torch's default"
    if isinstance(setting, str) and setting.lower() != "auto":
        try:
            setting = int(setting)
        except ValueError:
            raise ValueError(f"threads={setting!r}: expected a positive number, auto or null") from None
    if isinstance(setting, int):
        if setting < 1:
            raise ValueError(f"threads={setting}: expected a positive number, auto or null")
        return setting, "threads setting"
    processes = max(1, int(processes))
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"]), "auto: OMP_NUM_THREADS"
    cpus = available_cpus()
    share = f", {processes} processes" if processes > 1 else ""
    if cpus // processes <= 2:
        return 1, f"auto: {cpus} CPUs{share}"
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    free = max(1, cpus - round(load))
    return max(1, free // processes), f"auto: {cpus} CPUs, load {load:.1f}{share}"


@contextlib.contextmanager
def thread_settings(setting: int | str | None, processes: int = 1) -> Iterator[int | None]:
    """Apply ``threads=`` for the duration of a run, and restore the previous settings after.

    torch runs ``threads`` intra-op threads; OpenCV runs single-threaded, so that forked data
    loader workers inherit a single-threaded OpenCV (torch already gives each worker 1 thread):
    neither competes with the training threads.
    """
    import torch

    previous = torch.get_num_threads()
    threads, reason = resolve_threads(setting, processes)
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        cv2 = None
    previous_cv2 = cv2.getNumThreads() if cv2 is not None else None
    if threads is not None:
        torch.set_num_threads(threads)
        if cv2 is not None and previous_cv2 != 1:
            cv2.setNumThreads(1)
        log.info("threads: %d per process (%s; threads=N to change)", threads, reason)
    try:
        yield threads
    finally:
        if threads is not None:
            torch.set_num_threads(previous)
            if cv2 is not None and previous_cv2 is not None and cv2.getNumThreads() != previous_cv2:
                cv2.setNumThreads(previous_cv2)


# -------------------------------------------------------------------------------- user errors


class UserError(CompactHydraException):
    """A mistake in the command line, the config or the files: Hydra prints only its message.

    Raised ``from`` the original error, which ``HYDRA_FULL_ERROR=1`` shows with its traceback.
    """


_SETUP = "_iseg_during_setup"


@contextlib.contextmanager
def setup_phase() -> Iterator[None]:
    """Mark errors raised while a run is being set up (config -> objects): those are user errors
    when they are of the kinds a config produces (ValueError, TypeError, missing files, ...)."""
    try:
        yield
    except Exception as error:
        with contextlib.suppress(AttributeError, TypeError):
            setattr(error, _SETUP, True)
        raise


def _lightning_misconfiguration() -> tuple[type, ...]:
    """Lightning's configuration error class, when Lightning is loaded (never imports it)."""
    import sys

    module = sys.modules.get("lightning.fabric.utilities.exceptions")
    cls = getattr(module, "MisconfigurationException", None)
    return (cls,) if isinstance(cls, type) else ()


def user_error_message(error: BaseException) -> str | None:
    """The short message of a user error, or None for anything that deserves its traceback.

    Always user errors: missing/unreadable files (OSError), iseg's own error classes (checkpoint,
    data layout, bad samples; designed messages) and a non-finite loss. During set-up also
    ValueError, TypeError, KeyError, ImportError, OmegaConf and Lightning configuration errors,
    unwrapped from Hydra's instantiation error with the config key that failed.
    """
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    setup = getattr(error, _SETUP, False)
    where = ""
    if isinstance(error, InstantiationException):
        cause = error.__cause__
        if cause is None:
            return str(error) if setup else None
        key = re.search(r"full_key: (\S+)", str(error))
        target = re.search(r"Error in call to target '([^']+)'", str(error))
        where = f"{key.group(1) if key else 'config'}"
        where += f" ({target.group(1)})" if target else ""
        where += ": "
        error, setup = cause, True
    always = (OSError, FloatingPointError) + _iseg_errors(error)
    during_setup = (ValueError, TypeError, KeyError, ImportError, OmegaConfBaseException, *_lightning_misconfiguration())
    if not isinstance(error, always) and not (setup and isinstance(error, during_setup)):
        return None
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return f"{where}{type(error).__name__}: {text}"


def _iseg_errors(error: BaseException) -> tuple[type, ...]:
    """iseg's own exception classes carry messages written for the user."""
    return tuple(cls for cls in type(error).__mro__ if cls.__module__.startswith("iseg.") and issubclass(cls, Exception))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise user errors (see :func:`user_error_message`) as :class:`UserError`."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        message = user_error_message(error)
        if message is None:
            raise
        raise UserError(message) from error


# -------------------------------------------------------------------------------- run folders


def remove_unstarted_run_dir(path: str | Path) -> bool:
    """Delete a run folder that holds nothing but Hydra's ``.hydra/`` record and log files.

    Call it when a run fails before writing anything (bad config, missing data): every failed
    start would otherwise leave an empty run folder behind. Only rank 0 deletes; the file handlers
    of logs inside the folder are closed first. Returns whether the folder was removed.
    """
    path = Path(path)
    if _rank() != 0 or not path.is_dir():
        return False
    entries = list(path.iterdir())
    if any(not (e.name == ".hydra" and e.is_dir()) and not (e.is_file() and e.suffix == ".log") for e in entries):
        return False
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        if Path(handler.baseFilename).resolve().parent == path.resolve():
            root.removeHandler(handler)
            handler.close()
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()


# ------------------------------------------------------------------------------- sweep summary

RETURNS_DIR = "job_returns"


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items())
    return str(value)


def _plain(value: Any) -> Any:
    """JSON-able form of a job's return value (tensors, numpy and OmegaConf values included)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        with contextlib.suppress(Exception):
            return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class SweepSummary(HydraCallback):
    """Ends a multirun with a table: job number, its overrides, what it returned (or its error).

    Each job records its return in ``<sweep dir>/job_returns/<num>.json`` (``on_job_end``, in
    whichever process ran it), and the table, printed and written to ``<sweep dir>/summary.txt``,
    is made from those files, so it works with any launcher. A failed job makes Hydra stop before
    ``on_multirun_end``; the table is then printed at exit.
    """

    def __init__(self, max_width: int = 60) -> None:
        self.max_width = max_width
        self._sweep_dir: Path | None = None
        self._printed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import atexit

        self._sweep_dir = Path(str(config.hydra.sweep.dir))
        self._printed = False
        atexit.register(self._print_once)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else config.get("hydra")
        if hydra_cfg is None or hydra_cfg.mode != RunMode.MULTIRUN or _rank() != 0:
            return
        failed = job_return.status == JobStatus.FAILED
        value = job_return._return_value
        record = {
            "num": int(hydra_cfg.job.num),
            "overrides": list(job_return.overrides or []),
            "status": "failed" if failed else "completed",
            "metric": config.get("optimized_metric") if isinstance(config, DictConfig) else None,
            "return": f"{type(value).__name__}: {value}" if failed else _plain(value),
        }
        folder = Path(str(hydra_cfg.sweep.dir)) / RETURNS_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{record['num']}.json").write_text(json.dumps(record, indent=1) + "\n")
        except OSError as error:
            log.warning("could not record the return of job %s in %s: %s", record["num"], folder, error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._print_once()

    def _print_once(self) -> None:
        if self._printed or self._sweep_dir is None:
            return
        self._printed = True
        table = self.table(self._sweep_dir)
        if table:
            print(table, flush=True)
            with contextlib.suppress(OSError):
                (self._sweep_dir / "summary.txt").write_text(table + "\n")

    def table(self, sweep_dir: str | Path) -> str:
        """The summary of the jobs recorded under ``sweep_dir`` (empty when none was)."""
        records = []
        for file in (Path(sweep_dir) / RETURNS_DIR).glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                records.append(json.loads(file.read_text()))
        if not records:
            return ""
        records.sort(key=lambda r: r.get("num", 0))
        metrics = {r.get("metric") for r in records} - {None}
        rows = [("job", "overrides", f"returned ({metrics.pop()})" if len(metrics) == 1 else "returned")]
        for record in records:
            value = record.get("return")
            returned = f"FAILED {value}" if record.get("status") == "failed" else _format_value(value)
            rows.append((str(record.get("num")), " ".join(record.get("overrides", [])) or "-", returned))

        def clip(text: str) -> str:
            text = " ".join(text.split())
            return text if len(text) <= self.max_width else text[: self.max_width - 3] + "..."

        rows = [(a, clip(b), clip(c)) for a, b, c in rows]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        failed = sum(r.get("status") == "failed" for r in records)
        lines = [f"Sweep summary: {len(records)} jobs{f', {failed} failed' if failed else ''} ({sweep_dir})"]
        for i, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * width for width in widths))
        return "\n".join(lines)


# ---------------------------------------------------------------------------------- quiet start

# Start-up messages that say nothing about this run: (logger name, message pattern).
_QUIET_LOG_MESSAGES = (
    # Lightning advertises its cloud logger at every Trainer start
    ("lightning.pytorch.utilities.rank_zero", r"^💡 Tip: .*litlogger"),
    ("lightning.fabric.utilities.rank_zero", r"^💡 Tip: .*litlogger"),
)
# Deprecations inside libraries, not in iseg's code: (message pattern, category).
_QUIET_WARNINGS = (
    # lightning.pytorch.utilities._pytree on torch >= 2.10 (lightning's own isinstance check)
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


class _DropMessages(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


class ConsoleFormatter(logging.Formatter):
    """The console's log format: ``[time] message``, with the level named from WARNING up
    (the log file keeps Hydra's full format with logger names)."""

    def __init__(self, fmt: str = "[%(asctime)s] %(message)s", datefmt: str = "%H:%M:%S") -> None:
        super().__init__(fmt, datefmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        if record.levelno >= logging.WARNING:
            prefix = f"[{self.formatTime(record, self.datefmt)}] "
            text = f"{prefix}{record.levelname}: {text[len(prefix):]}"
        return text


def _one_lightning_console() -> None:
    """``import lightning`` gives its logger a console handler of its own; once the run's logging
    is configured (root handlers), that handler only prints every Lightning message twice."""
    import sys

    handler = getattr(sys.modules.get("lightning"), "_console", None)
    if isinstance(handler, logging.Handler) and logging.getLogger().handlers:
        logging.getLogger("lightning").removeHandler(handler)


def quiet_start() -> None:
    """Drop a few library start-up messages by exact pattern (never a blanket filter); idempotent."""
    _one_lightning_console()
    for name, pattern in _QUIET_LOG_MESSAGES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(_DropMessages(pattern))
    for pattern, category in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)


# ------------------------------------------------------------------------------------ --help


def config_groups(*exclude: str) -> str:
    """The config groups and their options, as Hydra's ``--help`` lists them, less the groups
    under the ``exclude`` prefixes (and Hydra's own): ``${iseg_config_groups:eval,method}``.

    Registered as the ``iseg_config_groups`` resolver for the ``hydra.help.template`` of an entry
    config: train.py leaves out evaluate.py's groups (``conf/eval``) and ``method`` (part of each model).
    """
    from hydra.core.global_hydra import GlobalHydra

    prefixes = tuple(str(p).strip() for p in exclude if str(p).strip()) + ("hydra",)
    if not GlobalHydra.instance().is_initialized():
        return ""
    hydra = GlobalHydra.instance().hydra
    return hydra.format_config_groups(lambda group: not any(group == p or group.startswith(p + "/") for p in prefixes))


def register_resolvers() -> None:
    """OmegaConf resolvers used by iseg's entry configs (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("iseg_config_groups"):
        OmegaConf.register_new_resolver("iseg_config_groups", config_groups, use_cache=False)


register_resolvers()
