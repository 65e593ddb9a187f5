"""The tamed skeleton robot: scribbles along the skeleton of an error region (S2M's, reference §1.2).

S2M's "tamed robot" is the DAVIS interactive robot run on one error mask at half resolution: the
mask is opened with a disk whose radius grows with the region's size (shrunk by 0.9 until something
survives), its medial axis is taken, the skeleton pixels become a graph (8-neighbours, weight 1 or
sqrt 2), every connected piece loses its cycles, and the longest path of each resulting tree is
smoothed by a Bézier curve through all of its points. Coordinates are doubled back to full
resolution.

Where this differs from the reference, on purpose:
- Determinism. scikit-image >= 0.19 breaks the medial axis' ties with an unseeded generator, so
  the reference robot draws different skeletons on the same mask. Here ``medial_axis`` gets
  ``rng=seed``: the training sampler draws the seed from the dataset's generator, the evaluation
  robot uses its own fixed seed.
- Cycles are removed in one pass by a minimum spanning forest (Kruskal's cycle property: every cycle
  loses one of its heaviest edges, as the reference's repeated ``find_cycle`` does, ties resolved by
  pixel order instead of by traversal order).
- The opening's disk is centred on a pixel (:func:`centred_disk`).
- ``min_nodes`` (the DAVIS robot's ``min_nb_nodes``) is applied when > 0; the training robot keeps the
  reference's 0 (no pruning), the evaluation robot prunes pieces shorter than 4 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
from scipy.special import comb
from skimage.morphology import medial_axis

_NEIGHBOUR_OFFSETS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, np.sqrt(2.0)), (1, -1, np.sqrt(2.0)))


@dataclass(frozen=True)
class SkeletonRobot:
    """Paths along the skeleton of an error mask; see the module docstring for the rule.

    Args:
        kernel_size: opening radius = ``kernel_size`` x sqrt(area) / 2 at half resolution ...
        max_kernel_radius: ... at most this.
        min_nodes: drop skeleton pieces with fewer pixels (0: keep all, the training reference).
        num_points: samples of the Bézier curve; paths with more points are used as they are.
    """

    kernel_size: float = 0.15
    max_kernel_radius: float = 16.0
    min_nodes: int = 0
    num_points: int = 1000

    def paths(self, error_mask: np.ndarray, seed: int) -> list[np.ndarray]:
        """(N, 2) float64 (y, x) curves at full resolution, one per skeleton piece, inside the image."""
        height, width = error_mask.shape
        small = cv2.resize(np.asarray(error_mask, np.uint8), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) > 0.5
        skeleton = self.skeleton(small, seed)
        curves = []
        for path in longest_paths(skeleton, self.min_nodes):
            curve = bezier_through(path.astype(np.float64), self.num_points) * 2.0
            curve[:, 0] = np.clip(curve[:, 0], 0, height - 1)
            curve[:, 1] = np.clip(curve[:, 1], 0, width - 1)
            curves.append(curve)
        return curves

    def skeleton(self, mask: np.ndarray, seed: int) -> np.ndarray:
        """Bool skeleton of ``mask`` after the size-dependent opening (medial axis with a seeded tie-break)."""
        mask = mask.astype(np.uint8)
        radius = min(self.kernel_size * np.sqrt(np.count_nonzero(mask)) * 0.5, self.max_kernel_radius)
        opened = mask
        while radius > 1.0:
            opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, centred_disk(radius))
            if opened.any():
                break
            radius *= 0.9  # nothing survives: a smaller disk (the last, empty, opening is kept at r <= 1)
        padded = np.pad(opened.astype(bool), 1)
        return medial_axis(padded, rng=seed)[1:-1, 1:-1]

    def raster(self, error_mask: np.ndarray, seed: int) -> np.ndarray:
        """The paths drawn 1 pixel wide (8-connected lines between integer points) as a uint8 0/1 map."""
        out = np.zeros(error_mask.shape, np.uint8)
        polylines = [np.round(curve[:, ::-1]).astype(np.int32).reshape(-1, 1, 2) for curve in self.paths(error_mask, seed)]
        if polylines:
            cv2.polylines(out, polylines, isClosed=False, color=1, thickness=1, lineType=cv2.LINE_8)
        return out


def centred_disk(radius: float) -> np.ndarray:
    """uint8 disk footprint of a float ``radius`` centred on a pixel: offsets with y² + x² <= radius².

    scikit-image's ``disk`` with a float radius is centred between pixels (its grid is
    ``arange(-r, r + 1)``), which shifts the reference's opening by up to a pixel; this one equals it for
    integer radii and keeps the opening inside the mask.
    """
    reach = int(radius)
    offsets = np.arange(-reach, reach + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def longest_paths(skeleton: np.ndarray, min_nodes: int = 0) -> list[np.ndarray]:
    """(N, 2) int (y, x) pixel paths: the longest path (in pixels) of each 8-connected skeleton piece.

    A piece's cycles are cut by a minimum spanning forest; its longest path is found by two
    breadth-first passes (from the piece's first pixel in row-major order to the farthest pixel,
    and from there to the farthest again; the first farthest pixel wins ties).
    """
    ys, xs = np.nonzero(skeleton)
    count = len(ys)
    if count == 0:
        return []
    index = np.full(skeleton.shape, -1, np.int64)
    index[ys, xs] = np.arange(count)
    height, width = skeleton.shape
    rows, cols, weights = [], [], []
    for dy, dx, weight in _NEIGHBOUR_OFFSETS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        neighbour = np.full(count, -1, np.int64)
        neighbour[inside] = index[ny[inside], nx[inside]]
        linked = neighbour >= 0
        rows.append(np.flatnonzero(linked))
        cols.append(neighbour[linked])
        weights.append(np.full(int(linked.sum()), weight))
    graph = coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(count, count))
    forest = minimum_spanning_tree(graph.tocsr())
    forest = (forest + forest.T).tocsr()
    num_pieces, labels = connected_components(forest, directed=False)
    points = np.stack([ys, xs], axis=1)
    paths = []
    for piece in range(num_pieces):
        members = np.flatnonzero(labels == piece)
        if len(members) < max(min_nodes, 1):
            continue
        if len(members) == 1:
            paths.append(points[members])
            continue
        end, _ = _farthest(forest, int(members[0]))
        start, predecessors = _farthest(forest, end)
        path = [start]
        while path[-1] != end:
            path.append(int(predecessors[path[-1]]))
        paths.append(points[np.array(path)])
    return paths


def _farthest(tree, source: int) -> tuple[int, np.ndarray]:
    """The node of ``tree`` farthest (in edges) from ``source`` and the breadth-first predecessors."""
    order, predecessors = breadth_first_order(tree, source, directed=False, return_predecessors=True)
    depth = {source: 0}
    for node in order[1:]:
        depth[int(node)] = depth[int(predecessors[node])] + 1
    depths = np.array([depth[int(node)] for node in order])
    return int(order[int(np.argmax(depths))]), predecessors


def bezier_through(points: np.ndarray, num_points: int = 1000) -> np.ndarray:
    """The Bézier curve whose control points are ``points`` (N, 2), sampled at ``num_points`` t in [0, 1].

    Bernstein form, exact in float64 for N <= 1000 (binomials up to C(999, 499) ~ 7e299 fit); paths
    with more points than samples are returned as they are (the reference's rule).
    """
    num_points = min(num_points, 1000)
    count = len(points)
    if count > num_points or count == 1:
        return points.astype(np.float64)
    t = np.linspace(0.0, 1.0, num_points)[:, None]
    i = np.arange(count)[None, :]
    degree = count - 1
    basis = comb(degree, i) * t**i * (1.0 - t) ** (degree - i)
    return basis @ points
