"""A layer's per-read arrays laid end to end: one (rows, cols) array per read, in read order, as one flat buffer,
and the row-wise gathers and scatters the executor's set-up makes over such buffers (`schedule.execute`).

The simulator programs a layer's devices in read order into one buffer (`backends.crossbar`); the executor's
set-up reads them as whole rows of that buffer (each region's row sums, each region's rows put in its row band).
`Regions` hands the buffer over as it is, so no region is split off and joined again; a plain list of arrays
(tests, hand-made layers, the region-by-region programming paths) is laid end to end once (`flat_of`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from lea_compiler.errors import InvalidInputError
from lea_compiler.geometry import ranges, region_starts
from lea_compiler.schedule.layout import region_rows


class Regions(Sequence[np.ndarray]):
    """One (heights[i], widths[i]) array per read, in read order, held as one flat buffer, each region row by
    row after the one before: a sequence of views of the buffer, made when asked for."""

    def __init__(self, flat: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> None:
        self.flat = flat
        self.heights = np.asarray(heights, dtype=np.int64)
        self.widths = np.asarray(widths, dtype=np.int64)
        self.starts = region_starts(self.heights, self.widths)
        self._starts = self.starts.tolist()
        size = int(self.starts[-1] + self.heights[-1] * self.widths[-1]) if len(self.starts) else 0
        if flat.shape != (size,):
            raise ValueError(f"a flat buffer of {flat.shape} for regions of {size} devices")

    def __len__(self) -> int:
        return len(self.heights)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"region {index} of {len(self)}")
        index %= len(self)
        rows, cols = int(self.heights[index]), int(self.widths[index])
        start = self._starts[index]
        return self.flat[start:start + rows * cols].reshape(rows, cols)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def flat_of(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Per-read arrays laid end to end, each row by row, float64 (exactly the values: float32 widens exactly):
    a `Regions`' own buffer, not a copy."""
    if isinstance(arrays, Regions):
        return arrays.flat.astype(np.float64, copy=False)
    if not arrays:
        return np.zeros(0)
    return np.concatenate(arrays, axis=None).astype(np.float64, copy=False)


def check_regions(name: str, what: str, arrays: Sequence[np.ndarray], heights: np.ndarray,
                  widths: np.ndarray) -> None:
    """Refuse per-read arrays that are not one (rows, cols) array of each read's region, in read order."""
    if len(arrays) != len(heights):
        raise InvalidInputError(f"layer {name!r}: {len(arrays)} {what} for {len(heights)} reads")
    if isinstance(arrays, Regions) and np.array_equal(arrays.heights, heights) and \
            np.array_equal(arrays.widths, widths):
        return
    shapes = [a.shape if isinstance(a, np.ndarray) else np.shape(a) for a in arrays]
    regions = list(zip(heights.tolist(), widths.tolist(), strict=True))
    if shapes != regions:
        index = next(i for i, (shape, region) in enumerate(zip(shapes, regions, strict=True)) if shape != region)
        raise InvalidInputError(f"layer {name!r}: the {what} of read {index} are {shapes[index]}, its region "
                                f"{regions[index]}")


def row_sums(flat: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The sum of each row of regions heights[i] x widths[i] laid end to end in `flat`, each row by row, region
    after region, as `region.sum(axis=1)` sums it: numpy's same summation along one contiguous row, so the same
    float64 values. Regions of one width: the buffer's rows as the rows of one array; else one pass per distinct
    width (the rows of one width gathered as the rows of one array)."""
    distinct = _distinct(widths)
    if len(distinct) == 1:
        return flat.reshape(-1, int(distinct[0])).sum(axis=1)
    read, source = region_rows(heights, widths)
    width = widths[read]
    out = np.empty(len(source))
    for wide in distinct.tolist():
        chosen = width == wide
        out[chosen] = sliding_window_view(flat, wide)[source[chosen]].sum(axis=1)
    return out


def put_regions(out: np.ndarray, row: np.ndarray, col: np.ndarray, regions: Regions, factor: np.ndarray,
                unique: bool) -> None:
    """out[row[i]:row[i] + h_i, col[i]:col[i] + w_i] = region i x factor[i] for every region of `regions` (the
    float64 products, cast to out's dtype as assignment casts them). The regions of one shape: up to `_AT_ONCE`
    devices in one assignment, through a view whose element (r, c) is the block of that shape at out[r, c]
    (`sliding_window_view`); more, where their places form grids in read order (`_grids`, as the executor's
    bands place a layer's reads), through strided views of the buffer and of out, a sub-grid of at most
    `_PUT_DEVICES` devices at a time, else in parts of `_PUT_DEVICES` devices (`_put_in_parts`).
    Regions that overlap (`unique` False) leave the last region's values, as assigning region after region does.

    Raises:
        IndexError: a region outside `out` (refused before anything is written; a negative place does not wrap).
    """
    flat, heights, widths = regions.flat, regions.heights, regions.widths
    if len(heights) and (row.min() < 0 or col.min() < 0 or np.any(row + heights > out.shape[0])
                         or np.any(col + widths > out.shape[1])):  # before anything is written (no wrap-around)
        bad = int(np.flatnonzero((row < 0) | (col < 0) | (row + heights > out.shape[0])
                                 | (col + widths > out.shape[1]))[0])
        raise IndexError(f"region {bad} ({int(heights[bad])} x {int(widths[bad])} at row {int(row[bad])}, column "
                         f"{int(col[bad])}) is outside the output of shape {out.shape}")
    if not unique:  # device by device, the last region's value kept
        read, source = region_rows(heights, widths)
        target = (row[read] + ranges(np.zeros_like(heights), heights)) * out.shape[1] + col[read]
        scaled = flat * np.repeat(factor, heights * widths)
        scatter(out.reshape(-1), np.repeat(target - source, widths[read]) + np.arange(len(flat)), scaled, unique)
        return
    shapes = heights * (int(widths.max(initial=0)) + 1) + widths
    distinct = _distinct(shapes)
    starts = regions.starts
    for shape in distinct.tolist():
        chosen = np.flatnonzero(shapes == shape)
        height, width = int(heights[chosen[0]]), int(widths[chosen[0]])
        if len(chosen) * height * width <= _AT_ONCE:  # few devices: their products in one temporary, in cache
            first = int(starts[chosen[0]])
            if chosen[-1] - chosen[0] + 1 == len(chosen):  # one after the other: a view of the buffer
                block = flat[first:first + len(chosen) * height * width].reshape(-1, height, width)
            else:  # the regions of this shape gathered
                block = sliding_window_view(flat, height * width)[starts[chosen]].reshape(-1, height, width)
            blocks = sliding_window_view(out, (height, width), writeable=True)
            blocks[row[chosen], col[chosen]] = block * factor[chosen, None, None]
            continue
        # (every region is inside `out`, checked above: its grids' strided views stay in it)
        grids = _grids(starts[chosen], row[chosen] * out.shape[1] + col[chosen]) if out.flags.c_contiguous else None
        if grids is None:
            _put_in_parts(out, row[chosen], col[chosen], flat, starts[chosen], factor[chosen], height, width)
            continue
        for lo, hi, sizes, source_steps, target_steps in grids:  # a grid of regions: strided views of both
            whole = (*sizes, height, width)
            source = as_strided(flat[int(starts[chosen[lo]]):], whole,
                                tuple(s * flat.itemsize for s in (*source_steps, width, 1)), writeable=False)
            target = as_strided(out.reshape(-1)[int(row[chosen[lo]] * out.shape[1] + col[chosen[lo]]):], whole,
                                tuple(s * out.itemsize for s in (*target_steps, out.shape[1], 1)))
            scale = factor[chosen[lo:hi]].reshape(*sizes, 1, 1)
            # the grid's sub-grids of at most _PUT_DEVICES devices (or single regions), each multiplied into one
            # buffer in cache and assigned (cast as assignment casts)
            lead = next(d for d in range(len(sizes) + 1) if math.prod(sizes[d:]) * height * width <= _PUT_DEVICES
                        or d == len(sizes))
            part = np.empty(whole[lead:])
            for at in np.ndindex(*sizes[:lead]):
                target[at] = np.multiply(source[at], scale[at], out=part)


def _grids(source: np.ndarray, target: np.ndarray) -> list[tuple[int, int, tuple[int, ...], tuple[int, ...],
                                                                   tuple[int, ...]]] | None:
    """Regions (their first devices `source` in the buffer and `target` in the output, in read order) as runs
    lo .. hi that are each a grid: region lo + i (i in C order over `sizes`) at source[lo] + i . source_steps
    and target[lo] + i . target_steps, found greedily (the longest grid from each run's first region on), or
    None where that takes more than one run per `_GRID_REGIONS` regions (no grid to speak of)."""
    n, runs, lo = len(source), [], 0
    while lo < n:
        sizes: list[int] = []
        source_steps: list[int] = []
        target_steps: list[int] = []
        size = 1  # regions in the grid so far: `sizes`' product
        while lo + size < n:
            most = (n - lo) // size  # blocks of `size` regions from lo, each a copy of the first moved by a step
            step_s, step_t = int(source[lo + size] - source[lo]), int(target[lo + size] - target[lo])
            count = min(most, 16)  # blocks looked at, doubled while all are copies: work in proportion to the
            while True:  # grid found, not to the regions after it (many short grids would cost n^2 otherwise)
                moved_s = source[lo:lo + count * size].reshape(count, size) - source[lo:lo + size]
                moved_t = target[lo:lo + count * size].reshape(count, size) - target[lo:lo + size]
                k = np.arange(count)[:, None]
                good = ((moved_s == k * step_s) & (moved_t == k * step_t)).all(axis=1)
                if not good.all() or count == most:
                    break
                count = min(2 * count, most)
            blocks = int(np.argmin(good)) if not good.all() else count
            if blocks < 2:
                break
            sizes.insert(0, blocks)
            source_steps.insert(0, step_s)
            target_steps.insert(0, step_t)
            size *= blocks
        runs.append((lo, lo + size, tuple(sizes), tuple(source_steps), tuple(target_steps)))
        lo += size
        if len(runs) * _GRID_REGIONS > n:
            return None
    return runs


_GRID_REGIONS = 16
"""`put_regions` writes regions of one shape grid by grid where their grids hold this many regions on average, else
in parts (`_put_in_parts`)."""


def _put_in_parts(out: np.ndarray, row: np.ndarray, col: np.ndarray, flat: np.ndarray, starts: np.ndarray,
                  factor: np.ndarray, height: int, width: int) -> None:
    """`put_regions` of regions of one shape (each from flat[starts[i]], to out[row[i], col[i]]), in parts of about
    _PUT_DEVICES devices, each part's products in one buffer that stays in cache: no temporary of every device,
    and no gathered copy of the regions."""
    size = height * width
    blocks = sliding_window_view(out, (height, width), writeable=True)
    step = max(1, _PUT_DEVICES // size)
    part = np.empty((min(step, len(starts)), height, width))
    for lo in range(0, len(starts), step):
        some = starts[lo:lo + step]
        block = sliding_window_view(flat, size)[some].reshape(-1, height, width)
        blocks[row[lo:lo + step], col[lo:lo + step]] = np.multiply(block, factor[lo:lo + step, None, None],
                                                                   out=part[:len(some)])


_AT_ONCE = 1 << 18
"""Devices of one shape that `put_regions` multiplies in one temporary and places in one assignment (2 MiB of
float64 products); above it, grid by grid or in parts, whose buffers stay in cache (at 25 x 25, k = 6, 1.4
million devices, 1.6 times faster; below it, as fast as one assignment)."""
_PUT_DEVICES = 1 << 16
"""Devices `_put_in_parts` multiplies and places at once (512 KiB of float64 products, in cache): measured on
25 x 25 arrays, k = 6, 2^14 to 2^17 alike, 2^19 slower than one product of every device at once."""


def scatter(out: np.ndarray, index: np.ndarray, values: np.ndarray, unique: bool) -> None:
    """out[index] = values, where an index that repeats (`unique` False) gets its last value, as assigning one
    value after the other leaves it (numpy does not promise an order for repeated indices)."""
    if not unique:
        keep = len(index) - 1 - np.unique(index[::-1], return_index=True)[1]
        index, values = index[keep], values[keep]
    out[index] = values


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (one, found without sorting, when all are equal)."""
    if len(values) and values.min() == values.max():
        return values[:1]
    return np.unique(values)
