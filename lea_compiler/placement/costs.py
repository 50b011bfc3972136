"""Cost maps: the mapping error of every pattern at every offset of every array.

For an item with target matrix P on array a, whose stuck map is s (1 where a
device is stuck, else 0) with stuck conductances g, the cost (mapping error)
at offset (y, x) is

    cost(y, x) = sum_{u < r, v < c} s[y+u, x+v] * |g[y+u, x+v] - P[u, v]|

(a healthy device is programmed to its target and costs nothing). Targets
take few distinct values (the device levels), so with D the set of distinct
targets,

    |g - t| = sum_{v in D} [t == v] * |g - v|

and each term is a 2-D valid cross-correlation of the array map
A_v = s * |g - v| with the binary mask [P == v]. `cost_maps` evaluates the
correlations as one matrix product per (pattern shape, array shape): the
windows of the array maps (`sliding_window_view`, gathered only at offsets
whose window holds a stuck device; the others cost exactly 0) times the
stacked masks of every pattern of that shape. One exact shortcut: a stuck
device whose conductance lies outside [min D, max D] (the paper's stuck-high
~500 uS and stuck-low ~10 uS devices always do) has |g - t| = sigma * (g - t)
with sigma = sign(g - t) the same for every target, so all its level terms
collapse into one linear term:

    cost = boxsum(s_out * sigma * g) - corr(s_out * sigma, P)
           + sum_{v in D} corr(s_in * |g - v|, [P == v])

where s_out / s_in mark stuck devices outside / inside the target range. The
level terms are then needed only for devices inside the range, and only when
there are any. Copies share a pattern, so maps are computed per pattern.

IR drop. On a chip whose word and bit lines have resistance (`periphery.lines`)
every offset also costs the expected IR-drop error of the pattern there, so a
region far from the drivers (large x) or from the sense amplifiers (small y)
costs more (`ir_drop_costs`): the current the lines take from the devices, to
first order in the resistances, with every row at the same voltage, in uS of
conductance (the loss of sum_ij M_ij against sum_ij P_ij, `lea_compiler.irdrop`),
saturated so that it never exceeds the region's total conductance.
With ideal lines (the default) the term is absent and the maps are as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lea_compiler.chip import Chip, LineModel
from lea_compiler.errors import UsageError
from lea_compiler.irdrop import lead_ohm
from lea_compiler.placement.problem import PlacementProblem, Region

MAX_LEVEL_TERMS = 32
"""Most distinct targets per pattern shape for level masks; beyond, |G - P| windows directly."""
_CHUNK_ELEMENTS = 1 << 22
"""Elements handled at once in `cost_maps` (32 MB of float64)."""
_GATHER_COST = 20
"""Cost-model weight of gathering one window element, in multiply-adds."""


@dataclass(frozen=True, eq=False)
class ArrayGroup:
    """Arrays of one shape, in ascending id order (the batch unit of `cost_maps`)."""

    rows: int
    cols: int
    array_ids: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class CostMaps:
    """The cost of every pattern at every offset of every array.

    Attributes:
        groups: The chip's arrays grouped by shape.
        maps: `maps[p][g]` is a float64 array of shape
            (len(groups[g].array_ids), rows - r + 1, cols - c + 1): the cost of
            pattern p (r x c) at each offset of each array of group g, uS; None
            where the pattern does not fit that shape.
    """

    groups: tuple[ArrayGroup, ...]
    maps: tuple[tuple[np.ndarray | None, ...], ...]
    _where: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for g, group in enumerate(self.groups):
            for i, array_id in enumerate(group.array_ids):
                self._where[array_id] = (g, i)

    def locate(self, array_id: int) -> tuple[int, int]:
        """(group index, index within the group) of an array."""
        try:
            return self._where[array_id]
        except KeyError:
            raise UsageError(f"the chip has no array {array_id!r}") from None

    def of(self, pattern: int, array_id: int) -> np.ndarray | None:
        """Cost of `pattern` at each offset of one array, or None if it does not fit."""
        g, i = self.locate(array_id)
        block = self.maps[pattern][g]
        return None if block is None else block[i]


def _array_groups(chip: Chip) -> tuple[ArrayGroup, ...]:
    by_shape: dict[tuple[int, int], list[int]] = {}
    for a in chip.arrays:
        by_shape.setdefault((a.rows, a.cols), []).append(a.id)
    return tuple(ArrayGroup(r, c, tuple(sorted(ids))) for (r, c), ids in sorted(by_shape.items()))


def _integral(x: np.ndarray, dtype: type) -> np.ndarray:
    """Zero-padded 2-D prefix sums over the last two axes: (n, R, C) -> (n, R + 1, C + 1)."""
    n, rows, cols = x.shape
    out = np.zeros((n, rows + 1, cols + 1), dtype=dtype)
    np.cumsum(x, axis=1, dtype=dtype, out=out[:, 1:, 1:])
    np.cumsum(out[:, 1:, 1:], axis=2, out=out[:, 1:, 1:])
    return out


def _box(integral: np.ndarray, r: int, c: int) -> np.ndarray:
    """Sum of every r x c window from a prefix-sum array: (n, R + 1, C + 1) -> (n, R-r+1, C-c+1)."""
    return integral[:, r:, c:] - integral[:, :-r, c:] - integral[:, r:, :-c] + integral[:, :-r, :-c]


def _correlate(source: np.ndarray, active: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """out[q, a, y, x] += sum(weights[q] * source[a, y:y+r, x:x+c]) where `active[a, y, x]`.

    `source` is (n, R, C), `weights` (patterns, r, c), `active` a boolean
    (n, R-r+1, C-c+1) and `out` (patterns, n, R-r+1, C-c+1). Two exact
    evaluations, chosen by a cost model of the shapes alone (so the choice,
    and the result, do not depend on the machine):

    * windows: gather each active r x c window (`sliding_window_view`) and
      multiply by the stacked patterns (best when there are few offsets);
    * strips: for each row offset, the r x C strip of every array times each
      pattern's columns (one batched matrix product, no gather), then sums
      along diagonals (best for narrow patterns with many column offsets).
    """
    n, rows, cols = source.shape
    n_pat, r, c = weights.shape
    noy, nox = rows - r + 1, cols - c + 1
    flat_active = np.flatnonzero(active.ravel())
    cost_windows = flat_active.size * r * c * (n_pat + _GATHER_COST)
    cost_strips = n * noy * n_pat * c * r * cols
    if cost_windows <= cost_strips:
        windows = sliding_window_view(source, (r, c), axis=(1, 2))
        flat_w = weights.reshape(n_pat, r * c)
        flat_out = out.reshape(n_pat, -1)
        step = max(1, _CHUNK_ELEMENTS // (r * c))
        for start in range(0, flat_active.size, step):
            chunk = flat_active[start : start + step]
            gathered = windows[np.unravel_index(chunk, (n, noy, nox))].reshape(-1, r * c)
            flat_out[:, chunk] += np.tensordot(flat_w, gathered, axes=([1], [1]))
        return
    by_column = weights.transpose(0, 2, 1).reshape(n_pat * c, r)  # rows (pattern, col j)
    step = max(1, _CHUNK_ELEMENTS // (n_pat * c * cols))
    for oy in range(noy):
        for a0 in range(0, n, step):
            strip = source[a0 : a0 + step, oy : oy + r, :]  # (m, r, C), a view
            prod = np.matmul(by_column, strip).reshape(-1, n_pat, c, cols)
            acc = prod[:, :, 0, 0:nox].copy()
            for j in range(1, c):
                acc += prod[:, :, j, j : j + nox]
            acc *= active[a0 : a0 + step, oy, None, :]
            out[:, a0 : a0 + step, oy, :] += acc.transpose(1, 0, 2)


def cost_maps(problem: PlacementProblem) -> CostMaps:
    """The mapping error of every pattern at every offset of every array (vectorised).

    See the module docstring for the decomposition. Arrays of one shape are
    batched; patterns of one shape share one matrix product; offsets whose
    window holds no stuck device are exactly 0 and are not computed.

    Args:
        problem: The placement problem (only its patterns and chip are used).

    Returns:
        The cost maps, uS.
    """
    chip = problem.chip
    groups = _array_groups(chip)
    patterns = problem.patterns
    maps: list[list[np.ndarray | None]] = [[None] * len(groups) for _ in patterns]
    if not patterns:
        return CostMaps(groups, tuple(tuple(m) for m in maps))
    values = np.unique(np.concatenate([p.target_uS.ravel() for p in patterns]))
    t_lo, t_hi = float(values[0]), float(values[-1])
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(patterns):
        by_shape.setdefault(p.shape, []).append(i)
    for g, group in enumerate(groups):
        n, rows, cols = len(group.array_ids), group.rows, group.cols
        fitting = {s: ps for s, ps in by_shape.items() if s[0] <= rows and s[1] <= cols}
        if not fitting:
            continue
        stuck = np.zeros((n, rows, cols), dtype=bool)
        g_uS = np.zeros((n, rows, cols), dtype=np.float64)
        for i, array_id in enumerate(group.array_ids):
            state, conductance = chip.stuck_map(array_id)
            stuck[i] = state != 0
            g_uS[i] = np.where(stuck[i], conductance, 0.0)
        above = stuck & (g_uS >= t_hi)
        below = stuck & (g_uS <= t_lo) & ~above
        inside = stuck & ~above & ~below
        sigma = above.astype(np.float64) - below.astype(np.float64)  # 0 where healthy or inside
        any_stuck = _integral(stuck, np.int64)
        outside_sum = _integral(sigma * g_uS, np.float64)
        has_inside = bool(inside.any())
        inside_count = _integral(inside, np.int64) if has_inside else None
        for (r, c), members in fitting.items():
            out = np.zeros((len(members), n, rows - r + 1, cols - c + 1), dtype=np.float64)
            stacked = np.stack([patterns[p].target_uS for p in members])  # (m, r, c)
            active = _box(any_stuck, r, c) > 0
            if active.any():
                # Outside-range stuck devices: one linear term for all levels.
                out += np.where(active, _box(outside_sum, r, c), 0.0)[None]
                _correlate(sigma, active, -stacked, out)
            if has_inside and inside_count is not None:
                act_in = _box(inside_count, r, c) > 0
                if act_in.any():
                    _inside_terms(inside, g_uS, stacked, act_in, out)
            if not chip.periphery.lines.is_default:
                out += ir_drop_costs(stacked, chip.periphery.lines, rows, cols)[:, None]
            for j, member in enumerate(members):
                maps[member][g] = out[j]
        del stuck, g_uS, above, below, inside, sigma, any_stuck, outside_sum, inside_count
    return CostMaps(groups, tuple(tuple(m) for m in maps))


def ir_drop_costs(targets_uS: np.ndarray, lines: LineModel, array_rows: int, array_cols: int) -> np.ndarray:
    """The expected IR-drop error of patterns (m, r, c; uS) at every offset of an array: (m, R-r+1, C-c+1), uS.

    First order in the line resistances, with every row at the same voltage v: the current the lines take is
    v * 1e-6 * (sum over word-line pieces of R * (current through it)^2 + the same over bit-line pieces), as
    each piece's drop reaches every device beyond it. Per row, the lead R_in(x) carries the row's sum and the
    segment before column k the sum of columns >= k; per column, the lead R_out(y) carries the column's sum and
    the segment below row k-1 the sum of rows < k (`irdrop.lead_ohm`, the geometry's one definition). Divided by
    v, a conductance L1: the loss of sum_ij M_ij against S = sum_ij P_ij, to first order.

    The first order grows without bound while the true loss is below S (the lines cannot take more than the
    devices conduct), so the cost is the saturating S * x / (1 + x) with x = L1 / S: exact for one device (or any
    region lumped into one conductance S) behind a series resistance R, whose loss is S * RS / (1 + RS) with
    first order S^2 R; equal to L1 to first order (small x), increasing in L1 (far still costs more) and below S.
    """
    m, r, c = targets_uS.shape
    tails = np.cumsum(targets_uS[:, :, ::-1], axis=2)[:, :, ::-1]  # (m, r, c): sum of columns >= k, per row
    heads = np.cumsum(targets_uS, axis=1)  # (m, r, c): sum of rows <= k, per column
    s_row = np.square(tails[:, :, 0]).sum(axis=1)  # the leads carry whole rows / columns
    s_col = np.square(heads[:, -1, :]).sum(axis=1)
    inner = (lines.word_line_segment_ohm * np.square(tails[:, :, 1:]).sum(axis=(1, 2))
             + lines.bit_line_segment_ohm * np.square(heads[:, :-1, :]).sum(axis=(1, 2)))
    r_in, r_out = lead_ohm(lines, row=np.arange(array_rows - r + 1), col=np.arange(array_cols - c + 1), rows=r,
                           array_rows=array_rows)  # (ny,), (nx,)
    first = (inner[:, None, None] + r_in[None, None, :] * s_row[:, None, None]
             + r_out[None, :, None] * s_col[:, None, None]) * 1e-6
    total = targets_uS.sum(axis=(1, 2))[:, None, None]  # S, the most the lines can take
    with np.errstate(invalid="ignore", divide="ignore"):
        saturated = first * total / (total + first)
    return np.where(total > 0, saturated, 0.0)


def _inside_terms(
    inside: np.ndarray, g_uS: np.ndarray, stacked: np.ndarray, active: np.ndarray, out: np.ndarray
) -> None:
    """Add the level terms of stuck devices whose conductance lies inside the target range."""
    levels = np.unique(stacked)
    if levels.size <= MAX_LEVEL_TERMS:
        for v in levels.tolist():
            a_v = np.where(inside, np.abs(g_uS - v), 0.0)
            _correlate(a_v, active, (stacked == v).astype(np.float64), out)
        return
    r, c = stacked.shape[1:]
    weights_all = stacked.reshape(stacked.shape[0], -1)
    flat_out = out.reshape(stacked.shape[0], -1)
    flat_offsets = np.flatnonzero(active.ravel())
    # Too many distinct targets for level masks: |g - P| over each window directly.
    n, rows, cols = g_uS.shape
    g_win = sliding_window_view(g_uS, (r, c), axis=(1, 2))
    s_win = sliding_window_view(inside, (r, c), axis=(1, 2))
    step = max(1, _CHUNK_ELEMENTS // (r * c))
    shape = (n, rows - r + 1, cols - c + 1)
    for start in range(0, flat_offsets.size, step):
        chunk = flat_offsets[start : start + step]
        idx = np.unravel_index(chunk, shape)
        gw = g_win[idx].reshape(-1, r * c)
        sw = s_win[idx].reshape(-1, r * c)
        for j in range(weights_all.shape[0]):
            flat_out[j, chunk] += (np.abs(gw - weights_all[j]) * sw).sum(axis=1)


def item_cost(problem: PlacementProblem, item_index: int, region: Region) -> float:
    """The mapping error of one item at one region, computed directly from the stuck map.

    Args:
        problem: The placement problem.
        item_index: Index of the item.
        region: Where it would go.

    Returns:
        Sum over the covered devices of |G_actual - G_target|, uS, plus the expected IR-drop error there on a
        chip whose lines have resistance (`ir_drop_costs`).

    Raises:
        UsageError: no such item or array, or the item does not fit there.
    """
    if not 0 <= item_index < len(problem.items):
        raise UsageError(f"no item {item_index} (the problem has {len(problem.items)})")
    target = problem.patterns[problem.items[item_index].pattern].target_uS
    r, c = target.shape
    arr = problem.chip.array(region.array)
    if not (0 <= region.row <= arr.rows - r and 0 <= region.col <= arr.cols - c):
        raise UsageError(
            f"item {item_index} ({r} x {c}) does not fit at row {region.row}, col {region.col} "
            f"of array {arr.id} ({arr.rows} x {arr.cols})"
        )
    state, g_uS = problem.chip.stuck_map(region.array)
    window = (slice(region.row, region.row + r), slice(region.col, region.col + c))
    stuck = state[window] != 0
    cost = float(np.abs(g_uS[window][stuck] - target[stuck]).sum())
    lines = problem.chip.periphery.lines
    if not lines.is_default:
        cost += float(ir_drop_costs(target[None], lines, arr.rows, arr.cols)[0, region.row, region.col])
    return cost
