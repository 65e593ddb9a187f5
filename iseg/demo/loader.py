"""Loading the network in the background, in named stages the page shows as progress.

The server answers at once; the page polls :meth:`ModelLoader.status` and enables prompting when
the state is ``ready``. A file that is not a checkpoint ends in state ``error`` with the loader's
message, which the page and the API show as it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from iseg.demo.config import DemoConfig
from iseg.demo.wire import kind_of
from iseg.inference.predictor import Predictor
from iseg.interaction.prompts import Prompt

log = logging.getLogger(__name__)


class ModelLoader:
    """Builds the demo's predictor factory from a checkpoint: read, build, one warm-up prediction."""

    stages = ("reading the checkpoint", "building the predictor", "warming up")

    def __init__(self, config: DemoConfig, network: nn.Module | None = None):
        """``network``: use this network instead of reading ``config.checkpoint`` (as iseg.predict allows)."""
        self.config = config
        self.network = network
        self.state = "loading"  # loading | ready | error
        self.step = 0  # stages done
        self.error: str | None = None
        self.prompt_types: tuple[type, ...] = ()
        self.network_name = ""
        self._started = time.monotonic()
        self._finished: float | None = None
        self._new_predictor: Callable[[], Predictor] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Load in a background thread (daemon: a server stopped while loading does not wait)."""
        self._thread = threading.Thread(target=self.load, name="iseg-demo-loader", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def wait(self, timeout: float | None = None) -> str:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def load(self) -> None:
        from iseg.inference.predict import load_network, make_predictor

        config = self.config
        try:
            # a path goes to make_predictor as it is: load_network caches it, whatever the backend
            source = self.network if self.network is not None else config.checkpoint
            net = load_network(source, config.backend)
            self.network_name = getattr(net, "network_name", type(net).__name__).rsplit(".", 1)[-1]
            self.step = 1

            def new_predictor() -> Predictor:
                return make_predictor(
                    source, refiner=config.refiner, settings=config.settings, device=config.device, backend=config.backend
                )

            predictor = new_predictor()
            self.prompt_types = tuple(predictor.inputs.prompt_types)
            if not self.prompt_types:
                raise ValueError(f"{self.network_name}'s input adapter takes no prompt kind the demo can offer")
            self.step = 2
            warm_up(predictor, self.prompt_types)
            self._new_predictor = new_predictor
            self.step, self.state = 3, "ready"
        except Exception as error:  # any failure is shown in the page; the console gets the traceback
            log.exception("iseg demo: cannot load %s", config.checkpoint)
            self.error = f"{config.checkpoint}: {error}" if str(config.checkpoint) not in str(error) else str(error)
            self.state = "error"
        finally:
            self._finished = time.monotonic()

    def new_predictor(self) -> Predictor:
        if self._new_predictor is None:
            raise RuntimeError(f"the model is not ready (state {self.state})")
        return self._new_predictor()

    def status(self) -> dict:
        elapsed = (self._finished or time.monotonic()) - self._started
        stage = self.stages[self.step] if self.step < len(self.stages) else "ready"
        return {
            "state": self.state,
            "stage": stage if self.state != "error" else f"failed while {self.stages[min(self.step, 2)]}",
            "step": self.step,
            "steps": len(self.stages),
            "elapsed_s": round(elapsed, 1),
            "error": self.error,
            "checkpoint": Path(self.config.checkpoint).name,
            "network": self.network_name,
            "prompt_kinds": [kind_of(cls) for cls in self.prompt_types],
        }


def warm_up(predictor: Predictor, prompt_types: tuple[type, ...]) -> None:
    """One prediction on a small grey image, so that the first real prompt is not the slow one."""
    predictor.set_image(np.full((64, 64, 3), 128, np.uint8))
    sample = _sample_prompt(prompt_types)
    if sample is not None:
        predictor.add(sample)


def _sample_prompt(prompt_types: tuple[type, ...]) -> Prompt | None:
    from iseg.interaction.prompts import Box, Click, Scribble

    samples = {Click: Click(32, 32, True), Scribble: Scribble(((30, 30), (34, 34)), True), Box: Box(16, 16, 48, 48)}
    return next((samples[cls] for cls in prompt_types if cls in samples), None)
