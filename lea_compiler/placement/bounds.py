"""Lower bounds: the combinatorial bound (min-cost flow and k cheapest regions) and the Lagrangian.

Every placer reports the best bound it has.

  * Combinatorial bound. Patterns exclusive on every array they fit: each
    copy needs an array of its own, at the array's cheapest offset; ignoring
    every other item this is a transportation problem (pattern p supplies
    k_p copies, an array takes at most one), solved exactly by min-cost flow
    (OR-Tools `SimpleMinCostFlow`). Every other pattern: the sum of its k_p
    cheapest distinct regions (counting only each array's cheapest offset
    where two of its copies cannot share an array), overlaps ignored. The
    parts concern disjoint items, so the sum is a valid bound, and it is
    never weaker than "each item at its individually cheapest region".
  * Lagrangian bound (`solve_placement` only). Dualise "every device is
    covered at most once" with multipliers lam >= 0:
        L(lam) = flow(c + Lam) + sum_p select_p(c + Lam) - sum(lam)
    where Lam is the window sum of lam over a region (box sums from prefix
    sums), `flow` the transportation problem above and `select_p` the k_p
    cheapest regions. L(lam) is a lower bound for every lam >= 0 and equals
    the combinatorial bound at lam = 0; projected subgradient steps (Polyak
    step sizes against the best known solution) raise it. Relaxed
    selections that happen to overlap nowhere, and the greedy search on the
    prices c + Lam, give upper bounds. The iteration count depends on the
    problem size and `time_limit_s`, not on the clock, so the bound is
    deterministic, unless the wall-clock safety limit (`wall_clock_limit_s`,
    3 x `time_limit_s` + 5 s) strikes first, which is logged as a warning.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from lea_compiler.errors import DoesNotFitError
from lea_compiler.placement.context import Boxes, Loc, _assign_locs, _capacity, _Context
from lea_compiler.placement.costs import _box, _integral
from lea_compiler.placement.greedy import _greedy

logger = logging.getLogger("lea_compiler.placement")  # the package's name, as before the split

MAX_FLOW_ARCS = 20_000_000
"""Largest min-cost flow built; beyond it those patterns get the k-cheapest bound instead."""
LAGRANGE_WORK_PER_S = 1e8
"""Lagrangian iterations: this many cost-map entries per second of `time_limit_s` in total."""
LAGRANGE_MIN_ITER = 20
LAGRANGE_MAX_ITER = 400
LAGRANGE_THETA = 2.0
"""Initial Polyak step factor, halved after `LAGRANGE_PATIENCE` steps without a better bound."""
LAGRANGE_PATIENCE = 10
LAGRANGE_MIN_THETA = 1e-3
LAGRANGE_REPAIR_EVERY = 10
"""Run the greedy search on Lagrangian prices every this many iterations."""


WALL_CLOCK_FACTOR = 3.0
"""The wall-clock safety limit of CP-SAT and of the Lagrangian is this times the time limit, plus 5 s
(`wall_clock_limit_s`). The Lagrangian's iteration count is set by the work budget above, deterministically,
and normally ends well within it; on problems whose iterations cost far more than the budget assumes (a chip
whose lines have resistance makes every offset of a 3000 x 3000 array cost something: the minimum 20 iterations
took 139 s under --time-limit 3) the clock stops it first, as CP-SAT's safety limit does, with a warning."""


def wall_clock_limit_s(time_limit_s: float) -> float:
    """The wall-clock safety limit (seconds) of a placer stage given `time_limit_s`: 3 x it + 5 s."""
    return WALL_CLOCK_FACTOR * float(time_limit_s) + 5.0


# --------------------------------------------------------------------------
# The combinatorial bound


def _select(
    ctx: _Context, p: int, boxes: Boxes | None = None, want_locs: bool = False
) -> tuple[float, float, list[Loc]]:
    """The k_p cheapest distinct regions of p, overlaps ignored (the bound's subproblem).

    Where two copies of p cannot share an array, only each array's cheapest
    offset is eligible (so the copies land on distinct arrays).

    Returns:
        (sum of their costs, the largest of them, their locations if `want_locs`).

    Raises:
        DoesNotFitError: fewer places than copies (a proof).
    """
    k = ctx.k[p]
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = []
    places = 0
    for g in range(len(ctx.groups)):
        if not ctx.fits[p][g]:
            continue
        flat = ctx.priced(p, g, boxes).reshape(len(ctx.groups[g].array_ids), -1)
        if ctx.self_excl[p][g] and k >= 2:
            arg = np.argmin(flat, axis=1)
            parts.append((g, flat, flat[np.arange(arg.size), arg], arg))
            places += arg.size
        else:
            parts.append((g, flat, flat.min(axis=1), None))
            places += flat.size
    if places < k:
        r, c = ctx.shapes[p]
        raise DoesNotFitError(
            f"pattern {ctx.problem.patterns[p].name!r} ({r} x {c}) has {k} copies but "
            f"only {places} places on the chip can take one; {_capacity(ctx)}"
        )
    # The k cheapest regions all lie in arrays whose cheapest region is at most the
    # k-th smallest of the per-array minima: look only there.
    mins = np.concatenate([part[2] for part in parts])
    limit = float(np.partition(mins, k - 1)[k - 1]) if mins.size >= k else math.inf
    values: list[np.ndarray] = []
    where: list[tuple[int, np.ndarray, np.ndarray]] = []  # (group, array index, flat offset)
    for g, flat, part_mins, arg in parts:
        rows = np.flatnonzero(part_mins <= limit)
        if arg is not None:
            values.append(part_mins[rows])
            where.append((g, rows, arg[rows]))
        else:
            sub = flat[rows]
            ri, fi = np.nonzero(sub <= limit)
            values.append(sub[ri, fi])
            where.append((g, rows[ri], fi))
    vals = np.concatenate(values)
    if k < vals.size:
        # the k smallest, ties broken by position: argpartition's choice among equal values depends on
        # numpy's SIMD level, and so would the placement on another CPU
        kth = np.partition(vals, k - 1)[k - 1]
        below = np.flatnonzero(vals < kth)
        idx = np.concatenate([below, np.flatnonzero(vals == kth)[: k - below.size]])
    else:
        idx = np.arange(vals.size)
    chosen = vals[idx]
    locs: list[Loc] = []
    if want_locs:
        starts = np.cumsum([0] + [v.size for v in values])
        for j in np.sort(idx).tolist():
            part = int(np.searchsorted(starts, j, side="right")) - 1
            g, arrays, offsets = where[part]
            local = j - int(starts[part])
            y, x = np.unravel_index(int(offsets[local]), ctx.offsets(p, g))
            locs.append((g, int(arrays[local]), int(y), int(x)))
    return math.fsum(chosen.tolist()), float(chosen.max()), locs


def _combinatorial_bound(ctx: _Context) -> tuple[float, dict[int, Loc] | None]:
    """The combinatorial lower bound (uS) and the flow's placement of the exclusive items.

    Raises:
        DoesNotFitError: the exclusive items cannot get an array each, or a
            pattern has fewer places than copies (both proofs).
    """
    excl, rest = _split(ctx)
    placed: dict[int, Loc] | None = None
    total = 0.0
    if excl:
        flow_int, placed = _flow(ctx, excl)
        total = flow_int / ctx.scale
    return total + math.fsum(_select(ctx, p)[0] for p in rest), placed


def _split(ctx: _Context) -> tuple[list[int], list[int]]:
    """(patterns handled by the min-cost flow, the others): the flow takes the patterns
    exclusive on every array they fit, unless it would be too big."""
    excl = [p for p in ctx.used if ctx.global_excl[p]]
    arcs = sum(len(ctx.groups[g].array_ids) for p in excl for g in range(len(ctx.groups)) if ctx.fits[p][g])
    if arcs > MAX_FLOW_ARCS:
        logger.info("placement bound: %d flow arcs is too many; k-cheapest bound instead", arcs)
        return [], list(ctx.used)
    return excl, [p for p in ctx.used if p not in set(excl)]


def _flow(ctx: _Context, excl: list[int], boxes: Boxes | None = None) -> tuple[int, dict[int, Loc]]:
    """Min-cost flow: exclusive patterns -> arrays (capacity 1), cost = cheapest offset.

    With `boxes`, costs are Lagrangian prices (cost plus covered multipliers).
    Returns the optimal integer cost and each exclusive item's location.
    """
    n_p = len(excl)
    firsts = np.cumsum([0] + [len(g.array_ids) for g in ctx.groups])
    n_a = int(firsts[-1])
    source, sink = 0, 1 + n_p + n_a
    tails = [np.full(n_p, source)]  # source -> pattern, capacity k_p
    heads = [np.arange(1, 1 + n_p)]
    caps = [np.array([ctx.k[p] for p in excl], dtype=np.int64)]
    costs = [np.zeros(n_p, dtype=np.int64)]
    blocks: list[tuple[int, int, np.ndarray]] = []  # (pattern position, group, argmins)
    for j, p in enumerate(excl):
        for g in range(len(ctx.groups)):
            if not ctx.fits[p][g]:
                continue
            if boxes is None:
                mins, arg = ctx.amin(p, g)
            else:
                flat = ctx.priced(p, g, boxes).reshape(len(ctx.groups[g].array_ids), -1)
                arg = np.argmin(flat, axis=1)
                mins = flat[np.arange(arg.size), arg]
            n = arg.size
            tails.append(np.full(n, 1 + j))
            heads.append(1 + n_p + firsts[g] + np.arange(n))
            caps.append(np.ones(n, dtype=np.int64))
            costs.append(ctx.to_int(mins))
            blocks.append((j, g, arg))
    tails.append(1 + n_p + np.arange(n_a))
    heads.append(np.full(n_a, sink))
    caps.append(np.ones(n_a, dtype=np.int64))
    costs.append(np.zeros(n_a, dtype=np.int64))
    flow = min_cost_flow.SimpleMinCostFlow()
    arc_ids = flow.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails).astype(np.int32),
        np.concatenate(heads).astype(np.int32),
        np.concatenate(caps).astype(np.int64),
        np.concatenate(costs).astype(np.int64),
    )
    need = sum(ctx.k[p] for p in excl)
    flow.set_node_supply(source, need)
    flow.set_node_supply(sink, -need)
    status = flow.solve()
    if status != min_cost_flow.SimpleMinCostFlow.OPTIMAL:
        if status == min_cost_flow.SimpleMinCostFlow.INFEASIBLE:
            raise DoesNotFitError(
                f"cannot place: {need} copies cannot share an array with any other copy, and "
                f"they cannot each get an array of their own where they fit (proven by "
                f"min-cost flow); {_capacity(ctx)}"
            )
        raise RuntimeError(f"min-cost flow failed: {status}")  # pragma: no cover
    flows = np.asarray(flow.flows(np.asarray(arc_ids, dtype=np.int32)))
    chosen: dict[int, list[tuple[int, int, int]]] = {j: [] for j in range(n_p)}
    pos = n_p  # the source -> pattern arcs come first
    args: dict[tuple[int, int], np.ndarray] = {}
    for j, g, arg in blocks:
        n = arg.size
        args[(j, g)] = arg
        for i in np.flatnonzero(flows[pos : pos + n] > 0).tolist():
            chosen[j].append((ctx.groups[g].array_ids[i], g, i))
        pos += n
    placed: dict[int, Loc] = {}
    for j, p in enumerate(excl):
        for item, (_, g, i) in zip(ctx.items_of[p], sorted(chosen[j]), strict=True):
            y, x = np.unravel_index(int(args[(j, g)][i]), ctx.offsets(p, g))
            placed[item] = (g, i, int(y), int(x))
    return int(flow.optimal_cost()), placed


# --------------------------------------------------------------------------
# Lagrangian relaxation of the no-overlap constraints


@dataclass
class _Dual:
    """The best Lagrangian bound found, with what pruning needs, and the best solution seen."""

    bound_uS: float
    boxes: Boxes | None
    kth: dict[int, float]
    iterations: int
    ub_uS: float
    ub_locs: list[Loc]
    ub_name: str


def _lagrangian(ctx: _Context, ub_uS: float, ub_locs: list[Loc], ub_name: str, time_limit_s: float) -> _Dual:
    """Projected subgradient on the multipliers of the per-device 'covered at most once' rows.

    L(lam) = flow(prices) + sum_p select_p(prices) - sum(lam), with prices =
    cost + window sums of lam, the flow over the patterns exclusive everywhere
    and `select` (k cheapest regions) for the others, is a lower bound for
    every lam >= 0; at lam = 0 it is the combinatorial bound. The iteration
    count is fixed by the problem size and the time limit (not the clock), so
    the result is deterministic unless the wall-clock safety limit strikes
    (`wall_clock_limit_s`). A
    relaxed selection that covers no device twice is a placement and may
    improve the upper bound; so may the greedy search on Lagrangian prices.
    """
    groups = ctx.groups
    flow_patterns, others = _split(ctx)
    lam = [np.zeros((len(g.array_ids), g.rows, g.cols)) for g in groups]
    shapes = [sorted({ctx.shapes[p] for p in ctx.used if ctx.fits[p][g]}) for g in range(len(groups))]
    work = sum(m.size for p in ctx.used for m in ctx.maps.maps[p] if m is not None)
    work += sum(x.size for x in lam)
    budget = LAGRANGE_WORK_PER_S * time_limit_s
    iterations = int(min(LAGRANGE_MAX_ITER, max(LAGRANGE_MIN_ITER, budget // max(1, work))))
    wall = wall_clock_limit_s(time_limit_s)
    deadline = time.perf_counter() + wall
    best = -math.inf
    best_boxes: Boxes | None = None
    best_kth: dict[int, float] = {}
    theta, stall, done = LAGRANGE_THETA, 0, 0
    live: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in groups]  # arrays with lam > 0
    for it in range(iterations):
        done = it + 1
        boxes: Boxes = {}
        for g, grp in enumerate(groups):
            integral = _integral(lam[g][live[g]], np.float64) if live[g].size else None
            for s in shapes[g]:
                box = np.zeros((len(grp.array_ids), grp.rows - s[0] + 1, grp.cols - s[1] + 1))
                if integral is not None:
                    box[live[g]] = _box(integral, *s)
                boxes[(g, s)] = box
        value = -math.fsum(float(lam[g][live[g]].sum()) for g in range(len(groups)))
        kth: dict[int, float] = {}
        picked: list[tuple[int, Loc]] = []
        if flow_patterns:
            flow_int, flow_locs = _flow(ctx, flow_patterns, boxes)
            value += flow_int / ctx.scale
            picked += [(ctx.problem.items[i].pattern, loc) for i, loc in flow_locs.items()]
        for p in others:
            total, kth[p], locs = _select(ctx, p, boxes, want_locs=True)
            value += total
            picked += [(p, loc) for loc in locs]
        if value > best + 1e-9 * max(1.0, abs(value)):
            best, best_boxes, best_kth, stall = value, boxes, kth, 0
        else:
            stall += 1
            if stall >= LAGRANGE_PATIENCE:
                theta, stall = theta / 2.0, 0
        # Only arrays holding two picked regions or live multipliers have a nonzero
        # subgradient (coverage - 1, projected: 0 where lam = 0 and it is negative).
        relevant, cover = _coverage(ctx, picked, live)
        if all(int(c.max(initial=0)) <= 1 for c in cover):
            # The relaxed selection overlaps nowhere: it is a placement.
            locs = _assign_locs(ctx, picked)
            cost = ctx.objective(locs)
            if cost < ub_uS:
                ub_uS, ub_locs, ub_name = cost, locs, "lagrangian"
        if it % LAGRANGE_REPAIR_EVERY == LAGRANGE_REPAIR_EVERY - 1:
            repaired = _greedy(ctx, boxes=boxes)
            if not isinstance(repaired, int):
                cost = ctx.objective(repaired)
                if cost < ub_uS:
                    ub_uS, ub_locs, ub_name = cost, repaired, "lagrangian-greedy"
        if ctx.meets(ub_uS, ctx.round_bound(best)) or theta < LAGRANGE_MIN_THETA:
            break
        subs = []
        norm2 = 0.0
        for g, cov in enumerate(cover):
            sub = cov.astype(np.float64) - 1.0
            sub[(lam[g][relevant[g]] <= 0.0) & (sub < 0.0)] = 0.0
            norm2 += float(np.square(sub).sum())
            subs.append(sub)
        if norm2 == 0.0:
            break  # the multipliers are optimal for the dual
        if done < iterations and time.perf_counter() > deadline:
            logger.warning("placement Lagrangian stopped at its wall-clock safety limit (%.1f s) after %d of %d "
                           "iterations; the bound and placement may then differ between runs",
                           wall, done, iterations)
            break
        step = theta * (ub_uS - value) / norm2
        for g, sub in enumerate(subs):
            idx = relevant[g]
            if idx.size:
                lam[g][idx] = np.maximum(lam[g][idx] + step * sub, 0.0)
                live[g] = idx[lam[g][idx].max(axis=(1, 2)) > 0.0]
    logger.info(
        "placement Lagrangian: %d iterations, bound %.6g uS, best solution %.6g uS (%s)",
        done,
        best,
        ub_uS,
        ub_name,
    )
    return _Dual(best, best_boxes, best_kth, done, ub_uS, ub_locs, ub_name)


def _coverage(
    ctx: _Context, picked: Sequence[tuple[int, Loc]], live: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Device coverage by the picked regions, on the arrays where the subgradient can be nonzero.

    Returns:
        Per array group: the relevant arrays (those with live multipliers or
        two or more picked regions), and how often each of their devices is
        covered (arrays, rows, cols).
    """
    relevant, cover = [], []
    for g, grp in enumerate(ctx.groups):
        mine = [(p, loc) for p, loc in picked if loc[0] == g]
        counts = Counter(loc[1] for _, loc in mine)
        multi = np.array([i for i, n in counts.items() if n >= 2], dtype=np.int64)
        idx = np.union1d(live[g], multi).astype(np.int64)
        diff = np.zeros((idx.size, grp.rows + 1, grp.cols + 1), dtype=np.int32)
        for p, (_, i, y, x) in mine:
            k = int(np.searchsorted(idx, i))
            if k == idx.size or idx[k] != i:
                continue
            r, c = ctx.shapes[p]
            diff[k, y, x] += 1
            diff[k, y + r, x] -= 1
            diff[k, y, x + c] -= 1
            diff[k, y + r, x + c] += 1
        relevant.append(idx)
        cover.append(np.cumsum(np.cumsum(diff, axis=1), axis=2)[:, :-1, :-1])
    return relevant, cover
