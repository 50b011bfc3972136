"""Conductances of Program levels without noise, and the worst-case ADC ranges found from them: the one
definition of each, for lowering (the programming section's arrays, the halves in read order, the range rule),
the simulator's programming and the cost model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def noiseless_conductances(level: np.ndarray, levels_uS: np.ndarray,
                           unwritten: Callable[[np.ndarray], np.ndarray], others: np.ndarray | None = None
                           ) -> np.ndarray:
    """The conductances of devices at Program levels `level` without noise: levels_uS[level] where written
    (level >= 0), and `unwritten(i)` at the flat indices i of the others (skipped or unused: what the caller
    says they hold; `others`: those indices, if the caller has them). The one definition, for one array, many
    laid end to end, or the halves in read order."""
    levels_uS = np.asarray(levels_uS)
    if level.dtype == np.int8 and level.size and int(level.max()) < levels_uS.size:
        # int8 levels (up to 128 levels) read as bytes from a table of 256 entries (a negative level's: 0, replaced
        # below): the same values as a clipping `take`, without its bounds checks (`byte_table`)
        g = byte_table(levels_uS, 0)[level.view(np.uint8)]
    else:  # take: the same values as indexing (and an IndexError for a level past the table)
        g = np.take(levels_uS, np.maximum(level, 0))
    if others is None:
        others = np.flatnonzero(level < 0)
    g.reshape(-1)[others] = unwritten(others)
    return g


def byte_table(levels_uS: np.ndarray, negative: float) -> np.ndarray:
    """A look-up table of int8 levels read as bytes (`table[level.view(np.uint8)]`): levels_uS[l] at entry l for
    l = 0..127 (the levels there are), `negative` at the entries 128..255 of the negative levels, 0 at the rest.
    numpy indexes a 256-entry table by bytes without bounds checks, where `np.take(..., mode="clip")` checks
    every level."""
    levels_uS = np.asarray(levels_uS)
    table = np.zeros(256, dtype=levels_uS.dtype)
    table[:min(levels_uS.size, 128)] = levels_uS[:128]
    table[128:] = negative
    return table


def worst_case_full_scales_uA(conductances: np.ndarray, starts: np.ndarray, shapes: np.ndarray,
                              blocks: Sequence[int] | np.ndarray, v_read_V: float) -> np.ndarray:
    """The ADC ranges of blocks without calibration data: for each block, v_read x the largest column sum of
    conductance over its copy halves, the most a column can carry with every input at the DAC's full scale.

    `shapes` (regions x 2: rows, cols) are the regions every block's copy halves read; region i's conductances
    without noise are `conductances[starts[i]:starts[i] + rows * cols]`, row by row; `blocks[i]` numbers its
    block (0, 1, ...); entry b of the result is block b's range. One column sum per region shape, not a pass per
    region."""
    shape = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    peak = np.zeros(len(shape))
    if len(shape):
        starts = np.asarray(starts, dtype=np.int64)
        kinds, first, which = np.unique(shape[:, 0] * (int(shape[:, 1].max()) + 1) + shape[:, 1], return_index=True,
                                        return_inverse=True)
        for index in range(len(kinds)):
            rows, cols = (int(v) for v in shape[first[index]])
            members = np.flatnonzero(which.ravel() == index)
            begin = int(starts[members[0]])
            if np.array_equal(starts[members], begin + rows * cols * np.arange(len(members))):  # end to end
                g = conductances[begin:begin + len(members) * rows * cols]
            else:
                g = conductances[(starts[members][:, None] + np.arange(rows * cols)).ravel()]
            # each region's column sums over its rows, in row order as np.sum(region, axis=0) adds them
            peak[members] = g.reshape(len(members), rows, cols).sum(axis=1).max(axis=1)
    numbers = np.asarray(blocks, dtype=np.int64)
    top = np.full(int(numbers.max()) + 1 if numbers.size else 0, -np.inf)
    np.maximum.at(top, numbers, peak)
    return v_read_V * top
