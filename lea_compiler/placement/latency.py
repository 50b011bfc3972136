"""Latency-aware placement: after the mapping error, spread the copies so that a layer's reads overlap.

Reads of one layer on one array serialise; on different arrays they overlap (lea_compiler/analog_time.py). The
latency proxy of a placement is

    T = sum over layers l of  w_l x max over arrays a of  sum_{items i of l on a} t_i

with t_i item i's read time per application (`Item.read_ns`) and w_l the layer's applications per sample
(`PlacementProblem.layer_weights`). Objectives (`PlacementProblem.objective`):

  * error: the mapping error E alone (today's placers, unchanged).
  * latency: lexicographic. First the placer's minimum-error placement exactly as with `error`, of error E1;
    then T is minimised over the placements of error at most E1 (so the mapping error never increases).
  * balanced: as latency, with the error allowed up to E1 x (1 + `BALANCED_TOLERANCE`).

The second stage, with the error budget B (E1 or E1 x 1.05):

  1. Spread (every placer): a local search from the first stage's placement. While it can, it takes the
     layer whose busiest array is the most expensive (w_l x load), and moves one of that layer's items off
     the busiest array a* to the free region, on another array b, that leaves b's load of the layer lowest
     (then the cheapest region, the lowest array id, row, col), among regions whose cost keeps the total
     within B and where load_b + t_i < load_a*. Each move makes the layer's sorted loads lexicographically
     smaller and changes no other layer's, so the search ends; it is capped at `SPREAD_MOVES_PER_ITEM` moves
     per item besides. Deterministic.
  2. CP-SAT (`solve_placement` only, when the spread does not meet the latency bound): the candidate regions
     of `cpsat._candidates` with the budget B as the cost limit (reduced-cost pruning keeps every region of
     every placement of error <= B), one Boolean x[c, j] per class c = (pattern, layer) and candidate j of
     its pattern (with the layer ensemble a pattern's copies are all of one layer, so c is the pattern; with
     the network ensemble each replica's copy is its own class), the same no-overlap cliques, and

         sum_j x[c, j] = copies of c;     sum cost_int[j] x[c, j] <= B_int
         M_l >= sum_{c of l, j on a} t_c x[c, j]   for every layer l and array a
         minimise sum_l w_l M_l

     hinted with the spread, over at most `LATENCY_CANDIDATES` candidates. It has its own deterministic budget,
     `LATENCY_TIME_SHARE` x `time_limit_s` (`max_deterministic_time`, one worker, a wall-clock safety limit of
     `WALL_CLOCK_FACTOR` times that plus 5 s). Its solution is taken when it is
     shorter and its true mapping error is within B (integer costs are floored); its bound is reported when
     the candidates were exhaustive.

The analog time bound reported is the better of CP-SAT's (exhaustive candidates only) and, per layer, the
P||Cmax bound of `analog_time.makespan_bound` (valid for every placement, whatever its error).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from ortools.sat.python import cp_model

from lea_compiler.analog_time import BALANCED_TOLERANCE
from lea_compiler.placement.context import Loc, _Context, _Latency, _Occupancy, _verify
from lea_compiler.placement.cpsat import _Candidates, _candidates, _lookup, _no_overlap, _run, _solver
from lea_compiler.placement.problem import Placement

logger = logging.getLogger("lea_compiler.placement")  # the package's name, as before the split

LATENCY_CANDIDATES = 10_000
"""Most (pattern, region) pairs the latency model may hold before its candidates are restricted (a fifth of the
first stage's `CANDIDATE_BUDGET`: the latency model has a variable per (class, candidate) and only the arrays
matter to the time; on the digits CNN at k = 6 the first stage's 50,000 took 31 s of wall time for 10 s of
deterministic time on the 2-core machine, near the wall-clock safety limit)."""
LATENCY_TIME_SHARE = 0.5
"""The second stage's CP-SAT deterministic time limit, as a share of `time_limit_s` (the first stage has all of
it): on the 2-core machine the latency model ran at 2.8 s of wall time per deterministic second (digits CNN,
k = 6, `balanced`), so at the full share it came within 10% of the wall-clock safety limit, whose strike would
make the placement non-reproducible."""
SPREAD_MOVES_PER_ITEM = 50
"""The spread's cap: at most this many moves per item (it ends long before on every problem measured)."""


def error_budget(ctx: _Context, error_uS: float) -> float:
    """The mapping error the second stage may spend: the first stage's, or 5% more with `balanced`."""
    return error_uS * (1.0 + BALANCED_TOLERANCE) if ctx.problem.objective == "balanced" else error_uS


def _slack(ctx: _Context, budget_uS: float) -> float:
    """Float tolerance on the budget (costs are summed in a different order)."""
    return 1e-9 * max(1.0, abs(budget_uS))


def spread(ctx: _Context, locs: Sequence[Loc], budget_uS: float) -> list[Loc]:
    """The spread local search (the module docstring, step 1) from `locs`, keeping the mapping error within
    `budget_uS`."""
    lat = ctx.latency
    locs = list(locs)
    if not lat.active:
        return locs
    occ = _Occupancy(ctx)
    for i, loc in enumerate(locs):
        occ.take(ctx.problem.items[i].pattern, loc)
    total = ctx.objective(locs)
    loads = lat.loads(locs)
    cap = SPREAD_MOVES_PER_ITEM * ctx.n_items
    for _ in range(cap):
        move = _best_move(ctx, lat, occ, locs, loads, budget_uS + _slack(ctx, budget_uS) - total)
        if move is None:
            break
        i, loc = move
        p = ctx.problem.items[i].pattern
        old = locs[i]
        total += ctx.cost(p, loc) - ctx.cost(p, old)
        occ.take(p, old, False)
        occ.take(p, loc)
        lay, t = int(lat.layer[i]), int(lat.read[i])
        loads[(lay, int(lat.array_id[old[0]][old[1]]))] -= t
        key = (lay, int(lat.array_id[loc[0]][loc[1]]))
        loads[key] = loads.get(key, 0) + t
        locs[i] = loc
    else:
        logger.warning("placement spread: stopped at its cap of %d moves", cap)
    return locs


def _best_move(ctx: _Context, lat: _Latency, occ: _Occupancy, locs: list[Loc], loads: dict[tuple[int, int], int],
               slack_uS: float) -> tuple[int, Loc] | None:
    """The first improving move, layers by decreasing weighted busiest load (module docstring), or None."""
    busiest: dict[int, tuple[int, int]] = {}  # layer -> (load, array id) of its busiest array, lowest id on ties
    for (lay, array), load in sorted(loads.items()):
        if lay not in busiest or load > busiest[lay][0]:
            busiest[lay] = (load, array)
    order = sorted(busiest, key=lambda lay: (-lat.weight[lay] * busiest[lay][0], lay))
    for lay in order:
        top, a_star = busiest[lay]
        members = [i for i in lat.members[lay]
                   if lat.array_id[locs[i][0]][locs[i][1]] == a_star and lat.read[i] > 0]
        members.sort(key=lambda i: (-int(lat.read[i]), i))
        for i in members:
            loc = _target(ctx, lat, occ, i, lay, top, a_star, loads, ctx.cost(ctx.problem.items[i].pattern,
                                                                           locs[i]) + slack_uS)
            if loc is not None:
                return i, loc
    return None


def _target(ctx: _Context, lat: _Latency, occ: _Occupancy, i: int, lay: int, top: int, a_star: int,
            loads: dict[tuple[int, int], int], max_cost: float) -> Loc | None:
    """Item i's best free region off array `a_star` (module docstring), or None."""
    p = ctx.problem.items[i].pattern
    t = int(lat.read[i])
    best: tuple[int, float, int, int, int] | None = None
    best_loc: Loc | None = None
    for g, ids in enumerate(lat.array_id):
        if not ctx.fits[p][g]:
            continue
        after = np.array([loads.get((lay, int(a)), 0) + t for a in ids], dtype=np.int64)
        arrays = np.flatnonzero((after < top) & (ids != a_star))
        if arrays.size == 0:
            continue
        m = ctx.maps.maps[p][g]
        assert m is not None
        ok = occ.free(p, g)[arrays] & (m[arrays] <= max_cost)
        masked = np.where(ok, m[arrays], np.inf).reshape(arrays.size, -1)
        arg = np.argmin(masked, axis=1)
        cost = masked[np.arange(arrays.size), arg]
        for k in np.flatnonzero(np.isfinite(cost)).tolist():
            y, x = np.unravel_index(int(arg[k]), m.shape[1:])
            key = (int(after[arrays[k]]), float(cost[k]), int(ids[arrays[k]]), int(y), int(x))
            if best is None or key < best:
                best, best_loc = key, (g, int(arrays[k]), int(y), int(x))
    return best_loc


def second_stage(ctx: _Context, first: Placement, t0: float, *, exact: bool, time_limit_s: float = 10.0,
                 seed: int = 0) -> Placement:
    """The placement of least analog time within the first stage's error budget (module docstring).

    Args:
        ctx: The problem's context.
        first: The first stage's (minimum-error) placement.
        t0: When the placer started (for `Placement.seconds`).
        exact: Run CP-SAT after the spread (`solve_placement`); else the spread alone (the baselines).
        time_limit_s: CP-SAT's deterministic time limit for this stage.
        seed: CP-SAT's random seed.

    Returns:
        The placement, its mapping-error fields those of the first stage's bound (status OPTIMAL only when
        its error meets that bound), its method the first stage's plus this stage's.
    """
    lat = ctx.latency
    start = ctx.locs_of(first)
    budget = error_budget(ctx, first.objective_uS)
    best = spread(ctx, start, budget)
    best_t = lat.time(best)
    how = "spread"
    cp_bound = 0
    if exact and best_t > lat.bound:
        cands, exhaustive, description = _candidates(ctx, budget, None, [start, best], LATENCY_CANDIDATES)
        status, found, bound = _cpsat_latency(ctx, cands, best, ctx.to_int(np.array(budget)).item(),
                                              LATENCY_TIME_SHARE * time_limit_s, seed)
        how = f"cpsat-{'exhaustive' if exhaustive else description}: {status}"
        if found is not None and lat.time(found) < best_t \
                and ctx.objective(found) <= budget + ctx.resolution + _slack(ctx, budget):
            best, best_t = found, lat.time(found)
        if exhaustive and found is not None:
            cp_bound = bound
    error = ctx.objective(best)
    if first.status == "HEURISTIC":
        status = "HEURISTIC"
    elif (first.status == "OPTIMAL" and error <= first.objective_uS + _slack(ctx, error)) \
            or ctx.meets(error, first.bound_uS):
        status = "OPTIMAL"
    else:
        status = "FEASIBLE"
    method = f"{first.method}; {ctx.problem.objective}: {how}"
    return ctx.placement(best, first.bound_uS, status, method, t0, analog_bound=cp_bound)


def _cpsat_latency(ctx: _Context, cands: _Candidates, hint: Sequence[Loc], budget_int: int, time_limit_s: float,
                   seed: int) -> tuple[str, list[Loc] | None, int]:
    """The latency model (module docstring, step 2): (CP-SAT status, locations or None, bound in integer units)."""
    lat = ctx.latency
    items = ctx.problem.items
    classes: dict[tuple[int, int], list[int]] = {}
    for i, it in enumerate(items):
        classes.setdefault((it.pattern, int(lat.layer[i])), []).append(i)
    keys = sorted(classes)
    of_pattern: dict[int, list[int]] = {}
    for c, (p, _) in enumerate(keys):
        of_pattern.setdefault(p, []).append(c)
    model = cp_model.CpModel()
    nc = cands.size
    lits: list[list[cp_model.IntVar]] = [[] for _ in range(nc)]
    pairs: list[tuple[int, int, cp_model.IntVar]] = []  # (class, candidate, literal)
    for j in range(nc):
        for c in of_pattern.get(int(cands.pattern[j]), []):
            v = model.new_bool_var(f"x{c}_{j}")
            lits[j].append(v)
            pairs.append((c, j, v))
    per_class: list[list[cp_model.IntVar]] = [[] for _ in keys]
    for c, _, v in pairs:
        per_class[c].append(v)
    for c, key in enumerate(keys):
        model.add(cp_model.LinearExpr.sum(per_class[c]) == len(classes[key]))
    _no_overlap(model, ctx, cands, lits)
    model.add(cp_model.LinearExpr.weighted_sum([v for _, _, v in pairs],
                                               [int(cands.cost[j]) for _, j, _ in pairs]) <= budget_int)
    read = [int(lat.read[classes[key][0]]) for key in keys]
    array_key = cands.group * (1 + int(cands.index.max(initial=0))) + cands.index
    top = [0] * len(lat.names)
    terms: dict[tuple[int, int], list[tuple[cp_model.IntVar, int]]] = {}
    for c, j, v in pairs:
        lay = keys[c][1]
        if lay >= 0 and read[c] > 0:
            terms.setdefault((lay, int(array_key[j])), []).append((v, read[c]))
    for c, key in enumerate(keys):
        if key[1] >= 0:
            top[key[1]] += read[c] * len(classes[key])
    busiest = [model.new_int_var(0, top[lay], f"M{lay}") for lay in range(len(lat.names))]
    for (lay, _), members in sorted(terms.items(), key=lambda kv: kv[0]):
        model.add(busiest[lay] >= cp_model.LinearExpr.weighted_sum([v for v, _ in members], [t for _, t in members]))
    model.minimize(cp_model.LinearExpr.weighted_sum(busiest, lat.weight))
    lookup = _lookup(cands)
    class_of = {key: c for c, key in enumerate(keys)}
    hinted = set()
    for i, (g, a, y, x) in enumerate(hint):
        p = items[i].pattern
        hinted.add((class_of[(p, int(lat.layer[i]))], lookup[(p, g, a, y, x)]))
    for c, j, v in pairs:
        model.add_hint(v, (c, j) in hinted)
    solver, wall = _solver(time_limit_s, seed, len(pairs))
    status = _run(solver, model, wall, "latency placement", ctx.wall_strikes)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, None, 0
    values = solver.response_proto.solution
    picked: dict[int, list[tuple[int, int, int, Loc]]] = {}
    for c, j, v in pairs:
        if values[v.index]:
            loc = (int(cands.group[j]), int(cands.index[j]), int(cands.row[j]), int(cands.col[j]))
            picked.setdefault(c, []).append((int(lat.array_id[loc[0]][loc[1]]), loc[2], loc[3], loc))
    locs: list[Loc | None] = [None] * ctx.n_items
    for c, key in enumerate(keys):
        for item, pick in zip(classes[key], sorted(picked.get(c, [])), strict=True):
            locs[item] = pick[3]
    result = [loc for loc in locs if loc is not None]
    _verify(ctx, result)
    return name, result, math.ceil(solver.best_objective_bound - 1e-6)
