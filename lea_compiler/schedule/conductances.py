"""Conductances of Program levels without noise, and the worst-case ADC ranges found from them: the one
definition of each, for lowering (the programming section's arrays, the halves in read order, the range rule),
the simulator's programming and the cost model."""

from __future__ import annotations

import functools
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
        # below): the same values as a clipping `take`, without its bounds checks (`byte_table`), two at a time
        g = pair_gathered(level, byte_table(levels_uS, 0))
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


def pair_gathered(level: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[level.view(np.uint8)] for int8 levels and their byte table (float64, `byte_table`), the same values:
    two neighbouring levels at a time, their two bytes read as one little-endian uint16 index into the table of
    (table[b0], table[b1]) pairs (`pair_table`, each pair one complex128 item), so the gather moves half as many
    items, 16 bytes each, and makes no intp index per level (1.2-1.4 ms against 4.2-7.2 for 1.43 million levels:
    benchmarks/bench_write_parts.py, results/write_parts.txt). A Program's few levels touch few entries of that
    1 MiB table, which stay in cache."""
    flat = np.ascontiguousarray(level).reshape(-1)
    out = np.empty(flat.shape)
    even = len(flat) - len(flat) % 2
    np.take(pair_table(table.tobytes()), flat[:even].view("<u2").astype(np.intp),
            out=out[:even].view(np.complex128), mode="wrap")  # ("wrap": in range anyway; "raise" buffers out)
    if even < len(flat):
        out[-1] = table[flat[-1:].view(np.uint8)[0]]
    return out.reshape(level.shape)


@functools.lru_cache(maxsize=4)
def pair_table(table: bytes) -> np.ndarray:
    """Entry b0 + 256 b1 = (table[b0], table[b1]), as one complex128 (real part first in memory), for the byte
    table of 256 float64 given as its bytes (the cache's key): `pair_gathered`'s table (1 MiB, made once)."""
    values = np.frombuffer(table, dtype=np.float64)
    pairs = np.empty((256, 256, 2))  # [b1, b0]: entry b0 + 256 b1
    pairs[:, :, 0], pairs[:, :, 1] = values[None, :], values[:, None]
    found = pairs.view(np.complex128).reshape(-1)
    found.flags.writeable = False
    return found


PART_DEVICES = 1 << 17
"""`worst_case_full_scales_uA` given its conductances as a function asks for runs of regions of about this many
devices (1 MiB of float64, in cache while summed) instead of one buffer of every device."""


def worst_case_full_scales_uA(conductances: np.ndarray | Callable[[int, int], np.ndarray], starts: np.ndarray,
                              shapes: np.ndarray, blocks: Sequence[int] | np.ndarray, v_read_V: float) -> np.ndarray:
    """The ADC ranges of blocks without calibration data: for each block, v_read x the largest column sum of
    conductance over its copy halves, the most a column can carry with every input at the DAC's full scale.

    `shapes` (regions x 2: rows, cols) are the regions every block's copy halves read; region i's conductances
    without noise are `conductances[starts[i]:starts[i] + rows * cols]`, row by row; `blocks[i]` numbers its
    block (0, 1, ...); entry b of the result is block b's range. One column sum per region shape, not a pass per
    region.

    `conductances` may instead be a function giving the devices [lo, hi)'s (`Lowered.half_conductances_of`, with
    `starts` ascending): it is then asked for runs of regions of about `PART_DEVICES` devices, each summed while
    in cache, so that no buffer of every device is made. The sums are the same: each region's column sums over
    its rows, in row order as np.sum(region, axis=0) adds them, whichever regions share its run."""
    shape = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    peak = np.zeros(len(shape))
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if len(shape):
        sizes = shape[:, 0] * shape[:, 1]
        kinds, first, which = np.unique(shape[:, 0] * (int(shape[:, 1].max()) + 1) + shape[:, 1], return_index=True,
                                        return_inverse=True)
        which = which.ravel()
        if callable(conductances):  # runs of regions, each ending in the next PART_DEVICES of the devices
            if np.any(np.diff(starts) < 0):
                raise ValueError("worst_case_full_scales_uA: regions asked for part by part must come in order")
            bucket = (starts + sizes) // PART_DEVICES
            cuts = [0, *(np.flatnonzero(bucket[1:] != bucket[:-1]) + 1).tolist(), len(shape)]
        else:
            cuts = [0, len(shape)]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            lo, hi = int(starts[a:b].min()), int((starts[a:b] + sizes[a:b]).max())
            g = conductances(lo, hi) if callable(conductances) else conductances[lo:hi]
            present = which[a:b]
            for index in np.unique(present).tolist():
                rows, cols = (int(v) for v in shape[first[index]])
                members = a + np.flatnonzero(present == index)
                begin = int(starts[members[0]]) - lo
                if np.array_equal(starts[members] - lo, begin + rows * cols * np.arange(len(members))):  # end to end
                    part = g[begin:begin + len(members) * rows * cols]
                else:
                    part = g[(starts[members][:, None] - lo + np.arange(rows * cols)).ravel()]
                # each region's column sums over its rows, in row order as np.sum(region, axis=0) adds them
                peak[members] = part.reshape(len(members), rows, cols).sum(axis=1).max(axis=1)
    numbers = np.asarray(blocks, dtype=np.int64)
    top = np.full(int(numbers.max()) + 1 if numbers.size else 0, -np.inf)
    np.maximum.at(top, numbers, peak)
    return v_read_V * top
