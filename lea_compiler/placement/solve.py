"""`solve_placement`: the placer behind `leac compile --placer cpsat`, optimal or with a proven gap.

(a) Assignment: when no two items can share any array (every pattern is
    exclusive everywhere), the min-cost flow of the combinatorial bound
    (`lea_compiler.placement.bounds`) is the whole problem and its solution
    is optimal: status OPTIMAL, gap 0, method "assignment".
(b) Otherwise: heuristics first (the greedy baseline, the flow's placement
    of the exclusive patterns completed greedily, greedy by decreasing area,
    and, if all those fail, a cost-blind first-fit packing); then the
    Lagrangian dual. If the best solution meets the best bound it is
    optimal and is returned ("<heuristic>-meets-bound"). Else CP-SAT over
    candidate regions (`lea_compiler.placement.cpsat`), hinted with the best
    heuristic solution: status OPTIMAL when proven, else FEASIBLE with the
    better of its bound (when the candidates are exhaustive) and the others.
"""

from __future__ import annotations

import logging
import math
import time

from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.placement.bounds import _combinatorial_bound, _Dual, _lagrangian
from lea_compiler.placement.context import Loc, _capacity, _Context
from lea_compiler.placement.cpsat import _candidates, _cpsat
from lea_compiler.placement.greedy import _greedy
from lea_compiler.placement.latency import second_stage
from lea_compiler.placement.problem import Placement, PlacementProblem

logger = logging.getLogger("lea_compiler.placement")  # the package's name, as before the split


def solve_placement(problem: PlacementProblem, *, time_limit_s: float = 10.0, seed: int = 0) -> Placement:
    """Place every copy with OR-Tools: the minimum mapping error (`_min_error`), then, with the objective
    `latency` or `balanced`, the least analog time within that error (`latency.second_stage`, CP-SAT with its
    own deterministic budget of `time_limit_s`).

    Args:
        problem: The placement problem.
        time_limit_s: CP-SAT's deterministic time limit of each stage (about seconds; the wall-clock safety
            limit is `WALL_CLOCK_FACTOR` times it plus 5 s); it also scales the Lagrangian iteration budget.
        seed: CP-SAT's random seed.

    Returns:
        The placement: status "OPTIMAL" when its mapping error is proven optimal (to n_items / scale uS, 1 nS
        per copy by default), else "FEASIBLE" with its gap; its analog time with its bound and gap.

    Raises:
        UsageError: the time limit is not positive.
        DoesNotFitError: the copies cannot all be placed (proven, or no packing found in time).
    """
    if not time_limit_s > 0:
        raise UsageError(f"the time limit must be positive, not {time_limit_s!r}")
    t0 = time.perf_counter()
    ctx = _Context(problem)
    first = _min_error(ctx, time_limit_s, seed, t0)
    if problem.objective == "error" or not problem.items:
        return first
    return second_stage(ctx, first, t0, exact=True, time_limit_s=time_limit_s, seed=seed)


def _min_error(ctx: _Context, time_limit_s: float, seed: int, t0: float) -> Placement:
    """The first stage, the minimum mapping error, optimally or with a proven gap.

    Formulation (see the module docstring): the exact assignment (min-cost
    flow) when no two copies can share an array; otherwise greedy heuristics
    and a Lagrangian bound, returned at once when they meet, else CP-SAT over
    the candidate regions that survive reduced-cost pruning (restricted when
    more than `CANDIDATE_BUDGET` remain).
    """
    problem = ctx.problem
    if not problem.items:
        return ctx.placement([], 0.0, "OPTIMAL", "empty", t0)
    bound, flow_locs = _combinatorial_bound(ctx)
    bound = ctx.round_bound(bound)
    if flow_locs is not None and all(ctx.global_excl[p] for p in ctx.used):
        logger.info("placement: no two copies can share an array; assignment by min-cost flow")
        locs = [flow_locs[i] for i in range(ctx.n_items)]
        return ctx.placement(locs, bound, "OPTIMAL", "assignment", t0)

    heuristics: list[tuple[float, str, list[Loc]]] = []
    plain = _greedy(ctx)
    if not isinstance(plain, int):
        heuristics.append((ctx.objective(plain), "greedy", plain))
    if flow_locs:
        seeded = _greedy(ctx, flow_locs)
        if not isinstance(seeded, int):
            heuristics.append((ctx.objective(seeded), "assignment+greedy", seeded))
    if len({ctx.shapes[p][0] * ctx.shapes[p][1] for p in ctx.used}) > 1:
        sized = _greedy(ctx, largest_first=True)
        if not isinstance(sized, int):
            heuristics.append((ctx.objective(sized), "greedy-largest-first", sized))
    if not heuristics:
        packed = _greedy(ctx, largest_first=True, first_fit=True)
        if not isinstance(packed, int):
            heuristics.append((ctx.objective(packed), "first-fit", packed))
    heuristics.sort(key=lambda h: h[0])
    dual: _Dual | None = None
    if heuristics:
        ub, name, ub_locs = heuristics[0]
        if ctx.meets(ub, bound):
            return ctx.placement(ub_locs, bound, "OPTIMAL", f"{name}-meets-bound", t0)
        dual = _lagrangian(ctx, ub, ub_locs, name, time_limit_s)
        bound = max(bound, ctx.round_bound(dual.bound_uS))
        if dual.ub_uS < ub:
            heuristics.insert(0, (dual.ub_uS, dual.ub_name, dual.ub_locs))
        ub, name, ub_locs = heuristics[0]
        if ctx.meets(ub, bound):
            return ctx.placement(ub_locs, bound, "OPTIMAL", f"{name}-meets-bound", t0)
    ub_uS = heuristics[0][0] if heuristics else math.inf
    cands, exhaustive, description = _candidates(ctx, ub_uS, dual, [h[2] for h in heuristics])
    logger.info(
        "placement: CP-SAT over %d candidate (pattern, region) pairs (%s), %d patterns, "
        "%d copies; bound %.6g uS, best heuristic %.6g uS",
        cands.size,
        description,
        len(ctx.used),
        ctx.n_items,
        bound,
        ub_uS,
    )
    hint = heuristics[0][2] if heuristics else None
    status, found, cp_bound = _cpsat(ctx, cands, hint, time_limit_s, seed)
    method = "cpsat-exhaustive" if exhaustive else f"cpsat-restricted({description})"
    if found is None:
        if status == "INFEASIBLE" and exhaustive:
            raise DoesNotFitError(
                f"cannot place: CP-SAT proved that no non-overlapping packing exists; {_capacity(ctx)}"
            )
        if heuristics:  # CP-SAT can run out of time in presolve, before it takes the hint
            ub, name, ub_locs = heuristics[0]
            status_out = "OPTIMAL" if ctx.meets(ub, bound) else "FEASIBLE"
            return ctx.placement(ub_locs, bound, status_out, f"{name} ({method}: {status})", t0)
        raise DoesNotFitError(
            f"no non-overlapping packing found (CP-SAT: {status} within its limit"
            f"{'' if exhaustive else ', over restricted candidates'}; not proven impossible); "
            f"{_capacity(ctx)}"
        )
    if exhaustive:
        bound = max(bound, ctx.round_bound(cp_bound))
    objective = ctx.objective(found)
    proven = (exhaustive and status == "OPTIMAL") or ctx.meets(objective, bound)
    return ctx.placement(found, bound, "OPTIMAL" if proven else "FEASIBLE", method, t0)
