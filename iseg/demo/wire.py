"""Prompts as JSON between the page and the server, for whatever prompt classes the network takes.

A prompt travels as its dataclass fields plus ``kind`` (the class name in lower case):
``{"kind": "click", "y": 12, "x": 30, "is_positive": true}``,
``{"kind": "scribble", "points": [[y, x], ...], "is_positive": false}``,
``{"kind": "box", "y0": 5, "x0": 8, "y1": 40, "x1": 60}``. Which kinds a session accepts comes from
the predictor's input adapter (:attr:`iseg.models.inputs.NetInputs.prompt_types`), so a new prompt
class needs no change here; pydantic checks the field types and the class's own checks run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from iseg.interaction.prompts import Prompt


class PromptRejected(ValueError):
    """A prompt the page sent cannot be used; the message says which field or kind is at fault."""


def kind_of(prompt_type: type) -> str:
    """The wire name of a prompt class: ``Click`` -> ``"click"``."""
    return prompt_type.__name__.lower()


def prompt_to_json(prompt: Prompt) -> dict[str, Any]:
    fields = dataclasses.asdict(prompt)
    return {"kind": kind_of(type(prompt)), **fields}


def prompt_from_json(payload: Mapping[str, Any], accepted: Sequence[type]) -> Prompt:
    """The prompt a JSON object describes, if its kind is among the ``accepted`` classes."""
    kinds = {kind_of(cls): cls for cls in accepted}
    kind = payload.get("kind")
    if kind not in kinds:
        raise PromptRejected(f"prompt kind {kind!r} is not taken by this network; it takes {sorted(kinds)}")
    cls = kinds[kind]
    names = [field.name for field in dataclasses.fields(cls)]
    fields = {key: value for key, value in payload.items() if key != "kind"}
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise PromptRejected(f"a {kind} has the fields {names}; unknown: {unknown}")
    try:
        return TypeAdapter(cls).validate_python(fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or kind}: {item['msg']}" for item in error.errors()
        )
        raise PromptRejected(f"bad {kind} {dict(fields)}: {problems}") from error
