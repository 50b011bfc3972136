"""tile: split every quantized crossbar matrix into blocks that fit the chip's arrays.

A matrix of R x C pairs (rows = inputs, columns = outputs) becomes a grid of
blocks. Each block's G+ half and G- half is one rectangle of devices on one
array (placed separately by `place`). Row blocks see disjoint slices of the
input; their column currents are partial sums that the digital periphery adds
(after the ADC and the per-copy averaging), which the Program records as the
row blocks of each layer. Column blocks produce disjoint slices of the output.

The block shape defaults to the array shape that holds the most devices on the
chip (arrays may differ in size); `rows`/`cols` override it. Splits are
balanced: 30 rows on 25-row arrays become 15 + 15, not 25 + 5, which keeps
blocks equal and leaves room to pack small ones.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from lea_compiler.chip import Chip
from lea_compiler.errors import CompileError, DoesNotFitError
from lea_compiler.ir import Graph
from lea_compiler.passes.quantize import QuantizedLayer


@dataclass(frozen=True)
class Block:
    """One block of a layer's matrix: rows [row_start, row_stop) x cols [col_start, col_stop)."""

    index: int
    row_block: int
    col_block: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.row_stop - self.row_start, self.col_stop - self.col_start)


@dataclass(frozen=True)
class Tiling:
    """Fact on an MVM: how its crossbar matrix is cut into blocks."""

    row_bounds: tuple[tuple[int, int], ...]
    col_bounds: tuple[tuple[int, int], ...]

    @property
    def blocks(self) -> tuple[Block, ...]:
        """Blocks in row-block-major order; `Block.index` is the position here."""
        return tuple(self._iter_blocks())

    def _iter_blocks(self) -> Iterator[Block]:
        index = 0
        for i, (r0, r1) in enumerate(self.row_bounds):
            for j, (c0, c1) in enumerate(self.col_bounds):
                yield Block(index, i, j, r0, r1, c0, c1)
                index += 1

    def describe(self) -> str:
        rows = [b - a for a, b in self.row_bounds]
        cols = [b - a for a, b in self.col_bounds]
        return f"{len(rows)} x {len(cols)} blocks (rows {rows}, cols {cols})"


def balanced_split(size: int, limit: int) -> tuple[tuple[int, int], ...]:
    """[0, size) in the fewest parts of at most `limit`, their sizes differing by at most one."""
    parts = max(1, math.ceil(size / limit))
    base, extra = divmod(size, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return tuple(bounds)


def default_block_shape(chip: Chip) -> tuple[int, int]:
    """The array shape holding the most devices (ties: the larger shape)."""
    devices: Counter[tuple[int, int]] = Counter()
    for array in chip.arrays:
        devices[(array.rows, array.cols)] += array.rows * array.cols
    return max(devices, key=lambda shape: (devices[shape], shape))


@dataclass(frozen=True)
class Tile:
    """The tile pass (see the module docstring)."""

    chip: Chip
    rows: int | None = None
    cols: int | None = None
    name: str = "tile"

    def block_limit(self) -> tuple[int, int]:
        default_rows, default_cols = default_block_shape(self.chip)
        rows = default_rows if self.rows is None else self.rows
        cols = default_cols if self.cols is None else self.cols
        if rows < 1 or cols < 1:
            raise CompileError(f"block shape {rows} x {cols} must be positive")
        if not any(a.rows >= rows and a.cols >= cols for a in self.chip.arrays):
            largest = max(self.chip.arrays, key=lambda a: a.rows * a.cols)
            raise DoesNotFitError(
                f"blocks of {rows} x {cols} fit no array of the chip (largest {largest.rows} x {largest.cols})"
            )
        return rows, cols

    def run(self, graph: Graph) -> Graph:
        limit_rows, limit_cols = self.block_limit()
        for node in graph.nodes_of("MVM"):
            quantized = node.fact(QuantizedLayer)
            if quantized is None:
                raise CompileError(f"tile needs quantized layers; run quantize first ({node.describe()})")
            rows, cols = quantized.shape
            node.set_fact(Tiling(balanced_split(rows, limit_rows), balanced_split(cols, limit_cols)))
        return graph
