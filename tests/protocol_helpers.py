"""Stand-ins for protocol tests: a predictor made of a function of the prompts so far."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from iseg.evaluation.protocol import DatasetResult, ProtocolConfig, Sample, SampleResult, evaluate_sample, run_protocol
from iseg.interaction.prompts import Prompt

Predict = Callable[[list[Prompt]], np.ndarray]


class FunctionPredictor:
    """``predict(prompts so far) -> probs``; with ``make``, ``set_image(image)`` builds a fresh one per sample."""

    def __init__(self, predict: Predict | None = None, make: Callable[[Any], Predict] | None = None):
        self.predict, self.make = predict, make
        self.prompts: list[Prompt] = []

    def set_image(self, image: Any) -> None:
        if self.make is not None:
            self.predict = self.make(image)
        self.prompts = []

    def add(self, prompt: Prompt) -> np.ndarray:
        self.prompts.append(prompt)
        return self.predict(list(self.prompts))

    def commit(self) -> None:
        """Rounds mean nothing to a function of all prompts so far."""


def as_samples(pairs: Iterable[tuple[Any, np.ndarray]]) -> Sequence[Sample]:
    """(image, gt) pairs as protocol samples named by their position."""
    return [Sample(str(i), image, gt) for i, (image, gt) in enumerate(pairs)]


def evaluate_with(predict: Predict, gt: np.ndarray, **settings: Any) -> SampleResult:
    """The protocol on one sample with a function of the prompts so far as the predictor."""
    return evaluate_sample(FunctionPredictor(predict), gt, ProtocolConfig(**settings))


def evaluate_pairs(pairs: Iterable[tuple[Any, np.ndarray]], make_predict: Callable[[Any], Predict], **settings: Any) -> DatasetResult:
    """The protocol over (image, gt) pairs; ``make_predict(image)`` gives each sample's function."""
    return run_protocol(FunctionPredictor(make=make_predict), as_samples(pairs), ProtocolConfig(**settings)).dataset_result()
