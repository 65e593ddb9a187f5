"""One person's annotation of one image: several objects, each with its own predictor, and undo.

Every object keeps a :class:`~iseg.inference.predictor.Predictor` (built on first use from the
shared network), so its prompts, views and undo stay its own. Objects may overlap in their
probabilities; the label map gives each pixel to the object with the highest probability among
those whose mask covers it. Undo removes the last prompt whatever object it went to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from iseg.demo.images import LoadedImage
from iseg.demo.wire import kind_of, prompt_to_json
from iseg.inference.predictor import Predictor
from iseg.interaction.prompts import Prompt, check_prompt

PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
)  # fmt: skip
"""Object colours (RGB), in the order objects are created; repeated after ten."""

MAX_OBJECTS = 255  # ids fit the 8-bit label PNG


class SessionError(ValueError):
    """An action that does not fit the session's state (no image yet, unknown object)."""


@dataclass
class AnnotatedObject:
    id: int
    color: tuple[int, int, int]
    predictor: Predictor | None = None  # built at the object's first prompt

    @property
    def prompts(self) -> list[Prompt]:
        return self.predictor.prompts if self.predictor is not None else []


@dataclass
class AnnotationSession:
    """The image, its objects and the order prompts were given in (for undo).

    Args:
        new_predictor: builds a fresh predictor on the shared network (one per object).
        prompt_types: the prompt classes the network takes (the predictor adapter's ``prompt_types``).
    """

    new_predictor: Callable[[], Predictor]
    prompt_types: Sequence[type]
    image: LoadedImage | None = None
    objects: list[AnnotatedObject] = field(default_factory=list)
    current: int = 0
    version: int = 0  # bumped by every change, so the page can tell a stale overlay
    image_serial: int = 0  # counts images opened
    _order: list[int] = field(default_factory=list)  # object id of every prompt, oldest first

    @property
    def prompt_kinds(self) -> list[str]:
        return [kind_of(cls) for cls in self.prompt_types]

    def set_image(self, image: LoadedImage) -> None:
        """A new image: every object and prompt is forgotten, one empty object is current."""
        self.image = image
        self.image_serial += 1
        self.objects, self._order = [], []
        self.new_object()

    def new_object(self) -> int:
        """Add an empty object, make it current and return its id (1, 2, ...)."""
        self._require_image()
        if len(self.objects) >= MAX_OBJECTS:
            raise SessionError(f"at most {MAX_OBJECTS} objects per image")
        object_id = self.objects[-1].id + 1 if self.objects else 1
        self.objects.append(AnnotatedObject(object_id, PALETTE[(object_id - 1) % len(PALETTE)]))
        self.current = object_id
        self.version += 1
        return object_id

    def select(self, object_id: int) -> None:
        self.find(object_id)
        self.current = object_id
        self.version += 1

    def add(self, prompt: Prompt, object_id: int | None = None) -> np.ndarray:
        """Give ``prompt`` to an object (the current one by default); its new probabilities."""
        image = self._require_image()
        obj = self.find(self.current if object_id is None else object_id)
        check_prompt(prompt, *image.size)
        if obj.predictor is None:
            obj.predictor = self.new_predictor()
            obj.predictor.set_image(image.rgb)
        probs = obj.predictor.add(prompt)
        self._order.append(obj.id)
        self.current = obj.id
        self.version += 1
        return probs

    @property
    def can_undo(self) -> bool:
        return bool(self._order)

    def undo(self) -> None:
        """Remove the most recent prompt (of whichever object); nothing to undo is not an error."""
        if not self._order:
            return
        obj = self.find(self._order.pop())
        obj.predictor.undo()
        self.current = obj.id
        self.version += 1

    def reset(self) -> None:
        """Remove every prompt of every object; the objects stay, the first is current."""
        for obj in self.objects:
            if obj.predictor is not None:
                obj.predictor.reset()
        self._order = []
        self.current = self.objects[0].id if self.objects else 0
        self.version += 1

    def label_map(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 (H, W) object ids (0 background) at the working size, or resized to ``size``
        (h, w), e.g. the original image's: probabilities are resized (bilinear), then labelled."""
        image = self._require_image()
        height, width = size or image.size
        best = np.full((height, width), -1.0, np.float32)
        labels = np.zeros((height, width), np.uint8)
        for obj in self.objects:
            if not obj.prompts:
                continue
            probs = obj.predictor.probs
            if (height, width) != probs.shape:
                probs = cv2.resize(probs, (width, height), interpolation=cv2.INTER_LINEAR)
            wins = (probs > obj.predictor.pred_thr) & (probs > best)
            best[wins], labels[wins] = probs[wins], obj.id
        return labels

    def state(self) -> dict:
        """What the page shows: image, objects with their prompts and areas, undo, prompt kinds."""
        image = self.image
        labels = self.label_map() if image is not None else None
        return {
            "version": self.version,
            "prompt_kinds": self.prompt_kinds,
            "image": None if image is None else {
                "name": image.name,
                "serial": self.image_serial,
                "height": image.size[0],
                "width": image.size[1],
                "original_height": image.original_size[0],
                "original_width": image.original_size[1],
                "note": image.note,
            },
            "objects": [
                {
                    "id": obj.id,
                    "color": "#{:02x}{:02x}{:02x}".format(*obj.color),
                    "prompts": [prompt_to_json(prompt) for prompt in obj.prompts],
                    "area": int(np.count_nonzero(labels == obj.id)),
                }
                for obj in self.objects
            ],
            "current": self.current,
            "can_undo": self.can_undo,
        }  # fmt: skip

    def overlay_rgba(self, alpha: int = 140) -> np.ndarray:
        """(H, W, 4) uint8: each object's pixels in its colour, background transparent."""
        labels = self.label_map()
        lut = np.zeros((256, 4), np.uint8)
        for obj in self.objects:
            lut[obj.id] = (*obj.color, alpha)
        return lut[labels]

    def find(self, object_id: int) -> AnnotatedObject:
        """The object with this id, or an error listing the ids there are."""
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise SessionError(f"no object {object_id}; objects: {[obj.id for obj in self.objects]}")

    def _require_image(self) -> LoadedImage:
        if self.image is None:
            raise SessionError("open an image first")
        return self.image
