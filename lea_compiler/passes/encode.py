"""encode: the levels each placed copy is actually programmed to, given the chip's stuck devices.

After placement every device of every copy is known: a stuck device cannot
be programmed and reads its stuck conductance; a healthy one is programmed to
a level. `simple` programs every healthy device to its target. `rme`
(reduced mapping error) re-chooses the healthy partner of a stuck device so
that the pair's difference comes as close as the levels allow to the target
difference d = T+ - T-:

    G+ stuck at g:   G- = the level nearest to g - d
    G- stuck at g:   G+ = the level nearest to g + d

With stuck conductances far outside the levels (the seed paper's chip) the
partner can only limit the damage, by going to the extreme level; with
stuck values inside the range it cancels the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.errors import CompileError
from lea_compiler.ir import Graph
from lea_compiler.passes.ensemble import Ensemble
from lea_compiler.passes.place import Placed
from lea_compiler.passes.quantize import QuantizedLayer
from lea_compiler.passes.tile import Tiling
from lea_compiler.placement import Region


@dataclass(frozen=True, eq=False)
class EncodedCopy:
    """One copy of one block: levels to program (-1 = stuck, not programmed) and expected conductances."""

    block: int
    copy: int
    pos_levels: np.ndarray  # (rows, cols) int8
    neg_levels: np.ndarray
    pos_uS: np.ndarray  # (rows, cols) float64: the level's conductance, or the stuck value
    neg_uS: np.ndarray

    @property
    def difference_uS(self) -> np.ndarray:
        return self.pos_uS - self.neg_uS


@dataclass(frozen=True, eq=False)
class Encoded:
    """Fact on an MVM: every copy's programmed levels, block-major then copy."""

    copies: tuple[EncodedCopy, ...]

    def get(self, block: int, copy: int) -> EncodedCopy:
        return self._by_key[(block, copy)]

    @cached_property
    def _by_key(self) -> dict[tuple[int, int], EncodedCopy]:
        return {(c.block, c.copy): c for c in self.copies}


class StuckMaps:
    """Per-array stuck maps of a chip, computed once, sliced per region."""

    def __init__(self, chip: Chip) -> None:
        self.chip = chip
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def region(self, region: Region, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(state int8, stuck conductance uS with NaN where healthy) under a region."""
        if region.array not in self._maps:
            self._maps[region.array] = self.chip.stuck_map(region.array)
        state, g = self._maps[region.array]
        rows = slice(region.row, region.row + shape[0])
        cols = slice(region.col, region.col + shape[1])
        return state[rows, cols], g[rows, cols]


def nearest_level(levels: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Index of the level nearest to each target (levels ascending)."""
    hi = np.clip(np.searchsorted(levels, target), 1, len(levels) - 1)
    lo = hi - 1
    return np.where(np.abs(target - levels[lo]) <= np.abs(levels[hi] - target), lo, hi)


def encode_copy(
    levels: np.ndarray,
    target_pos: np.ndarray,
    target_neg: np.ndarray,
    stuck_pos: tuple[np.ndarray, np.ndarray],
    stuck_neg: tuple[np.ndarray, np.ndarray],
    encoding: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Programmed levels and expected conductances of one copy (see the module docstring)."""
    state_p, g_p = stuck_pos
    state_n, g_n = stuck_neg
    bad_p, bad_n = state_p != 0, state_n != 0
    pos = target_pos.astype(np.int8).copy()
    neg = target_neg.astype(np.int8).copy()
    if encoding == "rme":
        d = levels[target_pos] - levels[target_neg]
        fix_n = bad_p & ~bad_n
        fix_p = bad_n & ~bad_p
        pos = np.where(fix_p, nearest_level(levels, np.nan_to_num(g_n) + d), pos).astype(np.int8)
        neg = np.where(fix_n, nearest_level(levels, np.nan_to_num(g_p) - d), neg).astype(np.int8)
    pos_uS = np.where(bad_p, g_p, levels[pos])
    neg_uS = np.where(bad_n, g_n, levels[neg])
    pos = np.where(bad_p, -1, pos).astype(np.int8)
    neg = np.where(bad_n, -1, neg).astype(np.int8)
    return pos, neg, pos_uS, neg_uS


@dataclass(frozen=True)
class Encode:
    """The encode pass (see the module docstring)."""

    chip: Chip
    name: str = "encode"

    def run(self, graph: Graph) -> Graph:
        maps = StuckMaps(self.chip)
        for node in graph.nodes_of("MVM"):
            quantized, tiling = node.fact(QuantizedLayer), node.fact(Tiling)
            ensemble, placed = node.fact(Ensemble), node.fact(Placed)
            if quantized is None or tiling is None or ensemble is None or placed is None:
                raise CompileError(f"encode needs placed layers; run place first ({node.describe()})")
            levels = np.asarray(quantized.levels_uS, dtype=np.float64)
            copies = []
            for block in tiling.blocks:
                rows = slice(block.row_start, block.row_stop)
                cols = slice(block.col_start, block.col_stop)
                tp, tn = quantized.pos[rows, cols], quantized.neg[rows, cols]
                for copy in range(ensemble.alpha):
                    stuck_p = maps.region(placed.region(block.index, "+", copy), block.shape)
                    stuck_n = maps.region(placed.region(block.index, "-", copy), block.shape)
                    pos, neg, pos_uS, neg_uS = encode_copy(levels, tp, tn, stuck_p, stuck_n, quantized.encoding)
                    copies.append(EncodedCopy(block.index, copy, pos, neg, pos_uS, neg_uS))
            node.set_fact(Encoded(tuple(copies)))
        return graph
