"""Layout checks of training-data folders, with the same drawn tree as the evaluation sets' errors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from iseg.data.eval.layout import require_layout


def require_training_layout(title: str, root: Path, items: Sequence[tuple[str, str]], required: Sequence[str]) -> None:
    """:func:`require_layout` worded for training data."""
    require_layout(title, root, items, required, kind="training data")


def require_listed_files(title: str, list_file: Path, paths: Iterable[Path]) -> None:
    """Every path (derived from the names of ``list_file``) must exist; checked with one listing per folder."""
    paths = list(paths)
    listings: dict[Path, set[str]] = {}
    missing = []
    for path in paths:
        if path.parent not in listings:
            listings[path.parent] = set(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else set()
        if path.name not in listings[path.parent]:
            missing.append(path)
    if missing:
        shown = "\n  ".join(str(p) for p in missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{title}: {len(missing)} of the {len(paths)} files named by {list_file} are missing:\n  {shown}{more}"
        )
