"""SBD evaluation (BRS protocol): every instance of every image of the split is one sample.

Layout (RITM ``SBDEvaluationDataset``, reference §6): ``img/<name>.jpg``, ``inst/<name>.mat`` whose
``GTinst`` struct's first field (``Segmentation``) is the H×W instance map (0 = background,
k = instance k), and ``<split>.txt``. Samples are (name, id) for the names in split-file order and
the ids present in the map in ascending order (2857 images / 6671 instances for 'val'); GT = that
instance, no ignore region. The list is cached as the reference does (see ``instance_cache``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from iseg.data.eval.base import EvalEntry, EvaluationSet
from iseg.data.eval.instance_cache import InstanceList, cached_instance_list
from iseg.data.eval.layout import read_name_list, require_layout


def load_sbd_instances(path: Path) -> np.ndarray:
    """The instance map of an SBD ``.mat`` file: ``loadmat(path)['GTinst'][0][0][0]``."""
    try:
        mat = loadmat(str(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"SBD: instance file {path} not found") from None
    except Exception as exc:
        raise ValueError(f"SBD: cannot read {path} as a MATLAB file: {exc}") from None
    try:
        instances = np.asarray(mat["GTinst"][0][0][0])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(
            f"SBD: {path} has no GTinst struct with Segmentation as its first field ({type(exc).__name__}: {exc})"
        ) from None
    if instances.ndim != 2 or instances.dtype.kind not in "iu":
        raise ValueError(
            f"SBD: GTinst.Segmentation of {path} must be a 2-D integer map, got {instances.dtype} {instances.shape}"
        )
    return instances.astype(np.int32)


class SBDEvaluationDataset(EvaluationSet):
    """One sample per (image, instance id), named ``<name>#<id>``.

    Args:
        root: SBD ``dataset`` folder.
        split: 'val' (the evaluation split) or 'train'.
        cache_dir: where to cache the instance list when ``root`` is read-only
            (default :func:`~iseg.data.eval.instance_cache.default_cache_dir`).
        check_files, skip_bad_samples: the start-up check of the images (headers; the ``.mat``
            masks are read when the instance list is built, not on a cached list).
    """

    title = "SBD"
    config_key = "sbd"
    mask_is_image = False
    object_rule = "pixel of that instance id"

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        cache_dir: str | Path | None = None,
        check_files: str = "header",
        skip_bad_samples: bool = False,
    ) -> None:
        super().__init__(root)
        if split not in ("train", "val"):
            raise ValueError(f"SBD split must be 'train' or 'val', got {split!r}")
        require_layout(
            self.title,
            self.root,
            [
                ("img/", "<name>.jpg images"),
                ("inst/", "<name>.mat with a GTinst struct (first field Segmentation: 0 bg, k instance k)"),
                (f"{split}.txt", "sample names, one per line"),
            ],
            ["img", "inst", f"{split}.txt"],
        )
        split_file = self.root / f"{split}.txt"
        names = read_name_list(split_file)
        for name in names:
            for path in (self._image(name), self._mat(name)):
                if not path.is_file():
                    raise FileNotFoundError(f"SBD: {path} (listed in {split_file}) not found")
        pairs, self.cache_file = cached_instance_list(
            self.root,
            split_file,
            names,
            f"{split}_images_and_ids_list.pkl",
            lambda: self._build_list(names),
            Path(cache_dir) if cache_dir is not None else None,
        )
        with_instances = {name for name, _ in pairs}
        self.exclusions = [(name, f"no instance in {self._mat(name)}") for name in names if name not in with_instances]
        if not pairs:
            raise ValueError(f"SBD: no instance in any of the {len(names)} masks of {split_file}")
        entries = [EvalEntry(f"{name}#{obj_id}", self._image(name), self._mat(name), obj_id) for name, obj_id in pairs]
        self.entries = self.check_files(entries, check_files, skip_bad_samples)

    def _image(self, name: str) -> Path:
        return self.root / "img" / f"{name}.jpg"

    def _mat(self, name: str) -> Path:
        return self.root / "inst" / f"{name}.mat"

    def _build_list(self, names: list[str]) -> InstanceList:
        pairs: InstanceList = []
        for name in names:
            ids = np.unique(load_sbd_instances(self._mat(name)))
            pairs.extend((name, int(i)) for i in ids if i != 0)
        return pairs

    def load_mask(self, path: Path) -> np.ndarray:
        """The instance map of the ``.mat`` file."""
        return load_sbd_instances(path)

    def to_gt(self, raw: np.ndarray, entry: EvalEntry) -> np.ndarray:
        """The entry's instance -> 1, everything else -> 0."""
        return (raw == entry.object_id).astype(np.int8)
