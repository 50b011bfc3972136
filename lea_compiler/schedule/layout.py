"""Many arrays' devices as one flat buffer, and many regions of them at once.

A schedule on 25 x 25 arrays has thousands of regions, one per copy half; going through them one by one in
Python (a slice, a copy, a sum each) costs more than the crossbar products of a thousand samples. A `Layout`
puts the arrays end to end, each flattened row by row, so that every region of every array is a set of flat
indices (`Layout.windows`), and lowering, the device programming and the ADC ranges gather all the regions of
a layer, or of a schedule, in one numpy call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.errors import InvalidInputError
from lea_compiler.geometry import find_sorted, ranges, region_bounds, region_starts

if TYPE_CHECKING:  # the records import the Program checks, which import this module
    from lea_compiler.schedule.records import Read

RUN_DEVICES = 2048
"""`Layout.windows` writes runs of regions of one kind in place when they average at least this many devices:
a run's Python (a few microseconds) then costs less than the passes the scatter spends on its devices."""


@dataclass(frozen=True, eq=False)
class Layout:
    """Arrays laid end to end in one flat buffer, each row by row: array `a` is
    `flat[offset[a]:offset[a] + rows * cols]`, in the order of `ids`.

    Held as vectors (`array_ids`, `shapes`), from which the per-array mappings are made when first asked for
    (lowering lays out thousands of 25 x 25 arrays and looks them up with numpy, not one by one)."""

    array_ids: np.ndarray  # int64: the arrays' ids, in layout order
    shapes: np.ndarray  # (arrays, 2) int64: each one's rows and cols

    @classmethod
    def of(cls, shapes: Mapping[int, tuple[int, int]]) -> Layout:
        """The layout of arrays of `shapes` (id -> (rows, cols)), in the mapping's order."""
        count = len(shapes)
        return cls.of_arrays(np.fromiter(shapes, dtype=np.int64, count=count),
                             np.fromiter(chain.from_iterable(shapes.values()), dtype=np.int64,
                                         count=2 * count).reshape(-1, 2))

    @classmethod
    def of_arrays(cls, array_ids: np.ndarray, shapes: np.ndarray) -> Layout:
        """The layout of the arrays `array_ids` (distinct) of `shapes` ((arrays, 2): rows, cols), in that order."""
        return cls(np.asarray(array_ids, dtype=np.int64).reshape(-1),
                   np.asarray(shapes, dtype=np.int64).reshape(-1, 2))

    @cached_property
    def starts(self) -> np.ndarray:
        """Where each array starts in the flat buffer, in layout order, and the end (arrays + 1,)."""
        return region_bounds(self.shapes[:, 0], self.shapes[:, 1])

    @cached_property
    def ids(self) -> tuple[int, ...]:
        """The arrays' ids, in layout order."""
        return tuple(self.array_ids.tolist())

    @cached_property
    def offset(self) -> dict[int, int]:
        """Each array's start in the flat buffer, by id."""
        return dict(zip(self.ids, self.starts[:-1].tolist(), strict=True))

    @cached_property
    def shape(self) -> dict[int, tuple[int, int]]:
        """Each array's (rows, cols), by id."""
        return dict(zip(self.ids, map(tuple, self.shapes.tolist()), strict=True))

    @property
    def size(self) -> int:
        """Devices in the flat buffer: the arrays' together."""
        return int(self.starts[-1])

    def view(self, flat: np.ndarray, array_id: int) -> np.ndarray:
        """Array `array_id`'s part of a flat buffer, as a (rows, cols) view."""
        rows, cols = self.shape[array_id]
        at = self.offset[array_id]
        return flat[at:at + rows * cols].reshape(rows, cols)

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        """The arrays' ids in ascending order, and in that order each one's (offset, rows, cols)."""
        order = np.argsort(self.array_ids, kind="stable")  # lowering's come ascending (`np.unique`)
        return self.array_ids[order], np.column_stack([self.starts[:-1], self.shapes])[order]

    @property
    def total_rows(self) -> int:
        """The arrays' rows, summed (one numpy sum over `_table`, made once)."""
        return int(np.sum(self._table[1][:, 1]))

    def _placed(self, array: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each of the arrays `array`'s offset, rows and cols (one vectorised look-up, not a dict's per region).

        Raises:
            KeyError: an array the layout does not have (as `offset[a]` would)."""
        ids, places = self._table
        array = np.asarray(array, dtype=np.int64)
        at, known = find_sorted(ids, array)
        if not known.all():
            raise KeyError(int(array[np.argmin(known)]))
        offset, rows, cols = places[at].T
        return offset, rows, cols

    def placed(self, array: Sequence[int] | np.ndarray, row: np.ndarray, col: np.ndarray, rows: np.ndarray,
               cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each region's array's offset, rows and cols, the regions checked to lie inside their arrays.

        Raises:
            KeyError: an array the layout does not have.
            InvalidInputError: a region does not lie inside its array (a checked Program's or board file's do;
                an unchecked one's would otherwise read into the next rows or arrays)."""
        offset, height, width = self._placed(array)
        # row > height - rows, not row + rows > height: the sum would wrap for a row near 2**63
        outside = (row < 0) | (col < 0) | (rows < 1) | (cols < 1) | (row > height - rows) | (col > width - cols)
        if outside.any():
            i = int(np.argmax(outside))
            raise InvalidInputError(f"a region of {rows[i]} x {cols[i]} devices at row {row[i]}, column {col[i]} of "
                                    f"array {np.asarray(array)[i]} does not lie inside that {height[i]} x {width[i]} "
                                    "array")
        return offset, height, width

    def devices_at(self, array: np.ndarray, row: np.ndarray, col: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   index: np.ndarray, placed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """`windows(array, row, col, rows, cols)[index]`: where the devices `index` of the regions laid end to end
        are in the flat buffer, found for those devices only (a few skipped ones, not every device); `placed`:
        the regions' `placed(...)`, if the caller has it."""
        index = np.asarray(index, dtype=np.int64)
        row, col = np.asarray(row, dtype=np.int64), np.asarray(col, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        ends = np.cumsum(np.asarray(rows, dtype=np.int64) * cols)
        offset, _, width = placed if placed is not None else self._placed(array)
        first = offset + row * width + col  # each region's first device
        region = np.searchsorted(ends, index, side="right")
        r, c = np.divmod(index - region_starts(rows, cols)[region], cols[region])
        return first[region] + r * width[region] + c

    def windows(self, array: Sequence[int] | np.ndarray, row: np.ndarray, col: np.ndarray, rows: np.ndarray,
                cols: np.ndarray) -> np.ndarray:
        """The flat indices of the regions (array[i], row[i], col[i], rows[i] x cols[i]), region after region,
        each row by row: `flat[windows(...)]` is every region's devices, as the per-region slices
        `view(flat, array[i])[row[i]:row[i] + rows[i], col[i]:col[i] + cols[i]].ravel()` concatenated.

        Regions of one (rows, cols, array width) kind that follow each other (a block's copy halves, and often
        many blocks in a row) are one run, written in place by one numpy call; with more runs than that pays for
        (`RUN_DEVICES`), one numpy pass per kind, scattered into place. Either way not a pass per region.

        Raises:
            InvalidInputError: a region does not lie inside its array (a checked Program's or board file's do;
                an unchecked one's would otherwise read into the next rows or arrays)."""
        n = len(array)
        row, col = np.asarray(row, dtype=np.int64), np.asarray(col, dtype=np.int64)
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        offset, _, width = self.placed(array, row, col, rows, cols)
        base = offset + row * width + col  # each region's first device
        # regions of one (rows, cols, width) kind share their devices' steps from the first
        span = int(max(rows.max(), cols.max(), width.max())) + 1
        kind = (rows * span + cols) * span + width

        def local(i: int) -> np.ndarray:  # a region's devices relative to its first, row by row
            height, wide, stride = int(rows[i]), int(cols[i]), int(width[i])
            return (np.arange(height, dtype=np.int64)[:, None] * stride + np.arange(wide, dtype=np.int64)).ravel()

        sizes = rows * cols
        total = int(sizes.sum())
        out = np.empty(total, dtype=np.int64)
        runs = np.concatenate([[0], np.flatnonzero(kind[1:] != kind[:-1]) + 1, [n]]).tolist()
        if len(runs) - 1 <= 1 + total // RUN_DEVICES:  # each run's devices in place: one pass, no scatter
            ends = np.concatenate([[0], np.cumsum(sizes)]).tolist()
            for lo, hi in zip(runs[:-1], runs[1:], strict=True):
                steps = local(lo)
                np.add(base[lo:hi, None], steps, out=out[ends[lo]:ends[hi]].reshape(hi - lo, steps.size))
            return out
        kinds, first, which = np.unique(kind, return_index=True, return_inverse=True)
        starts = region_starts(rows, cols)
        for index in range(len(kinds)):
            members = np.flatnonzero(which.ravel() == index)
            steps = local(int(first[index]))
            out[(starts[members][:, None] + np.arange(steps.size)).ravel()] = (base[members][:, None] + steps).ravel()
        return out

    def read_windows(self, reads: Sequence[Read]) -> np.ndarray:
        """`windows` of the reads' regions, in read order."""
        fields = np.array([(read.row, read.col, read.rows, read.cols) for read in reads],
                          dtype=np.int64).reshape(-1, 4)
        return self.windows([read.array for read in reads], *fields.T)


def region_rows(heights: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of regions heights[i] x widths[i] laid end to end, each row by row, in a flat buffer: its
    region, and where it starts in the buffer."""
    region = np.repeat(np.arange(len(heights)), heights)
    width = widths[region]
    return region, np.cumsum(width) - width


PAIRS_PER_DEVICE = 8
"""`stuck_in_regions` tests each region against the stuck devices in its rows of its array; when that makes more
than this many tests per stuck device (many narrow regions side by side), it maps the arrays' devices instead."""


def stuck_in_regions(chip: Chip, array: np.ndarray, row: np.ndarray, col: np.ndarray, rows: np.ndarray,
                     cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chip's stuck devices in the regions (array[i], row[i], col[i], rows[i] x cols[i]) laid end to end, each
    row by row (`Layout.windows`' order): `(position, g_uS)`, where each stuck device is in that buffer
    (ascending) and its stuck conductance; a device in two regions is there twice.

    What `flat[windows(...)]` of the chip's `stuck_flat` gives at the devices whose state is not 0, without a
    map of every device of the arrays: each region is tested against the stuck devices in its rows of its array
    (`Chip.stuck_devices`, row by row, so those are one slice of them), region after region, so the work follows
    the defects and the regions, not the arrays' size, and the positions come out in order.

    Raises:
        UsageError: the chip has no such array (`Chip.array`)."""
    array, row, col = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (array, row, col))
    rows, cols = np.asarray(rows, dtype=np.int64).reshape(-1), np.asarray(cols, dtype=np.int64).reshape(-1)
    ids, region_array = np.unique(array, return_inverse=True)
    region_array = region_array.reshape(-1)
    which, stuck_row, stuck_col, _, g = chip.stuck_devices(ids)
    # the stuck devices by (array, row), ascending: each region's rows are the slice [lo, hi) of them
    span = int(max(stuck_row.max(initial=0), (row + rows).max(initial=0))) + 1
    key = which * span + stuck_row
    lo = np.searchsorted(key, region_array * span + row)
    hi = np.searchsorted(key, region_array * span + row + rows)
    count = hi - lo
    tests = int(count.sum())
    if tests > PAIRS_PER_DEVICE * max(which.size, 1):
        return _stuck_in_regions_mapped(chip, ids, array, row, col, rows, cols)
    region = np.repeat(np.arange(array.size), count)  # region after region, each its devices row by row
    device = ranges(lo, count)
    c = stuck_col[device] - col[region]
    # one index for the three (a mask, about half true where regions sit side by side, is slow to apply thrice)
    inside = np.flatnonzero((c >= 0) & (c < cols[region]))
    region, device, c = region[inside], device[inside], c[inside]
    position = region_starts(rows, cols)[region] + (stuck_row[device] - row[region]) * cols[region] + c
    return position, g[device]


def _stuck_in_regions_mapped(chip: Chip, ids: np.ndarray, array: np.ndarray, row: np.ndarray, col: np.ndarray,
                             rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`stuck_in_regions` through a map of every device of the regions' arrays (`Chip.stuck_flat`)."""
    layout = Layout.of_arrays(ids, chip.array_shapes(ids))
    state, g = chip.stuck_flat(list(layout.ids))
    at = layout.windows(array, row, col, rows, cols)
    position = np.flatnonzero(state[at] != 0)
    return position, g[at[position]]


OVERLAP_PAIRS = 8
"""`regions_overlap` tests each region against the later ones of its array that start in its rows; with more than
this many tests per region (many narrow regions side by side) it marks every device instead."""


def regions_overlap(layout: Layout, array: np.ndarray, row: np.ndarray, col: np.ndarray, rows: np.ndarray,
                    cols: np.ndarray) -> bool:
    """Whether two of the regions (array[i], row[i], col[i], rows[i] x cols[i]), each inside its array of
    `layout`, share a device: the rectangles of each array tested pairwise, those sorted by their first row so
    that only a region's later ones that start in its rows are tested, not a map of the arrays' devices."""
    array, row, col = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (array, row, col))
    rows, cols = np.asarray(rows, dtype=np.int64).reshape(-1), np.asarray(cols, dtype=np.int64).reshape(-1)
    n = array.size
    if n < 2:
        return False
    order = np.lexsort((row, array))
    array, row, col, rows, cols = array[order], row[order], col[order], rows[order], cols[order]
    span = int((row + rows).max()) + 1
    key = array * span + row  # ascending
    later = np.searchsorted(key, array * span + row + rows) - np.arange(n) - 1  # later ones starting in my rows
    count = np.maximum(later, 0)
    tests = int(count.sum())
    if tests > OVERLAP_PAIRS * n:
        covered = np.zeros(layout.size, dtype=bool)
        at = layout.windows(array, row, col, rows, cols)
        covered[at] = True
        return int(np.count_nonzero(covered)) != at.size
    first = np.repeat(np.arange(n), count)
    second = ranges(np.arange(n) + 1, count)  # each region's later ones starting in its rows
    # same array and second starts in first's rows (the search found it): overlap unless the columns are apart
    return bool(np.any((col[second] < col[first] + cols[first]) & (col[first] < col[second] + cols[second])))
