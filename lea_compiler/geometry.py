"""Where a block half sits on the chip: a `Region`, which item occupies each device (`Occupancy`, so whether
two regions share one), and the names of a differential pair's halves (`POLARITIES`).

The placement solver (lea_compiler/placement/) produces regions, the passes
record them and the Program (lea_compiler/program/) holds them; they all
import the type from here, so none of them pulls in another's dependencies
(the solver's OR-Tools in particular).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

POLARITIES = ("pos", "neg")
"""The halves of a differential pair, G+ then G-: spelled so in the passes, the Program and the board file."""


@dataclass(frozen=True)
class Region:
    """Where an item goes: rows [row, row + rows) and cols [col, col + cols) of array `array`."""

    array: int
    row: int
    col: int


class Occupancy:
    """Which item occupies each device of each array (-1: none): the one test of whether regions overlap, used
    by the Program checks and by the lowering that lays a Program's copy halves out on the chip."""

    def __init__(self, sizes: Mapping[int, tuple[int, int]]) -> None:
        self.owner = {array: np.full(size, -1, dtype=np.int64) for array, size in sizes.items()}

    def inside(self, region: Region, shape: tuple[int, int]) -> bool:
        """Whether a block of `shape` (rows, cols) at `region` lies inside its array."""
        rows, cols = self.owner[region.array].shape
        return region.row + shape[0] <= rows and region.col + shape[1] <= cols

    def take(self, index: int, region: Region, shape: tuple[int, int]) -> int | None:
        """Mark the devices of a block of `shape` at `region` (inside its array) as item `index`'s, or, if an
        item already holds one of them, mark nothing and return the first such item."""
        window = self.owner[region.array][region.row:region.row + shape[0], region.col:region.col + shape[1]]
        held = window[window >= 0]
        if held.size:
            return int(held[0])
        window[...] = index
        return None


def region_bounds(heights: np.ndarray, widths: np.ndarray | int) -> np.ndarray:
    """Where each of the regions of `heights` x `widths` starts in their flat buffer (each after the one before,
    row by row; with `widths` 1, where each run of rows starts), and the buffer's end: (regions + 1,) int64. The
    one layout of regions laid end to end, for the simulator's buffers, the chip's stuck maps, the arrays of a
    schedule and the Program's copy halves."""
    sizes = np.asarray(heights, dtype=np.int64) * np.asarray(widths, dtype=np.int64)
    bounds = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    return bounds


def region_starts(heights: np.ndarray, widths: np.ndarray | int) -> np.ndarray:
    """Where each of the regions of `heights` x `widths` starts in their flat buffer (`region_bounds` without
    the end)."""
    return region_bounds(heights, widths)[:-1]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """start, start + 1, ..., start + length - 1 of each (start, length) pair, one pair after the other."""
    ends = np.cumsum(lengths, dtype=np.int64)
    return np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) + np.repeat(starts - (ends - lengths),
                                                                                     lengths)


def find_sorted(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `values` is among the ascending `keys`: (at, found), `at` an index into `keys` (clipped to
    its last, 0 when `keys` is empty) that holds the value where `found` is True. The one sorted look-up of ids,
    keys and devices (arrays by id, stuck devices by position, blocks by index)."""
    values = np.asarray(values)
    if not len(keys):
        return np.zeros(values.shape, dtype=np.intp), np.zeros(values.shape, dtype=bool)
    at = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return at, keys[at] == values
