"""Grouped matrix products: which vectors and which columns belong to which group, defined once.

A grouped or depthwise Conv becomes one `leac.MVM` with `groups` = G > 1 (passes/canonicalize.py): a K x O
matrix holding every group's kernels side by side, column o of group o // (O / G), and input vectors in runs
of G, one per group, vector i (counting the layer's vectors in order over samples and pixels) of group
i mod G; in the IR a run is axis -2 of the MVM's input (..., G, K). Each column is computed from its own
group's vector only, so a run of G vectors gives O values, as one vector of an ungrouped layer does.

Computing every column for every vector and keeping the diagonal gives the same values but takes G times the
memory and the work (a (..., G, O) intermediate); every grouped product here keeps each group to its own
columns. The interpreter, the crossbar executor (lea_compiler/schedule/execute.py), the calibration, the
compensation fit and the cost model all use these definitions; the board format states them for people
(docs/board-format.md, "Grouped layers").
"""

from __future__ import annotations

import numpy as np


def group_width(cols: int, groups: int) -> int:
    """The columns of one group, O / G.

    Raises:
        ValueError: `groups` is not a positive divisor of `cols` (callers check it first, with their own message).
    """
    if groups < 1 or cols % groups:
        raise ValueError(f"groups={groups} does not divide the {cols} columns")
    return cols // groups


def group_columns(group: int, cols: int, groups: int) -> tuple[int, int]:
    """The columns [start, stop) of group `group` (0 <= group < groups) of a layer of `cols` columns."""
    width = group_width(cols, groups)
    return group * width, (group + 1) * width


def group_overlaps(col_start: np.ndarray, col_stop: np.ndarray, cols: int, groups: int) -> np.ndarray:
    """(blocks, G): how many of each group's columns each block of layer columns [col_start, col_stop) holds
    (0 or less: none), for a layer of `cols` columns in `groups` groups. A grouped layer's vector g reads a block
    once if it holds a column of group g and converts those columns: the one definition of that split
    (`backends.timing.read_jobs` on a lowered schedule, `analog_time.half_read_ns` on placement's blocks)."""
    bounds = np.array([group_columns(g, cols, groups) for g in range(groups)], dtype=np.int64).reshape(-1, 2)
    start = np.asarray(col_start, dtype=np.int64).reshape(-1, 1)
    stop = np.asarray(col_stop, dtype=np.int64).reshape(-1, 1)
    return np.minimum(stop, bounds[None, :, 1]) - np.maximum(start, bounds[None, :, 0])


def groups_reading(c0: int, c1: int, cols: int, groups: int) -> range:
    """The groups whose vectors read a block of columns [c0, c1) of a layer of `cols` columns in `groups`
    groups (those with a column in it): each drives the block's rows, so every device of the block's region
    conducts once per such group, whichever columns are converted (`cost.layer_cost`, `schedule.execute`)."""
    if c1 <= c0:
        return range(0)
    width = group_width(cols, groups)
    return range(c0 // width, (c1 - 1) // width + 1)


def split_columns(a: np.ndarray, groups: int) -> np.ndarray:
    """(..., O) -> (..., G, O / G), column o at [o // (O / G), o % (O / G)] (a view when `a` allows one)."""
    return a.reshape(*a.shape[:-1], groups, group_width(a.shape[-1], groups))


def vector_runs(x: np.ndarray, groups: int) -> np.ndarray:
    """(n, K) vectors -> (n / G, G, K) runs, vector i at [i // G, i mod G]: its group is i mod G.

    Raises:
        ValueError: n is not a whole number of runs.
    """
    if len(x) % groups:
        raise ValueError(f"{len(x)} vectors are not runs of {groups} (one per group)")
    return x.reshape(len(x) // groups, groups, *x.shape[1:])


def grouped_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y[..., o] = sum_k x[..., o // (O / G), k] w[k, o] for x (..., G, K) and w (K, O): each group's vector
    times its own O / G columns only, (..., O); G = x.shape[-2]. One batched product per group (BLAS), with
    no intermediate larger than x or y."""
    groups, depth = x.shape[-2], x.shape[-1]
    lead = x.shape[:-2]
    per_group = split_columns(w, groups).transpose(1, 0, 2)  # (G, K, O / G)
    y = np.matmul(x.reshape(-1, groups, depth).transpose(1, 0, 2), per_group)  # (G, n, O / G)
    return y.transpose(1, 0, 2).reshape(*lead, w.shape[-1])
