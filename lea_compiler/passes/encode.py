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

`joint` encodes the copies a column averages together, so that their mean,
not each copy, approaches the weights. Per block and output column j, let
t_i = W_ij s_j be the unquantized target difference of row i (uS), and
c_1, ..., c_beta the copies the column averages. Copy c_n holds

    D_n = Q_n(n t - S_{n-1}),    S_n = D_1 + ... + D_n,  S_0 = 0,

where Q_n picks, per pair, the reachable difference of copy c_n nearest to
its argument: a pair of `simple`'s (one device at the lowest level; the
`quantize` pass says why not `rme`'s) if both devices are healthy; g - l or
l - g for the nearest level l if one device is stuck at g (the chip file's
conductance); g+ - g- if both are. This is a first-order
sigma-delta across copies: the running error e_n = n t - S_n is the
rounding error of one step, so while the arguments stay within the
reachable range (+-d_max) |e_n| <= step / 2 and the mean S_beta / beta is
within step / (2 beta) of t, about beta times finer than one copy; and with
uniformly spaced differences e_n = wrap(n f) for f = t - Q(t), so the mean
is never further off than one copy (|e_beta| / beta <= |f|). A stuck device
of copy c_n makes e_n large; the copies after it see n' t - S and carry the
correction, up to d_max - |t| each, so

- copies are ordered per column by the number of stuck devices in that
  column, most first (ties: lower copy index), so that healthy copies,
  which can reach any difference, come last and absorb them;
- per pair, if the joint mean ends further from t than the mean of the
  copies encoded independently (each copy its own nearest pair of
  `simple`'s, with `rme`'s partner re-choice for a stuck device), that pair
  keeps the independent encoding; so `joint` is never worse than that on
  the compiled chip, pair by pair, noise aside.

Selection: with beta < alpha, the beta copies of each column are chosen
first, as `select` does, from the independent encodings' errors, then
encoded jointly; the unselected copies keep their independent encoding. The
masks travel on the `Encoded` fact and `select` keeps them. Write noise is
random and is not encoded away; it still averages down as 1/sqrt(beta).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lea_compiler.chip import Chip, level_index_dtype
from lea_compiler.errors import CompileError
from lea_compiler.geometry import Region
from lea_compiler.ir import Graph
from lea_compiler.passes.ensemble import Ensemble
from lea_compiler.passes.place import Placed
from lea_compiler.passes.quantize import PairCode, QuantizedLayer
from lea_compiler.passes.tile import Tiling


@dataclass(frozen=True, eq=False)
class EncodedCopy:
    """One copy of one block: levels to program (-1 = stuck, not programmed) and expected conductances."""

    block: int
    copy: int
    pos_levels: np.ndarray  # (rows, cols) level index (`level_index_dtype`); -1: stuck
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
    masks: tuple[np.ndarray, ...] | None = None  # joint: per block the (alpha, cols) copies encoded together

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
    dtype = level_index_dtype(len(levels))
    pos = target_pos.astype(dtype)
    neg = target_neg.astype(dtype)
    if encoding == "rme":
        d = levels[target_pos] - levels[target_neg]
        fix_n = bad_p & ~bad_n
        fix_p = bad_n & ~bad_p
        pos = np.where(fix_p, nearest_level(levels, np.nan_to_num(g_n) + d), pos).astype(dtype)
        neg = np.where(fix_n, nearest_level(levels, np.nan_to_num(g_p) - d), neg).astype(dtype)
    pos_uS = np.where(bad_p, g_p, levels[pos])
    neg_uS = np.where(bad_n, g_n, levels[neg])
    pos = np.where(bad_p, -1, pos).astype(dtype)
    neg = np.where(bad_n, -1, neg).astype(dtype)
    return pos, neg, pos_uS, neg_uS


def encode_difference(
    levels: np.ndarray,
    code: PairCode,
    target: np.ndarray,
    stuck_pos: tuple[np.ndarray, np.ndarray],
    stuck_neg: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Levels and conductances of one copy whose pairs should hold the differences `target` (float uS):
    the nearest reachable difference of every pair, a stuck device at its stuck conductance."""
    state_p, g_p = stuck_pos
    state_n, g_n = stuck_neg
    bad_p, bad_n = state_p != 0, state_n != 0
    index = code.nearest(target)
    pos = np.where(bad_n & ~bad_p, nearest_level(levels, np.nan_to_num(g_n) + target), code.pos[index])
    neg = np.where(bad_p & ~bad_n, nearest_level(levels, np.nan_to_num(g_p) - target), code.neg[index])
    pos_uS = np.where(bad_p, g_p, levels[pos])
    neg_uS = np.where(bad_n, g_n, levels[neg])
    dtype = level_index_dtype(len(levels))
    return np.where(bad_p, -1, pos).astype(dtype), np.where(bad_n, -1, neg).astype(dtype), pos_uS, neg_uS


def select_columns(errors: np.ndarray, beta: int) -> np.ndarray:
    """Mask of the `beta` smallest errors in each column (stable: lower copy index wins ties)."""
    order = np.argsort(errors, axis=0, kind="stable")[:beta]
    mask = np.zeros(errors.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=0)
    return mask


def encode_joint(
    levels: np.ndarray,
    exact: np.ndarray,
    target_pos: np.ndarray,
    target_neg: np.ndarray,
    stuck: list[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
    beta: int,
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """Joint encoding of one block's copies (see the module docstring).

    Args:
        levels: the device levels (uS, ascending).
        exact: (rows, cols) the unquantized target differences W s (uS).
        target_pos, target_neg: one copy's target level pairs (for the selection and the fallback).
        stuck: per copy, the stuck maps (state, conductance) of its G+ and G- regions.
        beta: copies averaged per column.

    Returns:
        Per copy (levels+, levels-, G+, G-) as `encode_copy`, and the (alpha, cols) mask of averaged copies.
    """
    alpha = len(stuck)
    rows, cols = exact.shape
    independent = [encode_copy(levels, target_pos, target_neg, sp, sn, "rme") for sp, sn in stuck]
    target = levels[target_pos] - levels[target_neg]
    diffs = np.stack([e[2] - e[3] for e in independent])  # (alpha, rows, cols)
    mask = select_columns(np.abs(diffs - target).sum(axis=1), beta) if beta < alpha else np.ones((alpha, cols), bool)
    count = np.stack([((sp[0] != 0) | (sn[0] != 0)).sum(axis=0) for sp, sn in stuck])  # (alpha, cols)
    order = np.argsort(np.where(mask, -count, rows + 1), axis=0, kind="stable")[:beta]  # (beta, cols)
    stacked = [np.stack([s[half][part] for s in stuck]) for half in (0, 1) for part in (0, 1)]
    out = [np.stack(a) for a in zip(*independent, strict=True)]  # 4 arrays (alpha, rows, cols)
    joint = [a.copy() for a in out]
    code = PairCode.build(tuple(float(v) for v in levels), "joint")
    r, c = np.arange(rows)[:, None], np.arange(cols)[None, :]
    total = np.zeros((rows, cols))
    for n in range(beta):
        copy = order[n][None, :]  # (1, cols): this step's copy of every column
        sp, gp, sn, gn = (a[copy, r, c] for a in stacked)
        enc = encode_difference(levels, code, (n + 1) * exact - total, (sp, gp), (sn, gn))
        for array, value in zip(joint, enc, strict=True):
            array[copy, r, c] = value
        total += enc[2] - enc[3]
    indep_mean = (diffs * mask[:, None, :]).sum(axis=0) / beta
    keep = np.abs(total / beta - exact) <= np.abs(indep_mean - exact)  # pairs where joint is no worse
    result = [np.where(keep[None], j, o) for j, o in zip(joint, out, strict=True)]
    return [(result[0][a], result[1][a], result[2][a], result[3][a]) for a in range(alpha)], mask


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
            copies: list[EncodedCopy] = []
            masks: list[np.ndarray] = []
            for block in tiling.blocks:
                rows = slice(block.row_start, block.row_stop)
                cols = slice(block.col_start, block.col_stop)
                tp, tn = quantized.pos[rows, cols], quantized.neg[rows, cols]
                if quantized.encoding == "joint":
                    if quantized.exact_uS is None:
                        raise CompileError(f"{node.describe()}: joint encoding needs the quantize pass's exact "
                                           "targets; run quantize with encoding='joint'")
                    stuck = [(maps.region(placed.region(block.index, "pos", copy), block.shape),
                              maps.region(placed.region(block.index, "neg", copy), block.shape))
                             for copy in range(ensemble.alpha)]
                    encoded, mask = encode_joint(levels, quantized.exact_uS[rows, cols], tp, tn, stuck,
                                                 ensemble.beta)
                    copies.extend(EncodedCopy(block.index, copy, *e) for copy, e in enumerate(encoded))
                    masks.append(mask)
                    continue
                for copy in range(ensemble.alpha):
                    stuck_p = maps.region(placed.region(block.index, "pos", copy), block.shape)
                    stuck_n = maps.region(placed.region(block.index, "neg", copy), block.shape)
                    pos, neg, pos_uS, neg_uS = encode_copy(levels, tp, tn, stuck_p, stuck_n, quantized.encoding)
                    copies.append(EncodedCopy(block.index, copy, pos, neg, pos_uS, neg_uS))
            node.set_fact(Encoded(tuple(copies), tuple(masks) if masks else None))
        return graph
