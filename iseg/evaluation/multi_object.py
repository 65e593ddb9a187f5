"""The multi-object scribble protocol: every object of an image at once, one label map per round.

A sample is an image with a label map (0 background, k = object k, -1 ignore). Each object has its
own robot (a copy of the configured one) that sees the object as 1, the background as 0 and the
other objects as ignore; so its positive strokes lie on the object's false negatives and its
negative strokes on background wrongly given to the object. Pixels of object j taken by object k
are object j's false negatives: j's positive stroke there tells the predictor (MiVOS's rule) that
they are j's and not k's. One round: every object's strokes are added (``add(prompt, object_id)``,
objects in id order), then ``commit()``; the label map after the round gives each object's IoU
(after aggregation). The loop stops after round k when every object reached ``target_iou`` and
k >= ``min_clicks``; each object is one result (NoS, mIoU per round are over objects).

:class:`LabelMapSamples` groups an evaluation set's per-object samples by image.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from iseg.evaluation.protocol import ProtocolConfig, SampleResult
from iseg.interaction.metrics import iou_counts, iou_from_counts
from iseg.interaction.prompts import Prompt
from iseg.interaction.robots import Robot, next_round
from iseg.interaction.scribbles.robot import ScribbleRobot

IGNORE = -1


class MultiObjectInteractive(Protocol):
    """What the loop needs of a multi-object predictor (:class:`~iseg.inference.multi_object.MultiObjectPredictor`)."""

    def set_image(self, image: Any, object_ids: Sequence[int] | None = None) -> None: ...

    def add(self, prompt: Prompt, object_id: int) -> np.ndarray: ...

    def commit(self) -> np.ndarray: ...

    def label_map(self) -> np.ndarray: ...


@dataclass(frozen=True)
class LabelMapSample:
    """An image with all its objects: ``labels`` int32 (H, W), 0 background, k object k, -1 ignore;
    ``object_names[k - 1]`` names object k (the evaluation set's sample name)."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    object_names: tuple[str, ...]


def label_map(gts: Sequence[np.ndarray]) -> np.ndarray:
    """int32 label map of per-object GTs (1/0/-1): object k = gts[k - 1]; ignore where any GT ignores
    and no object claims the pixel; a pixel two objects claim is the first one's."""
    if not gts:
        raise ValueError("no object to build a label map from")
    labels = np.zeros(gts[0].shape, np.int32)
    for k in range(len(gts), 0, -1):
        labels[gts[k - 1] == 1] = k
    ignored = np.any([gt == IGNORE for gt in gts], axis=0)
    labels[ignored & (labels == 0)] = IGNORE
    return labels


class LabelMapSamples(Sequence[LabelMapSample]):
    """An evaluation set's objects grouped by image (its ``entries``' image files, in order)."""

    def __init__(self, dataset: Any) -> None:
        groups: dict[Any, list[int]] = {}
        for index, entry in enumerate(dataset.entries):
            groups.setdefault(entry.image_path, []).append(index)
        self.dataset = dataset
        self.groups = list(groups.values())

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> LabelMapSample:  # type: ignore[override]
        samples = [self.dataset[i] for i in self.groups[index]]
        name = str(self.dataset.entries[self.groups[index][0]].image_path.stem)
        return LabelMapSample(name, samples[0].image, label_map([s.gt for s in samples]), tuple(s.name for s in samples))


def object_view(labels: np.ndarray, object_id: int) -> np.ndarray:
    """The robot's GT of one object: 1 on it, 0 on the background, -1 on other objects and ignore."""
    return np.where(labels == object_id, 1, np.where(labels == 0, 0, IGNORE)).astype(np.int8)


def object_gt(labels: np.ndarray, object_id: int) -> np.ndarray:
    """The IoU's GT of one object: 1 on it, -1 on ignore, 0 elsewhere (other objects included)."""
    return np.where(labels == object_id, 1, np.where(labels == IGNORE, IGNORE, 0)).astype(np.int8)


def evaluate_objects(
    predictor: MultiObjectInteractive,
    sample: LabelMapSample,
    settings: ProtocolConfig | None = None,
    robot: Robot | None = None,
) -> list[tuple[str, SampleResult]]:
    """The multi-object protocol on one image (module docstring): (object name, result) per object.

    ``robot`` is copied for each object (default: :class:`ScribbleRobot`). Usable as the
    ``evaluator`` of :func:`~iseg.evaluation.protocol.run_protocol`.
    """
    settings = settings or ProtocolConfig(unit="round")
    labels = np.asarray(sample.labels)
    object_ids = list(range(1, len(sample.object_names) + 1))
    present = set(np.unique(labels[labels > 0]).tolist())
    if set(object_ids) != present:
        raise ValueError(f"{sample.name}: label map objects {sorted(present)} differ from the named objects {object_ids}")
    predictor.set_image(sample.image, object_ids)
    template = robot if robot is not None else ScribbleRobot()
    robots = {k: copy.deepcopy(template) for k in object_ids}
    for k in object_ids:
        robots[k].start(object_view(labels, k))
    gts = {k: object_gt(labels, k) for k in object_ids}
    predicted = np.zeros(labels.shape, np.int32)
    ious: dict[int, list[float]] = {k: [] for k in object_ids}
    counts: dict[int, list[tuple[int, int]]] = {k: [] for k in object_ids}
    sizes: dict[int, list[int]] = {k: [] for k in object_ids}
    for step in range(1, settings.max_clicks + 1):
        rounds = {k: next_round(robots[k], predicted == k) for k in object_ids}
        for k in object_ids:
            for prompt in rounds[k]:
                predictor.add(prompt, k)
            sizes[k].append(len(rounds[k]))
        if any(rounds.values()):
            predictor.commit()
            predicted = np.asarray(predictor.label_map())
            if predicted.shape != labels.shape:
                raise ValueError(f"label_map() has shape {predicted.shape}, expected the labels' {labels.shape}")
        for k in object_ids:
            intersection, union = iou_counts(predicted == k, gts[k])
            ious[k].append(iou_from_counts(intersection, union))
            counts[k].append((intersection, union))
        if step >= settings.min_clicks and all(ious[k][-1] >= settings.target_iou for k in object_ids):
            break
    results = []
    for k, name in zip(object_ids, sample.object_names):
        result = SampleResult(robots[k].history, np.array(ious[k], np.float32), np.array(counts[k], np.int64))
        result.round_sizes = sizes[k]
        results.append((name, result))
    return results


def multi_object_predictor(
    net: Any,
    *,
    device: Any = "cpu",
    views: Any = None,
    refiner: Any = None,
    **options: Any,
) -> Any:
    """A :class:`~iseg.inference.multi_object.MultiObjectPredictor` from evaluate.py's predictor config.

    Every object gets its own copy of ``views`` (a view keeps per-object state); the refiner group's
    plain forward (``NoRefine``) is the only refiner, since BRS optimises one object's map.
    ``options`` go to the predictor (``hard_aggregation``, ``hard_commit``, ``output``).
    """
    from iseg.inference.multi_object import MultiObjectPredictor
    from iseg.inference.refiners import NoRefine

    if refiner is not None and not isinstance(refiner, NoRefine):
        raise ValueError(
            f"the multi-object predictor runs one plain forward per object; refiner {type(refiner).__name__} "
            "is not supported (use refiner=none)"
        )
    make_views = (lambda: copy.deepcopy(views)) if views else None
    return MultiObjectPredictor(net, views=make_views, device=device, **options)
