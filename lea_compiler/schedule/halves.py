"""A Program's copy halves laid end to end and placed on its chip's arrays: the one place where they are gathered.

Both the Program checks (`program.checks`, whether every half fits) and lowering (`lower.prepare`, which lays
the halves out for the schedule) need every copy half's region, shape and levels as vectors, the layout of the
arrays they use, and which of the chip's devices in them are stuck. `lay_out_halves` finds the first three once
for all halves (a 25 x 25-array Program has thousands; a loaded or compiled one's levels taken whole from each
layer's `LevelsPack`), refusing what an unchecked Program could get wrong, and `Halves.stuck` the last; the
checks' `checked_halves` hands its `Halves` on to lowering (`prepare(check=True)`), which then does not lay the
halves out again.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.geometry import Region, region_bounds
from lea_compiler.program.types import CopyHalf, Layer
from lea_compiler.schedule.layout import Layout, regions_overlap, stuck_in_regions


@dataclass(frozen=True, eq=False)
class Halves:
    """Every copy half of some blocks, block by block, copy by copy, G+ then G-: where each lies and its levels,
    half after half (half i's devices are `values[bounds[i]:bounds[i + 1]]`, row by row)."""

    chip: Chip
    halves: list[CopyHalf]
    array: np.ndarray  # each half's array id (int64)
    row: np.ndarray  # its first row and column in that array (int64)
    col: np.ndarray
    shapes: np.ndarray  # (halves, 2): each half's rows and cols (int64)
    bounds: np.ndarray  # (halves + 1,) where each half's levels start in `values`, and the end
    values: np.ndarray  # every half's levels laid end to end
    layout: Layout  # the arrays the halves use, by ascending id

    @property
    def rows(self) -> np.ndarray:
        return self.shapes[:, 0]

    @property
    def cols(self) -> np.ndarray:
        return self.shapes[:, 1]

    def overlap(self) -> bool:
        """Whether two halves share a device (`layout.regions_overlap`)."""
        return regions_overlap(self.layout, self.array, self.row, self.col, self.rows, self.cols)

    @cached_property
    def stuck(self) -> tuple[np.ndarray, np.ndarray]:
        """The chip's stuck devices in the halves (`layout.stuck_in_regions`): where each is in `values`
        (ascending) and its stuck conductance, found once (the checks and lowering both ask)."""
        return stuck_in_regions(self.chip, self.array, self.row, self.col, self.rows, self.cols)

    def stuck_marked(self) -> bool:
        """Whether the halves' levels are -1 (stuck, not programmed) exactly where the chip's device is stuck."""
        return bool(np.array_equal(np.flatnonzero(self.values == -1), self.stuck[0]))


def lay_out_halves(chip: Chip, layers: Sequence[Layer]) -> Halves:
    """The copy halves of `layers` (in order: layer by layer, block by block, copy by copy, G+ then G-) on `chip`.

    Their levels are taken whole from each layer's `LevelsPack` where every layer has one that its halves still
    hold (a loaded or compiled Program), and else gathered half by half.

    Raises:
        InvalidInputError: a half's levels are not a matrix of integers, its region is not three integers, is on
            an array the chip lacks or does not lie inside its array (what the checks refuse, for an unchecked
            Program)."""
    blocks = [block for layer in layers for block in layer.blocks]
    halves = [half for block in blocks for copy in block.copies for half in (copy.pos, copy.neg)]
    packed = _packed_levels(layers, halves)
    if packed is not None:
        values, shapes = packed
    else:
        levels = [np.asarray(half.levels) for half in halves]
        if any(own.ndim != 2 for own in levels):
            raise InvalidInputError("a copy half's levels are not a matrix (check the Program with `leac show`)")
        shapes = np.fromiter(chain.from_iterable([own.shape for own in levels]), dtype=np.int64,
                             count=2 * len(levels)).reshape(-1, 2)
        values = np.concatenate([own.ravel() for own in levels]) if halves else np.zeros(0, dtype=np.int8)
    if values.dtype.kind not in "iu":  # float levels would index the conductance tables (a bare numpy error)
        raise InvalidInputError(f"a copy half's levels are not integers but {values.dtype} (check the Program with "
                                "`leac show`)")
    regions = [half.region for half in halves]
    # a list per field: faster than a tuple per region
    fields = np.array([[region.array for region in regions], [region.row for region in regions],
                       [region.col for region in regions]]).reshape(3, -1)
    if not halves:
        fields = fields.astype(np.int64)
    if fields.dtype.kind not in "iu":  # not round 34.5 to 34, nor wrap a number past int64
        fields = _exact_fields(regions)
    array, row, col = fields.astype(np.int64, copy=False)
    bounds = region_bounds(shapes[:, 0], shapes[:, 1])
    ids = np.unique(array)
    try:
        used = chip.array_shapes(ids)
    except UsageError as exc:
        raise InvalidInputError(f"a copy half's region is off the chip: {exc} (check the Program with "
                                "`leac show`)") from None
    layout = Layout.of_arrays(ids, used)
    layout.placed(array, row, col, shapes[:, 0], shapes[:, 1])  # every half inside its array (or an error)
    return Halves(chip, halves, array, row, col, shapes, bounds, values, layout)


def _exact_fields(regions: list[Region]) -> np.ndarray:
    """The regions' array, row and col as (3, halves) int64 where numpy made them floats: integers of mixed
    types (np.uint64 beside Python ints, which numpy promotes to float64), each taken as the integer it is.

    Raises:
        InvalidInputError: a field that is not an integer (34.5, or a float 34.0), or one past int64."""
    try:
        return np.array([[operator.index(getattr(region, name)) for region in regions]
                         for name in ("array", "row", "col")], dtype=np.int64).reshape(3, -1)
    except (TypeError, OverflowError):
        raise InvalidInputError("a copy half's region is not three integers (check the Program with `leac show`)"
                                ) from None


def _packed_levels(layers: Sequence[Layer], halves: list[CopyHalf]) -> tuple[np.ndarray, np.ndarray] | None:
    """The halves' levels laid end to end and their shapes, from the layers' `LevelsPack`s (a copy of them): None
    unless every layer has one that its halves still hold (`LevelsPack.values_of`)."""
    packs = [layer.levels_pack for layer in layers]
    if not halves or any(pack is None for pack in packs):
        return None
    values, shapes = [], []
    at = 0
    for pack in packs:
        assert pack is not None
        count = len(pack.levels)
        if pack.values_of([half.levels for half in halves[at:at + count]]) is None:
            return None
        if count:  # (an empty one's dtype would promote the others')
            values.append(pack.values)
            shapes.append(pack.shapes)
        at += count
    return (np.concatenate(values), np.concatenate(shapes)) if at == len(halves) else None
