"""Tests of lea_compiler.placement: cost maps, the exact solver and the baselines.

The reference is a brute-force solver in this file that enumerates every
assignment of items to non-overlapping regions on tiny chips, with costs from
`item_cost` (computed directly from the stuck map, independently of the
vectorised `cost_maps`).
"""

from __future__ import annotations

import inspect
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lea_compiler.placement as placement
import lea_compiler.placement.context as placement_context
import lea_compiler.placement.costs as placement_costs
import lea_compiler.placement.cpsat as placement_cpsat
from lea_compiler.chip import STUCK_HIGH, STUCK_LOW, Array, Chip, Defect, synth_chip
from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.placement import (
    PLACERS,
    Item,
    Pattern,
    Placement,
    PlacementProblem,
    Region,
    cost_maps,
    greedy_placement,
    item_cost,
    random_placement,
    solve_placement,
)

LEVELS = (133.0, 167.0, 200.0, 233.0)


# --------------------------------------------------------------------------
# Builders and the brute-force reference


def make_chip(
    rng: np.random.Generator,
    shapes: list[tuple[int, int]],
    rate: float,
    ids: list[int] | None = None,
    inside: bool = False,
) -> Chip:
    """Arrays of the given shapes; each device stuck with probability `rate`.

    Stuck devices are high or low at random; some get a measured conductance,
    inside the target range when `inside` (so the level terms are exercised).
    """
    ids = ids if ids is not None else list(range(len(shapes)))
    arrays = tuple(Array(i, r, c) for i, (r, c) in zip(ids, shapes, strict=True))
    defects = []
    for a in arrays:
        for r in range(a.rows):
            for c in range(a.cols):
                if rng.random() < rate:
                    state = STUCK_HIGH if rng.random() < 0.5 else STUCK_LOW
                    g = None
                    if rng.random() < 0.4:
                        g = (
                            float(rng.choice([150.0, 180.0, 220.0]))
                            if inside
                            else (
                                float(rng.uniform(400, 900)) if state == STUCK_HIGH else float(rng.uniform(0.5, 60.0))
                            )
                        )
                    defects.append(Defect(a.id, r, c, state, g))
    return Chip(arrays=arrays, defects=tuple(defects))


def make_problem(
    rng: np.random.Generator, chip: Chip, shapes: list[tuple[int, int]], copies: list[int]
) -> PlacementProblem:
    patterns = tuple(Pattern(f"p{i}", rng.choice(LEVELS, size=shape)) for i, shape in enumerate(shapes))
    items = tuple(Item(f"p{i}/c{c}", i) for i, k in enumerate(copies) for c in range(k))
    return PlacementProblem(patterns, items, chip)


def all_regions(problem: PlacementProblem, item: int) -> list[Region]:
    r, c = problem.patterns[problem.items[item].pattern].target_uS.shape
    return [
        Region(a.id, y, x) for a in problem.chip.arrays for y in range(a.rows - r + 1) for x in range(a.cols - c + 1)
    ]


def cells(problem: PlacementProblem, item: int, region: Region) -> set[tuple[int, int, int]]:
    r, c = problem.patterns[problem.items[item].pattern].target_uS.shape
    return {(region.array, region.row + u, region.col + v) for u in range(r) for v in range(c)}


def brute_force(problem: PlacementProblem) -> float | None:
    """The optimum over every assignment of items to non-overlapping regions (None if none)."""
    n = len(problem.items)
    options = []
    for i in range(n):
        options.append([(item_cost(problem, i, reg), cells(problem, i, reg)) for reg in all_regions(problem, i)])
    best = math.inf

    def dfs(i: int, used: set[tuple[int, int, int]], total: float) -> None:
        nonlocal best
        if i == n:
            best = min(best, total)
            return
        for cost, cover in options[i]:
            if used.isdisjoint(cover):
                dfs(i + 1, used | cover, total + cost)

    dfs(0, set(), 0.0)
    return None if best == math.inf else best


def check_valid(problem: PlacementProblem, result: Placement) -> None:
    """Regions inside their arrays, no overlaps (occupancy grid), costs recomputed directly."""
    assert len(result.regions) == len(problem.items) == len(result.costs_uS)
    grids = {a.id: np.zeros((a.rows, a.cols), dtype=np.int64) for a in problem.chip.arrays}
    for i, reg in enumerate(result.regions):
        r, c = problem.patterns[problem.items[i].pattern].target_uS.shape
        arr = problem.chip.array(reg.array)
        assert 0 <= reg.row and reg.row + r <= arr.rows
        assert 0 <= reg.col and reg.col + c <= arr.cols
        grids[reg.array][reg.row : reg.row + r, reg.col : reg.col + c] += 1
        assert result.costs_uS[i] == pytest.approx(item_cost(problem, i, reg), abs=1e-9)
    assert all(int(g.max(initial=0)) <= 1 for g in grids.values())
    assert result.objective_uS == pytest.approx(sum(result.costs_uS), abs=1e-9)
    assert result.bound_uS <= result.objective_uS + 1e-9
    assert 0.0 <= result.gap <= 1.0
    if result.status == "OPTIMAL":
        assert result.gap == 0.0


def tolerance(problem: PlacementProblem) -> float:
    """Integer scaling: costs go to the solvers in whole nS (1e-3 uS) per item."""
    return len(problem.items) * 1e-3 + 1e-9


def random_instance(seed: int, min_fill: float = 0.0) -> PlacementProblem:
    """A tiny random instance whose brute force stays cheap (<= 40,000 leaves).

    `min_fill` asks for copies covering at least that share of the chip's devices.
    """
    rng = np.random.default_rng(seed)
    while True:
        n_arrays = int(rng.integers(2, 4))
        arrays = [[(3, 4), (4, 4), (4, 3), (3, 3)][int(rng.integers(4))] for _ in range(n_arrays)]
        chip = make_chip(rng, arrays, rate=float(rng.uniform(0.1, 0.35)), inside=seed % 5 == 0)
        n_patterns = int(rng.integers(1, 4))
        shapes = [[(2, 2), (1, 3), (2, 3), (3, 1), (1, 2), (2, 1)][int(rng.integers(6))] for _ in range(n_patterns)]
        copies = [int(rng.integers(1, 3)) for _ in range(n_patterns)]
        while sum(copies) > 4:
            copies[int(np.argmax(copies))] -= 1
        if sum(copies) < 2:
            copies[0] += 1
        problem = make_problem(rng, chip, shapes, copies)
        leaves = math.prod(len(all_regions(problem, i)) for i in range(len(problem.items)))
        area = sum(r * c for r, c in (problem.patterns[it.pattern].target_uS.shape for it in problem.items))
        if leaves <= 40_000 and area >= min_fill * chip.device_count:
            return problem


# --------------------------------------------------------------------------
# Cost maps


def naive_maps(problem: PlacementProblem, pattern: int, array_id: int) -> np.ndarray:
    target = problem.patterns[pattern].target_uS
    r, c = target.shape
    arr = problem.chip.array(array_id)
    state, g = problem.chip.stuck_map(array_id)
    out = np.zeros((arr.rows - r + 1, arr.cols - c + 1))
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            total = 0.0
            for u in range(r):
                for v in range(c):
                    if state[y + u, x + v] != 0:
                        total += abs(g[y + u, x + v] - target[u, v])
            out[y, x] = total
    return out


@st.composite
def chips_and_patterns(draw: st.DrawFn) -> PlacementProblem:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_arrays = draw(st.integers(1, 3))
    shapes = [(draw(st.integers(1, 7)), draw(st.integers(1, 7))) for _ in range(n_arrays)]
    chip = make_chip(rng, shapes, rate=draw(st.floats(0.0, 0.6)), inside=draw(st.booleans()))
    patterns = []
    for k in range(draw(st.integers(1, 4))):
        r, c = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        kind = draw(st.sampled_from(["levels", "continuous", "wide"]))
        if kind == "levels":
            target = rng.choice(LEVELS, size=(r, c))
        elif kind == "continuous":  # more distinct values than MAX_LEVEL_TERMS when large
            target = rng.uniform(5.0, 1000.0, size=(r, c))
        else:  # far outside the stuck conductances too
            target = rng.choice([1.0, 2000.0, 133.0], size=(r, c))
        patterns.append(Pattern(f"q{k}", target))
    return PlacementProblem(tuple(patterns), (), chip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chips_and_patterns(), st.sampled_from([0, placement_costs._GATHER_COST, 10**9]))
def test_cost_maps_equal_a_naive_loop(problem: PlacementProblem, gather_cost: int) -> None:
    # gather_cost 0 forces the gathered-window product, 10**9 the strip product.
    saved = placement_costs._GATHER_COST
    placement_costs._GATHER_COST = gather_cost
    try:
        maps = cost_maps(problem)
    finally:
        placement_costs._GATHER_COST = saved
    for p in range(len(problem.patterns)):
        for a in problem.chip.arrays:
            got = maps.of(p, a.id)
            r, c = problem.patterns[p].target_uS.shape
            if r > a.rows or c > a.cols:
                assert got is None
                continue
            assert got is not None
            np.testing.assert_allclose(got, naive_maps(problem, p, a.id), rtol=1e-12, atol=1e-9)


def test_cost_maps_many_distinct_targets_use_direct_windows() -> None:
    rng = np.random.default_rng(3)
    chip = make_chip(rng, [(9, 9), (9, 9)], rate=0.3, inside=True)
    target = rng.uniform(100.0, 300.0, size=(6, 6))  # 36 distinct values > MAX_LEVEL_TERMS
    assert np.unique(target).size > placement.MAX_LEVEL_TERMS
    problem = PlacementProblem((Pattern("x", target),), (), chip)
    maps = cost_maps(problem)
    for a in chip.arrays:
        got = maps.of(0, a.id)
        assert got is not None
        np.testing.assert_allclose(got, naive_maps(problem, 0, a.id), atol=1e-9)


def test_cost_maps_of_a_defect_free_chip_are_exactly_zero() -> None:
    chip = synth_chip(arrays=3, rows=6, cols=5, stuck_high=0.0, stuck_low=0.0, seed=1)
    rng = np.random.default_rng(0)
    problem = make_problem(rng, chip, [(2, 3), (6, 5)], [1, 1])
    maps = cost_maps(problem)
    for p in range(2):
        for block in maps.maps[p]:
            assert block is not None and not block.any()


def test_item_cost_checks_its_arguments() -> None:
    rng = np.random.default_rng(0)
    chip = make_chip(rng, [(3, 3)], rate=0.5)
    problem = make_problem(rng, chip, [(2, 2)], [1])
    with pytest.raises(UsageError, match="does not fit"):
        item_cost(problem, 0, Region(0, 2, 0))
    with pytest.raises(UsageError, match="no item"):
        item_cost(problem, 1, Region(0, 0, 0))
    with pytest.raises(UsageError):
        item_cost(problem, 0, Region(7, 0, 0))


# --------------------------------------------------------------------------
# The exact solver against brute force


INSTANCES = [(seed, 0.0) for seed in range(70)] + [(seed, 0.5) for seed in range(1000, 1030)]
"""(seed, minimum fill): 70 random instances and 30 tight ones (at least half the devices used)."""


@pytest.fixture(scope="module")
def solved() -> list[tuple[PlacementProblem, float | None, Placement | None]]:
    out = []
    for seed, fill in INSTANCES:
        problem = random_instance(seed, fill)
        best = brute_force(problem)
        try:
            result = solve_placement(problem, time_limit_s=5.0, seed=0)
        except DoesNotFitError:
            result = None
        out.append((problem, best, result))
    return out


def test_solver_matches_brute_force(
    solved: list[tuple[PlacementProblem, float | None, Placement | None]],
) -> None:
    methods: Counter[str] = Counter()
    for problem, best, result in solved:
        if best is None:
            assert result is None  # no packing exists: DoesNotFitError
            continue
        assert result is not None
        check_valid(problem, result)
        assert result.status == "OPTIMAL", result
        assert result.objective_uS == pytest.approx(best, abs=tolerance(problem))
        assert result.bound_uS <= best + 1e-9  # a valid bound on the true optimum
        methods[result.method.split("(")[0]] += 1
    # Both paths are exercised: bound-meeting heuristics and a CP-SAT proof.
    assert methods["cpsat-exhaustive"] >= 2, methods
    assert sum(v for k, v in methods.items() if k.endswith("meets-bound")) >= 3, methods


@pytest.fixture
def no_early_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every bound look unmet, so that every instance goes through CP-SAT."""
    monkeypatch.setattr(placement_context._Context, "meets", lambda self, objective, bound: False)


def test_cpsat_model_matches_brute_force(
    solved: list[tuple[PlacementProblem, float | None, Placement | None]], no_early_exit: None
) -> None:
    for problem, best, _ in solved:
        if best is None:
            continue
        result = solve_placement(problem, time_limit_s=5.0)
        check_valid(problem, result)
        assert result.method in ("cpsat-exhaustive", "assignment"), result.method
        assert result.status == "OPTIMAL"
        assert result.objective_uS == pytest.approx(best, abs=tolerance(problem))
        assert result.bound_uS <= best + 1e-9


def test_baselines_never_beat_the_solver(
    solved: list[tuple[PlacementProblem, float | None, Placement | None]],
) -> None:
    for problem, best, result in solved[:40]:
        for placer in (greedy_placement, random_placement):
            try:
                baseline = placer(problem, time_limit_s=5.0, seed=1)
            except DoesNotFitError:
                continue  # a heuristic may miss a tight packing
            assert best is not None and result is not None
            check_valid(problem, baseline)
            assert baseline.status == "HEURISTIC"
            assert baseline.objective_uS >= result.objective_uS - tolerance(problem)
            assert baseline.bound_uS <= best + 1e-9


def test_restricted_candidates_keep_a_valid_bound(monkeypatch: pytest.MonkeyPatch, no_early_exit: None) -> None:
    monkeypatch.setattr(placement_cpsat, "CANDIDATE_BUDGET", 6)
    restricted = 0
    for seed in range(40):
        problem = random_instance(seed)
        best = brute_force(problem)
        try:
            result = solve_placement(problem, time_limit_s=5.0)
        except DoesNotFitError:
            continue  # a restricted model may miss a packing; that is allowed
        assert best is not None
        check_valid(problem, result)
        assert result.bound_uS <= best + 1e-9
        assert result.objective_uS >= best - tolerance(problem)
        if result.method.startswith("cpsat-restricted"):
            restricted += 1
            assert result.status == "FEASIBLE"  # no bound of its own; the relaxation is not met
    assert restricted >= 20


def test_assignment_formulation_matches_brute_force() -> None:
    # 2 x 3 copies on 3 x 4 arrays: two can never share one (2 + 2 > 3 rows, 3 + 3 > 4 cols).
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        chip = make_chip(rng, [(3, 4), (3, 5), (3, 4), (3, 5)][: 3 + seed % 2], rate=0.3)
        problem = make_problem(rng, chip, [(2, 3), (3, 3)][: 1 + seed % 2], [2, 1][: 1 + seed % 2])
        result = solve_placement(problem)
        assert result.method == "assignment"
        assert result.status == "OPTIMAL" and result.gap == 0.0
        check_valid(problem, result)
        best = brute_force(problem)
        assert best is not None
        assert result.objective_uS == pytest.approx(best, abs=tolerance(problem))


def test_mixed_array_sizes_and_sparse_ids() -> None:
    rng = np.random.default_rng(11)
    chip = make_chip(rng, [(2, 5), (4, 3), (3, 3)], rate=0.3, ids=[7, 2, 40])
    problem = make_problem(rng, chip, [(1, 4), (3, 2), (2, 2)], [1, 1, 2])
    best = brute_force(problem)
    result = solve_placement(problem)
    check_valid(problem, result)
    assert best is not None
    assert result.objective_uS == pytest.approx(best, abs=tolerance(problem))
    # The 1 x 4 copy only fits array 7.
    assert result.regions[0].array == 7


def test_defect_free_chip_costs_nothing() -> None:
    chip = synth_chip(arrays=4, rows=8, cols=8, stuck_high=0.0, stuck_low=0.0, seed=0)
    problem = make_problem(np.random.default_rng(0), chip, [(3, 5), (4, 2)], [3, 2])
    for name, placer in PLACERS.items():
        result = placer(problem, time_limit_s=5.0, seed=0)
        check_valid(problem, result)
        assert result.objective_uS == 0.0, name
        assert result.gap == 0.0
    assert solve_placement(problem).status == "OPTIMAL"


def test_greedy_breaks_ties_by_array_id_row_col() -> None:
    chip = Chip(arrays=(Array(5, 4, 4), Array(2, 4, 4)))
    problem = make_problem(np.random.default_rng(0), chip, [(2, 4)], [3])
    result = greedy_placement(problem)
    assert result.regions == (Region(2, 0, 0), Region(2, 2, 0), Region(5, 0, 0))


def test_greedy_takes_cheapest_free_region_in_pattern_order() -> None:
    # Array 0 is clean, array 1 has a stuck device: both copies of p0 go to array 0.
    chip = Chip(arrays=(Array(0, 2, 2), Array(1, 2, 2)), defects=(Defect(1, 0, 0, STUCK_HIGH),))
    problem = make_problem(np.random.default_rng(0), chip, [(1, 2)], [3])
    result = greedy_placement(problem)
    assert result.regions[:2] == (Region(0, 0, 0), Region(0, 1, 0))
    assert result.regions[2] == Region(1, 1, 0)
    assert result.costs_uS[:2] == (0.0, 0.0) and result.costs_uS[2] == 0.0


def test_empty_problem() -> None:
    chip = Chip(arrays=(Array(0, 2, 2),))
    result = solve_placement(PlacementProblem((), (), chip))
    assert result.regions == () and result.status == "OPTIMAL" and result.objective_uS == 0.0


# --------------------------------------------------------------------------
# Does not fit


def test_not_enough_devices() -> None:
    chip = Chip(arrays=(Array(0, 3, 3), Array(1, 3, 3)))
    problem = make_problem(np.random.default_rng(0), chip, [(2, 2)], [5])
    for placer in PLACERS.values():
        with pytest.raises(DoesNotFitError, match="need 20 devices and the chip has 18 devices"):
            placer(problem)


def test_copy_larger_than_every_array() -> None:
    chip = Chip(arrays=(Array(0, 3, 3), Array(1, 2, 5)))
    problem = make_problem(np.random.default_rng(0), chip, [(4, 1)], [1])
    with pytest.raises(DoesNotFitError, match=r"\(4 x 1\) fits in no array.*largest copy is 4 x 1"):
        solve_placement(problem)
    with pytest.raises(DoesNotFitError, match=r"largest array 2 x 5 \(array 1\)"):
        solve_placement(problem)


def test_not_enough_arrays() -> None:
    chip = Chip(arrays=tuple(Array(i, 3, 4) for i in range(3)))
    problem = make_problem(np.random.default_rng(0), chip, [(2, 3)], [4])
    with pytest.raises(DoesNotFitError, match="need 4 arrays and the chip has 3"):
        solve_placement(problem)


def test_no_packing_exists_though_the_area_suffices() -> None:
    # Three 2 x 4 copies on one 4 x 6 array: 24 devices each way, but no packing.
    chip = Chip(arrays=(Array(0, 4, 6),))
    problem = make_problem(np.random.default_rng(0), chip, [(2, 4)], [3])
    with pytest.raises(DoesNotFitError, match="CP-SAT proved that no non-overlapping packing"):
        solve_placement(problem)
    for placer in (greedy_placement, random_placement):
        with pytest.raises(DoesNotFitError, match="no packing found"):
            placer(problem)


# --------------------------------------------------------------------------
# Determinism, API


def test_same_seed_same_placement() -> None:
    for seed in (3, 17, 42):
        problem = random_instance(seed)
        for placer in PLACERS.values():
            try:
                first = placer(problem, time_limit_s=5.0, seed=seed)
            except DoesNotFitError:
                continue
            second = placer(problem, time_limit_s=5.0, seed=seed)
            assert first.regions == second.regions
            assert first.objective_uS == second.objective_uS
            assert first.method == second.method


def test_tight_chip_goes_through_cpsat_deterministically() -> None:
    # 75% full: the heuristics cannot prove optimality, so CP-SAT decides.
    rng = np.random.default_rng(5)
    chip = make_chip(rng, [(4, 6), (4, 6)], rate=0.25)
    problem = make_problem(rng, chip, [(2, 3), (2, 2), (1, 3)], [3, 2, 2])
    first = solve_placement(problem, seed=7)
    second = solve_placement(problem, seed=7)
    check_valid(problem, first)
    assert first.regions == second.regions
    assert first.status == "OPTIMAL"


def test_random_placement_counts_samples_and_validates_them() -> None:
    problem = random_instance(8)
    result = random_placement(problem, samples=7)
    assert result.method == "random(7)"
    with pytest.raises(UsageError):
        random_placement(problem, samples=0)


def test_placers_share_one_signature() -> None:
    assert set(PLACERS) == {"cpsat", "greedy", "random"}
    for placer in PLACERS.values():
        params = inspect.signature(placer).parameters
        assert params["time_limit_s"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["seed"].kind is inspect.Parameter.KEYWORD_ONLY


def test_problem_validation() -> None:
    chip = Chip(arrays=(Array(0, 2, 2),))
    with pytest.raises(UsageError, match="refers to pattern 1"):
        PlacementProblem((Pattern("a", np.ones((1, 1))),), (Item("x", 1),), chip)
    with pytest.raises(UsageError, match="2-D"):
        Pattern("bad", np.ones(3))
    with pytest.raises(UsageError, match="non-finite"):
        Pattern("bad", np.array([[np.nan]]))
    with pytest.raises(UsageError, match="time limit"):
        solve_placement(PlacementProblem((), (), chip), time_limit_s=0)
    # Patterns keep a read-only float64 copy.
    source = np.ones((1, 2), dtype=np.float32)
    pattern = Pattern("a", source)
    source[0, 0] = 5
    assert pattern.target_uS.dtype == np.float64 and pattern.target_uS[0, 0] == 1.0
    assert not pattern.target_uS.flags.writeable
