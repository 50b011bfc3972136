"""The exact solver: candidate regions, their no-overlap cliques and the CP-SAT model.

CP-SAT runs over candidate regions, copies of a pattern aggregated (which
removes their symmetry entirely):

    x[p, j] in {0, 1}            pattern p takes candidate region j
    sum_j x[p, j] = k_p          every copy placed
    for every device d: AtMostOne({x[p, j] : region j covers d})
    exclusive candidates: AtMostOne per array, and on an array that also
      has other candidates, sum(exclusive) = f with f in every clique there
    minimise sum_{p, j} cost_int[p, j] * x[p, j]

hinted with the best heuristic solution; the copies of a pattern then take
its chosen regions in (array, row, col) order. The per-device cliques
stand in for NoOverlap2D: boxes have the Helly property (pairwise
overlapping boxes share a device), so they are exactly the maximal
cliques of the conflict graph, and their LP relaxation is the Lagrangian
bound (`lea_compiler.placement.bounds`). They are built on the compressed
grid of candidate edges (where the covering set changes), one per distinct
set. Measured on tight chips this proves optimality in seconds where
NoOverlap2D over optional fixed-size intervals (alone or added to the
cliques) found no proof in 35 s.

Candidates. The full (lossless) set is every offset of every array,
except that exclusive patterns keep only each array's cheapest offset.
Reduced-cost pruning then removes regions that cannot be in any solution
at least as good as the best heuristic one (cost UB): a solution using
region j for pattern p costs at least B - kth_p + price_j, where B is a
bound from `_select` (the combinatorial one at lam = 0, or the Lagrangian
one at its best lam, with prices c + Lam) and kth_p is p's k_p-th
cheapest price; j goes if that exceeds UB (plus the integer resolution).
Every optimal solution survives, so this set is still exhaustive and
CP-SAT's bound holds for the full problem. If more than
`CANDIDATE_BUDGET` (pattern, region) pairs remain, the set is restricted:
offsets on a grid of stride s (plus the last offset in each direction),
each array's cheapest offset, and the heuristics' regions are kept, s
growing until under budget; if even one offset per array is over budget,
each pattern keeps the cheapest offset of its m cheapest arrays, m as
large as the budget allows. A restricted model's optimum need not be the
true one: the bound reported is then the better of the relaxations in `bounds`,
and the status FEASIBLE unless the objective meets it. The budget is
50,000: on the 2-core machine of the benchmarks CP-SAT did not finish
presolving 150,000-candidate models in 35 s, and solved 30,000 in 5 s.

CP-SAT runs with a fixed `random_seed`, `CPSAT_WORKERS` workers (1: the
search is then deterministic; more use `interleave_search`, also
deterministic), `max_deterministic_time = time_limit_s` and a wall-clock
safety limit; the same inputs and seed give the same placement unless the
wall-clock limit strikes first (logged as a warning).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from lea_compiler.interruptible import run_interruptibly
from lea_compiler.placement.bounds import _Dual, _select, wall_clock_limit_s
from lea_compiler.placement.context import Loc, _assign_locs, _Context

logger = logging.getLogger("lea_compiler.placement")  # the package's name, as before the split

CANDIDATE_BUDGET = 50_000
"""Most (pattern, region) pairs the CP-SAT model may hold before the candidates are restricted."""
CPSAT_WORKERS = 1
"""CP-SAT workers. One worker is deterministic; more use `interleave_search`, which is
deterministic too but was slower on the 2-core machine the benchmarks ran on."""
LARGE_MODEL = 20_000
"""CP-SAT models with more candidates than this are presolved without probing."""


@dataclass
class _Candidates:
    """Candidate (pattern, region) pairs as parallel arrays."""

    pattern: np.ndarray
    group: np.ndarray
    index: np.ndarray
    row: np.ndarray
    col: np.ndarray
    cost: np.ndarray  # integer costs
    exclusive: np.ndarray  # the pattern is exclusive on this array's shape

    @property
    def size(self) -> int:
        return int(self.pattern.size)


def _grid(n_off: int, stride: int) -> np.ndarray:
    mask = np.zeros(n_off, dtype=bool)
    mask[::stride] = True
    mask[-1] = True
    return mask


def _candidates(
    ctx: _Context, ub_uS: float, dual: _Dual | None, must: Sequence[Sequence[Loc]], limit: int | None = None
) -> tuple[_Candidates, bool, str]:
    """The candidate regions: (candidates, exhaustive, description); see the module docstring. `limit`
    replaces `CANDIDATE_BUDGET` (latency-aware placement's smaller model)."""
    budget = CANDIDATE_BUDGET if limit is None else limit
    slack = ctx.resolution + 1e-9 * max(1.0, abs(ub_uS))
    plain = {p: _select(ctx, p) for p in ctx.used}
    lb0 = math.fsum(v[0] for v in plain.values())
    thr0 = {p: ub_uS - lb0 + plain[p][1] + slack for p in ctx.used}
    thr1: dict[int, float] = {}
    if dual is not None and dual.boxes is not None:
        thr1 = {p: ub_uS - dual.bound_uS + kth + slack for p, kth in dual.kth.items()}
    blocks = [(p, g) for p in ctx.used for g in range(len(ctx.groups)) if ctx.fits[p][g]]

    def survivors(p: int, g: int) -> np.ndarray:
        """Boolean (arrays, row offsets, col offsets): not pruned by reduced cost."""
        m = ctx.maps.maps[p][g]
        assert m is not None
        keep = m <= thr0[p]
        if p in thr1 and dual is not None:
            keep &= ctx.priced(p, g, dual.boxes) <= thr1[p]
        return keep

    def block(p: int, g: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(array index, row, col) of the kept candidates of one block at a stride."""
        keep = survivors(p, g)
        n, noy, nox = keep.shape
        _, arg = ctx.amin(p, g)
        cheapest = np.zeros_like(keep)
        cheapest.reshape(n, -1)[np.arange(n), arg] = True
        if ctx.excl[p][g]:
            keep &= cheapest
        elif stride > 1:
            grid = _grid(noy, stride)[:, None] & _grid(nox, stride)[None, :]
            keep &= grid[None, :, :] | cheapest
        a, y, x = np.nonzero(keep)
        return a, y, x

    def count(stride: int) -> int:
        return sum(int(block(p, g, stride)[0].size) for p, g in blocks)

    stride, total = 1, count(1)
    exhaustive, description = True, "exhaustive"
    max_off = max(max(ctx.offsets(p, g)) for p, g in blocks)
    if total > budget:
        exhaustive = False
        stride = 2
        while True:
            total = count(stride)
            if total <= budget or stride > max_off:
                break
            stride = stride + 1 if stride < 4 else stride * 3 // 2
        description = f"grid stride {stride}"
    cols: list[list[np.ndarray]] = [[] for _ in range(5)]
    if total <= budget:
        for p, g in blocks:
            a, y, x = block(p, g, stride)
            for k, v in enumerate((np.full(a.size, p), np.full(a.size, g), a, y, x)):
                cols[k].append(v)
    else:
        # Even one offset per array is too many: each pattern keeps its m cheapest arrays.
        m_arrays = max(1, budget // len(ctx.used))
        description = f"cheapest offset on each pattern's {m_arrays} cheapest arrays"
        for p in ctx.used:
            parts = []
            for g in range(len(ctx.groups)):
                if not ctx.fits[p][g]:
                    continue
                mins, arg = ctx.amin(p, g)
                n = mins.size
                ys, xs = np.unravel_index(arg, ctx.offsets(p, g))
                ok = survivors(p, g)[np.arange(n), ys, xs]
                ids = np.asarray(ctx.groups[g].array_ids)
                parts.append(np.stack([mins, ids, np.full(n, g), np.arange(n), ys, xs])[:, ok])
            table = np.concatenate(parts, axis=1)
            order = np.lexsort((table[1], table[0]))[:m_arrays]
            chosen = table[:, order].astype(np.int64)
            for k, v in enumerate((np.full(order.size, p), chosen[2], chosen[3], chosen[4], chosen[5])):
                cols[k].append(v)
    # The heuristics' regions are always candidates, so their placements stay feasible.
    for locs in must:
        for i, loc in enumerate(locs):
            for k, value in enumerate((ctx.problem.items[i].pattern, *loc)):
                cols[k].append(np.array([value]))
    key = np.stack([np.concatenate(c).astype(np.int64) for c in cols], axis=1)
    key = np.unique(key, axis=0)
    pattern, group, index, row, col = (key[:, k] for k in range(5))
    cost = np.empty(key.shape[0], dtype=np.int64)
    exclusive = np.empty(key.shape[0], dtype=bool)
    for p, g in blocks:
        sel = np.flatnonzero((pattern == p) & (group == g))
        if sel.size:
            m = ctx.maps.maps[p][g]
            assert m is not None
            cost[sel] = ctx.to_int(m[index[sel], row[sel], col[sel]])
            exclusive[sel] = ctx.excl[p][g]
    return _Candidates(pattern, group, index, row, col, cost, exclusive), exhaustive, description


def _cell_cliques(ctx: _Context, cands: _Candidates, shared: np.ndarray, flags: dict[int, int]) -> list[list[int]]:
    """The no-overlap constraints as cliques: per device, the candidates covering it.

    Axis-parallel boxes have the Helly property (boxes that overlap pairwise
    share a device), so these are exactly the maximal cliques of the conflict
    graph, and one AtMostOne per distinct covering set is an exact and tight
    encoding. The covering set only changes at candidate edges, so devices are
    taken on the compressed grid of each array's distinct edge rows and
    columns. `shared` lists the non-exclusive candidates; `flags` maps an array
    key to the index of its "holds an exclusive copy" variable, which joins
    every clique of its array.

    Returns:
        The cliques, as lists of variable indices (duplicates removed).
    """
    if shared.size == 0:
        return []
    key = cands.group * (1 + int(cands.index.max(initial=0))) + cands.index
    shapes = np.array([ctx.shapes[int(p)] for p in cands.pattern[shared]]).reshape(-1, 2)
    top, left = cands.row[shared], cands.col[shared]
    bottom, right = top + shapes[:, 0], left + shapes[:, 1]
    order = np.argsort(key[shared], kind="stable")
    bounds = np.flatnonzero(np.diff(key[shared][order])) + 1
    cliques: list[list[int]] = []
    for part in np.split(order, bounds):
        ys = np.unique(np.concatenate([top[part], bottom[part]]))
        xs = np.unique(np.concatenate([left[part], right[part]]))
        y0, y1 = np.searchsorted(ys, top[part]), np.searchsorted(ys, bottom[part])
        x0, x1 = np.searchsorted(xs, left[part]), np.searchsorted(xs, right[part])
        heights, widths = y1 - y0, x1 - x0
        counts = heights * widths
        owner = np.repeat(shared[part], counts)
        # Enumerate each candidate's compressed cells: k -> (y0 + k // width, x0 + k % width).
        first = np.repeat(np.cumsum(counts) - counts, counts)
        k = np.arange(owner.size) - first
        w = np.repeat(widths, counts)
        cell = (np.repeat(y0, counts) + k // w) * xs.size + np.repeat(x0, counts) + k % w
        flag = flags.get(int(key[shared[part[0]]]))
        by_cell = np.lexsort((owner, cell))
        cell, owner = cell[by_cell], owner[by_cell]
        starts = np.flatnonzero(np.r_[True, np.diff(cell) != 0])
        seen: set[tuple[int, ...]] = set()
        for members in np.split(owner, starts[1:]):
            if members.size < 2 and flag is None:
                continue
            clique = tuple(members.tolist())
            if clique not in seen:
                seen.add(clique)
                cliques.append([*clique, flag] if flag is not None else list(clique))
    return cliques


def _no_overlap(model: cp_model.CpModel, ctx: _Context, cands: _Candidates,
                lits: Sequence[Sequence[cp_model.IntVar]]) -> list[tuple[cp_model.IntVar, list[int]]]:
    """Add the exclusivity and no-overlap constraints over the candidates, `lits[j]` being the literals that
    put something on candidate j (one per pattern in the error model; one per (pattern, layer) class in the
    latency model). Returns each array's "holds an exclusive copy" flag with its exclusive candidates."""
    links: list[tuple[cp_model.IntVar, list[int]]] = []
    flags: dict[int, int] = {}
    flag_vars: list[cp_model.IntVar] = []
    nc = cands.size
    array_key = cands.group * (1 + int(cands.index.max(initial=0))) + cands.index
    shared_keys = set(array_key[~cands.exclusive].tolist())
    by_array = np.argsort(array_key, kind="stable")
    for idx in np.split(by_array, np.flatnonzero(np.diff(array_key[by_array])) + 1):
        excl = [int(j) for j in idx if cands.exclusive[j]]
        a = int(array_key[idx[0]])
        if not excl:
            continue
        if a not in shared_keys:
            if len(excl) > 1 or len(lits[excl[0]]) > 1:
                model.add_at_most_one([v for j in excl for v in lits[j]])
            continue
        flag = model.new_bool_var("")
        flags[a] = nc + len(flag_vars)
        flag_vars.append(flag)
        model.add(cp_model.LinearExpr.sum([v for j in excl for v in lits[j]]) == flag)
        links.append((flag, excl))
    for clique in _cell_cliques(ctx, cands, np.flatnonzero(~cands.exclusive), flags):
        model.add_at_most_one([v for j in clique for v in (lits[j] if j < nc else [flag_vars[j - nc]])])
    return links


def _solver(time_limit_s: float, seed: int, size: int) -> tuple[cp_model.CpSolver, float]:
    """A CP-SAT solver set up as the module docstring says, and its wall-clock safety limit."""
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.random_seed = int(seed)
    params.num_workers = CPSAT_WORKERS
    params.interleave_search = CPSAT_WORKERS > 1
    params.max_deterministic_time = float(time_limit_s)
    wall = wall_clock_limit_s(time_limit_s)
    params.max_time_in_seconds = wall
    params.catch_sigint_signal = False  # Ctrl-C is the caller's: see _solve_interruptibly
    if size > LARGE_MODEL:
        params.cp_model_probing_level = 0  # probing a large model uses up the whole time limit
    return solver, wall


def _run(solver: cp_model.CpSolver, model: cp_model.CpModel, wall: float, what: str,
         strikes: list[str] | None = None) -> cp_model.CpSolverStatus:
    """Solve, warn when the wall-clock safety limit struck first (and add `what` to `strikes`, which the compile
    report shows), log; the CP-SAT status."""
    status = _solve_interruptibly(solver, model)
    if solver.wall_time >= 0.99 * wall:
        if strikes is not None:
            strikes.append(what)
        logger.warning(
            "CP-SAT stopped at its wall-clock safety limit (%.1f s), before its deterministic "
            "limit; this result may not reproduce",
            wall,
        )
    logger.info(
        "%s CP-SAT: %s after %.2f s (deterministic time %.2f)",
        what,
        solver.status_name(status),
        solver.wall_time,
        solver.deterministic_time,
    )
    return status


def _lookup(cands: _Candidates) -> dict[tuple[int, int, int, int, int], int]:
    """(pattern, group, index, row, col) -> candidate index."""
    return {
        (int(a), int(b), int(c), int(d), int(e)): j
        for j, (a, b, c, d, e) in enumerate(
            zip(cands.pattern, cands.group, cands.index, cands.row, cands.col, strict=True)
        )
    }


def _cpsat(
    ctx: _Context,
    cands: _Candidates,
    hint: Sequence[Loc] | None,
    time_limit_s: float,
    seed: int,
) -> tuple[str, list[Loc] | None, float]:
    """Solve the aggregated CP-SAT model: (CP-SAT status, locations or None, bound in uS)."""
    model = cp_model.CpModel()
    nc = cands.size
    x = [model.new_bool_var(f"x{j}") for j in range(nc)]
    by_pattern = np.argsort(cands.pattern, kind="stable")
    for idx in np.split(by_pattern, np.flatnonzero(np.diff(cands.pattern[by_pattern])) + 1):
        p = int(cands.pattern[idx[0]])
        model.add(cp_model.LinearExpr.sum([x[j] for j in idx.tolist()]) == ctx.k[p])
    # Exclusive candidates: at most one per array, and nothing else on an array holding one.
    links = _no_overlap(model, ctx, cands, [[v] for v in x])
    model.minimize(cp_model.LinearExpr.weighted_sum(x, cands.cost.tolist()))
    if hint is not None:
        lookup = _lookup(cands)
        keys = [(ctx.problem.items[i].pattern, *loc) for i, loc in enumerate(hint)]
        on = {lookup[key] for key in keys}
        for j in range(nc):
            model.add_hint(x[j], j in on)
        for flag_var, excl in links:
            model.add_hint(flag_var, any(j in on for j in excl))
    solver, wall = _solver(time_limit_s, seed, nc)
    status = _run(solver, model, wall, "placement", ctx.wall_strikes)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, None, -math.inf
    values = solver.response_proto.solution
    picked = [
        (
            int(cands.pattern[j]),
            (int(cands.group[j]), int(cands.index[j]), int(cands.row[j]), int(cands.col[j])),
        )
        for j in range(nc)
        if values[x[j].index]
    ]
    bound = math.ceil(solver.best_objective_bound - 1e-6) / ctx.scale
    return name, _assign_locs(ctx, picked), bound


def _solve_interruptibly(solver: cp_model.CpSolver, model: cp_model.CpModel) -> cp_model.CpSolverStatus:
    """`solver.solve(model)` in a worker thread, so that this thread still runs Python's signal handlers.

    CP-SAT would otherwise hold this thread for its whole time limit: a Ctrl-C
    (or a SIGTERM turned into an exception by the CLI) would wait for it, and
    CP-SAT's own SIGINT handler would swallow the Ctrl-C and let the compile
    finish as if nothing happened. Here the exception stops the search and is
    raised again once the worker has returned.
    """
    return run_interruptibly(lambda: solver.solve(model), solver.stop_search, "leac-cp-sat")
