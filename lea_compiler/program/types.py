"""A crossbar layer as mapped onto the chip: `Layer`, its `ProgramBlock`s and their copies.

These are the parts of a Program (lea_compiler/program/core.py) that say
where every copy of every block sits and what it is programmed to;
`represented_matrix` is the matrix a layer then holds on its chip.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.geometry import Region


@dataclass(frozen=True, eq=False)
class CopyHalf:
    """One copy of one half (G+ or G-) of a block: where it sits and what is programmed."""

    region: Region
    levels: np.ndarray  # (rows, cols) level index (chip.level_index_dtype); -1: stuck device, not programmed
    cost_uS: float  # mapping error at this region (stuck devices vs targets)
    programmed_uS: np.ndarray | None = None  # (rows, cols) float64: what each device holds, once programmed


@dataclass(frozen=True, eq=False)
class BlockCopy:
    copy: int
    pos: CopyHalf
    neg: CopyHalf


@dataclass(frozen=True, eq=False)
class ProgramBlock:
    """A block of a layer's matrix, its targets, its alpha copies and the beta-of-alpha mask."""

    index: int
    row_block: int
    col_block: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    target_pos: np.ndarray  # (rows, cols) level index (chip.level_index_dtype)
    target_neg: np.ndarray
    copies: tuple[BlockCopy, ...]
    selection: np.ndarray  # (alpha, cols) bool: the copies each column averages
    adc_full_scale_uA: float | None = None  # ADC range, when calibrated at compile time

    @property
    def shape(self) -> tuple[int, int]:
        return (self.row_stop - self.row_start, self.col_stop - self.col_start)


@dataclass(frozen=True, eq=False)
class LevelsPack:
    """A layer's copy halves' levels laid end to end in one buffer (block by block, copy by copy, G+ then G-, each
    row by row), with the arrays the halves were given: each a view of `values` at its place, so the two hold the
    same values for as long as the halves hold those very arrays (`values_of`), written in place or not (their
    shapes are the ones they were made with: `shapes`). Loading a Program (whose file packs them so) and compiling
    one make it; lowering and the checks then take the buffer whole instead of raveling thousands of small
    arrays. A Program built otherwise has none, and is laid out half by half."""

    values: np.ndarray  # 1-D: every half's levels, half after half
    levels: tuple[np.ndarray, ...]  # the halves' arrays, in order: views of `values`
    shapes: np.ndarray  # (halves, 2) int64: their rows and cols

    @classmethod
    def of(cls, parts: Sequence[np.ndarray]) -> LevelsPack:
        """Matrices (each a copy half's levels, in order) copied into one buffer, and their views of it, which the
        halves are to be given (the compiler's `passes.lower`)."""
        shapes = np.array([np.shape(part) for part in parts], dtype=np.int64).reshape(-1, 2)
        values = np.concatenate([np.asarray(part).ravel() for part in parts]) if parts else np.zeros(0, np.int8)
        return cls.viewing(values, shapes)

    @classmethod
    def viewing(cls, values: np.ndarray, shapes: np.ndarray) -> LevelsPack:
        """The views of `values` (1-D) as matrices of `shapes` ((halves, 2)) laid end to end, which the halves are
        to be given.

        Raises:
            ValueError: `values` does not hold exactly that many values."""
        shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        ends = np.cumsum(shapes[:, 0] * shapes[:, 1]).tolist()
        if (ends[-1] if ends else 0) != values.size:
            raise ValueError(f"a pack of {values.size} levels for halves of {ends[-1] if ends else 0}")
        views = tuple(values[end - rows * cols:end].reshape(rows, cols)
                      for end, (rows, cols) in zip(ends, shapes.tolist(), strict=True))
        return cls(values, views, shapes)

    def __reduce__(self) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
        # pickled (a Program sent to a worker), the halves' arrays come back as arrays of their own, no longer views
        # of `values`: the copy is made with views of its own, which no half holds, so it is not taken (`values_of`)
        return (LevelsPack.viewing, (self.values, self.shapes))

    def values_of(self, levels: Sequence[np.ndarray]) -> np.ndarray | None:
        """`values`, if `levels` (the layer's halves' levels, in order) are the very arrays the pack made, so hold
        its values; None if any is not (a half given other levels since)."""
        if len(levels) != len(self.levels) or not all(map(operator.is_, levels, self.levels)):
            return None
        return self.values


@dataclass(frozen=True, eq=False)
class Layer:
    """One crossbar layer (an MVM node of the graph) as mapped onto the chip."""

    name: str
    rows: int  # crossbar matrix rows (inputs, plus one bias row if bias_row)
    cols: int
    bias_row: bool
    encoding: str
    levels_uS: tuple[float, ...]
    scale: np.ndarray  # (cols,) uS of conductance difference per weight unit
    alpha: int
    beta: int
    blocks: tuple[ProgramBlock, ...]
    quantization: dict[str, float]  # rms_error, max_error, relative_rms_error (weight units)
    mapping_error_uS: float  # placement cost: sum over copies of |G_actual - G_target|
    effective_error_uS: float  # after encode and selection: error of the averaged differences
    input_full_scale: float | None = None  # DAC full-scale input |x|, when calibrated at compile time
    column_gain: np.ndarray | None = None  # (cols,) stuck-device compensation (passes/compensate.py), or None
    column_offset: np.ndarray | None = None  # (cols,) weight units, added with the gain
    levels_pack: LevelsPack | None = field(default=None, repr=False)  # the halves' levels in one buffer, when
    # loaded or compiled (`LevelsPack`)

    @property
    def devices(self) -> int:
        """Devices this layer occupies: two halves of every copy of every block."""
        return sum(2 * len(b.copies) * b.shape[0] * b.shape[1] for b in self.blocks)

    @property
    def row_bounds(self) -> list[tuple[int, int]]:
        return sorted({(b.row_start, b.row_stop) for b in self.blocks})

    @property
    def col_bounds(self) -> list[tuple[int, int]]:
        return sorted({(b.col_start, b.col_stop) for b in self.blocks})


def represented_matrix(layer: Layer, chip: Chip, *, programmed: bool = False) -> np.ndarray:
    """The crossbar matrix (rows, cols; weight units) a layer represents on `chip` without noise: per output
    column the mean over its selected copies of G+ - G-, every healthy device at its programmed level and a
    device the Program skipped at its stuck conductance on `chip`, divided by the column's scale (no
    compensation). For `joint` encoding this is what `simulate(..., ideal=True)` computes on the chip compiled
    for. `programmed=True`, for an as-programmed Program: every device at what it holds (`programmed_uS`)."""
    levels = np.asarray(layer.levels_uS, dtype=np.float64)
    out = np.zeros((layer.rows, layer.cols))
    maps: dict[int, np.ndarray] = {}
    for block in layer.blocks:
        rows, cols = block.shape
        diffs = []
        for copy in block.copies:
            g = []
            for half in (copy.pos, copy.neg):
                if programmed and half.programmed_uS is not None:
                    g.append(np.asarray(half.programmed_uS, dtype=np.float64))
                    continue
                region = half.region
                if region.array not in maps:
                    maps[region.array] = chip.stuck_map(region.array)[1]
                stuck = maps[region.array][region.row:region.row + rows, region.col:region.col + cols]
                g.append(np.where(half.levels >= 0, levels[np.maximum(half.levels, 0)], np.nan_to_num(stuck)))
            diffs.append(g[0] - g[1])
        mask = block.selection.astype(np.float64)[:, None, :]
        mean = (np.stack(diffs) * mask).sum(axis=0) / mask.sum(axis=0)
        out[block.row_start:block.row_stop, block.col_start:block.col_stop] = mean
    return out / np.asarray(layer.scale, dtype=np.float64)
