"""Where a block half sits on the chip: a `Region`, whether two regions share a device, and the names of a
differential pair's halves (`POLARITIES`).

The placement solver (lea_compiler/placement/) produces regions, the passes
record them and the Program (lea_compiler/program/) holds them; they all
import the type from here, so none of them pulls in another's dependencies
(the solver's OR-Tools in particular).
"""

from __future__ import annotations

from dataclasses import dataclass

POLARITIES = ("pos", "neg")
"""The halves of a differential pair, G+ then G-: spelled so in the passes, the Program and the board file."""


@dataclass(frozen=True)
class Region:
    """Where an item goes: rows [row, row + rows) and cols [col, col + cols) of array `array`."""

    array: int
    row: int
    col: int


def regions_overlap(a: Region, a_shape: tuple[int, ...], b: Region, b_shape: tuple[int, ...]) -> bool:
    """Whether a block of `a_shape` (rows, cols) at `a` and one of `b_shape` at `b` share a device."""
    (ar, ac), (br, bc) = a_shape, b_shape
    return a.array == b.array and a.row < b.row + br and b.row < a.row + ar and a.col < b.col + bc \
        and b.col < a.col + ac
