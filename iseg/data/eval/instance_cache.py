"""The (sample name, instance id) list of a multi-instance evaluation set, computed once and cached.

Building the list decodes every mask of the split (2857 ``.mat`` files for SBD), so the
references pickle it next to the data (``<root>/<split>_images_and_ids_list.pkl``, a plain list of
``(name, id)`` tuples). Here that file is reused when it exists and is valid. A computed list is
written there in the same format when the name is the reference's and the root is writable;
otherwise, or for lists the references never cache, it goes to a per-user cache folder keyed by
the dataset root and the split file's content, so a read-only dataset never makes loading fail.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

InstanceList = list[tuple[str, int]]

# Globals a reference list pickle may need: numpy scalars and plain arrays. Nothing else is loaded.
_ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("scalar", "_reconstruct")
} | {("numpy", "dtype"), ("numpy", "ndarray")}


class _ListUnpickler(pickle.Unpickler):
    """Unpickler that refuses any global but numpy scalars/arrays, so a list file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only lists of names and ids are expected")


def load_pickle(path: Path) -> Any:
    """Load a name/id list pickle without allowing arbitrary objects."""
    with open(path, "rb") as f:
        return _ListUnpickler(io.BytesIO(f.read())).load()


def default_cache_dir() -> Path:
    """``$ISEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/iseg``, else ``~/.cache/iseg``; plus ``evaluation_sets``."""
    base = os.environ.get("ISEG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "iseg"
    )
    return Path(base) / "evaluation_sets"


def check_instance_list(data: Any, names: Sequence[str], ordered: bool = True) -> InstanceList:
    """``data`` as a list of (name, positive id), or ValueError saying what is wrong.

    ``ordered``: the names must also follow the order of ``names`` (the split file), as a list
    built from that file does.
    """
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"expected a list of (name, instance id) pairs, got {type(data).__name__}")
    position = {name: i for i, name in enumerate(names)}
    result: InstanceList = []
    last = -1
    for item in data:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"entry {item!r} is not a (name, instance id) pair")
        name, obj_id = item
        try:
            obj_id = int(obj_id)
        except (TypeError, ValueError):
            raise ValueError(f"entry {item!r}: instance id is not an integer") from None
        if obj_id != item[1] or obj_id <= 0:
            raise ValueError(f"entry {item!r}: instance id must be a positive integer")
        if name not in position:
            raise ValueError(f"entry {item!r}: {name!r} is not in the split file")
        if ordered and position[name] < last:
            raise ValueError(f"entry {item!r} is out of the split file's order")
        last = position[name]
        result.append((name, obj_id))
    if not result:
        raise ValueError("the list is empty")
    return result


def _write_atomic(path: Path, data: InstanceList) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def user_cache_path(cache_dir: Path, root: Path, split_file: Path, file_name: str) -> Path:
    """Per-user cache file of one dataset root + split file content."""
    key = hashlib.sha1(str(root.resolve()).encode() + b"\0" + split_file.read_bytes()).hexdigest()[:16]
    return cache_dir / f"{key}_{file_name}"


def cached_instance_list(
    root: Path,
    split_file: Path,
    names: Sequence[str],
    file_name: str,
    build: Callable[[], InstanceList],
    cache_dir: Path | None = None,
    reference_name: bool = True,
) -> tuple[InstanceList, Path | None]:
    """The instance list from a valid cache, else from ``build()`` (then cached); and the cache file used.

    ``reference_name``: ``file_name`` is the references' own cache name, so ``<root>/<file_name>``
    is read and, when absent and writable, written; otherwise only the user cache is used.
    Invalid cache files are reported with a warning and recomputed, never overwritten in ``root``.
    """
    user_file = user_cache_path(cache_dir or default_cache_dir(), root, split_file, file_name)
    candidates = ([root / file_name] if reference_name else []) + [user_file]
    for path in candidates:
        if path.is_file():
            try:
                return check_instance_list(load_pickle(path), names), path
            except Exception as exc:  # any unreadable or malformed file: recompute, say so
                warnings.warn(f"ignoring invalid instance list cache {path}: {exc}", stacklevel=3)
    data = build()
    if not data:  # nothing worth caching; the caller reports the empty set
        return data, None
    targets = ([root / file_name] if reference_name and not (root / file_name).exists() else []) + [user_file]
    for path in targets:
        try:
            _write_atomic(path, data)
            return data, path
        except OSError:
            continue
    warnings.warn(f"could not write the instance list cache to any of {[str(p) for p in targets]}", stacklevel=3)
    return data, None
