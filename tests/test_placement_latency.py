"""Latency-aware placement (placement/latency.py, analog_time.py): the objectives against a brute force, the
mapping error never increasing, copies spreading, determinism, and the option's bad values."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import lea_compiler as leac
from lea_compiler.analog_time import (
    BALANCED_TOLERANCE,
    half_read_ns,
    makespan_bound,
    program_analog_time,
    read_ns,
)
from lea_compiler.backends.cost import estimate_cost
from lea_compiler.chip import Array, Chip, Periphery, save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.errors import UsageError
from lea_compiler.placement import PLACERS, Item, Pattern, Placement, PlacementProblem, solve_placement
from lea_compiler.placement import latency as placement_latency
from lea_compiler.program import Program
from tests.helpers import mlp_model
from tests.test_placement import all_regions, cells, check_valid, item_cost, random_instance, tolerance

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"
WEIGHTS = {"L0": 1.0, "L1": 3.0}


# --------------------------------------------------------------------------
# The arithmetic, by hand


def test_a_read_takes_the_mvm_and_one_conversion_round_per_adc_share() -> None:
    p = Periphery(t_mvm_ns=100.0, t_adc_ns=10.0, adcs_per_array=5)
    assert read_ns(p, 25) == 100 + 5 * 10  # 25 columns over 5 ADCs: 5 conversions each
    assert read_ns(p, 26) == 100 + 6 * 10
    assert read_ns(p, 25, reads=3) == 3 * 150
    # A grouped layer of 12 columns in 3 groups of 4: a block of columns 2..9 is read for groups 0, 1, 2 with
    # 2, 4 and 2 of its columns.
    one = Periphery(t_mvm_ns=100.0, t_adc_ns=10.0, adcs_per_array=1)
    assert half_read_ns(one, 2, 10, 12, groups=3) == (100 + 20) + (100 + 40) + (100 + 20)
    assert half_read_ns(one, 2, 10, 12) == 100 + 80


def test_the_makespan_bound_by_hand() -> None:
    assert makespan_bound([], 3) == 0.0
    assert makespan_bound([5.0, 1.0, 1.0], 3) == 5.0  # the longest read
    assert makespan_bound([4.0, 4.0, 4.0, 4.0], 2) == 8.0  # total over the arrays; and 2nd + 3rd longest
    assert makespan_bound([3.0, 3.0, 3.0], 2) == 6.0  # more reads than arrays: two of them share one
    assert makespan_bound([3.0, 3.0], 1) == 6.0


# --------------------------------------------------------------------------
# Against a brute force


def timed(problem: PlacementProblem, objective: str) -> PlacementProblem:
    """`problem` with every item in layer L(pattern mod 2), read time 100 ns + 10 ns per column."""
    items = tuple(dataclasses.replace(it, layer=f"L{it.pattern % 2}",
                                      read_ns=100.0 + 10.0 * problem.patterns[it.pattern].shape[1])
                  for it in problem.items)
    return dataclasses.replace(problem, items=items, objective=objective, layer_weights=WEIGHTS)


def analog_of(problem: PlacementProblem, regions: tuple) -> float:
    """The latency proxy computed directly: per layer the busiest array's summed read times, weighted."""
    busy: dict[tuple[str, int], float] = {}
    for it, region in zip(problem.items, regions, strict=True):
        busy[(it.layer, region.array)] = busy.get((it.layer, region.array), 0.0) + it.read_ns
    layers = {it.layer for it in problem.items}
    return sum(problem.layer_weights.get(name, 1.0) * max(t for (n, _), t in busy.items() if n == name)
               for name in layers)


def brute_force_pairs(problem: PlacementProblem) -> list[tuple[float, float]]:
    """(mapping error, analog time) of every placement without overlaps."""
    n = len(problem.items)
    options = [[(item_cost(problem, i, reg), cells(problem, i, reg), reg) for reg in all_regions(problem, i)]
               for i in range(n)]
    out: list[tuple[float, float]] = []

    def dfs(i: int, used: set, total: float, regions: list) -> None:
        if i == n:
            out.append((total, analog_of(problem, tuple(regions))))
            return
        for cost, cover, reg in options[i]:
            if used.isdisjoint(cover):
                dfs(i + 1, used | cover, total + cost, [*regions, reg])

    dfs(0, set(), 0.0, [])
    return out


SEEDS = [*range(12), *range(1000, 1006)]


@pytest.fixture(scope="module")
def instances() -> list[tuple[PlacementProblem, list[tuple[float, float]]]]:
    out = []
    for seed in SEEDS:
        problem = timed(random_instance(seed, 0.5 if seed >= 1000 else 0.0), "latency")
        pairs = brute_force_pairs(problem)
        if pairs:
            out.append((problem, pairs))
    return out


@pytest.mark.parametrize("spread", ["spread", "no spread"])
def test_latency_is_the_least_analog_time_at_the_minimum_error(instances, spread, monkeypatch) -> None:
    if spread == "no spread":  # CP-SAT alone, from the first stage's placement
        monkeypatch.setattr(placement_latency, "spread", lambda ctx, locs, budget: list(locs))
    cpsat_runs = 0
    for problem, pairs in instances:
        least = min(e for e, _ in pairs)
        best = min(t for e, t in pairs if e <= least + tolerance(problem))
        result = solve_placement(problem, time_limit_s=5.0)
        check_valid(problem, result)
        error_only = solve_placement(dataclasses.replace(problem, objective="error"), time_limit_s=5.0)
        assert result.objective_uS <= error_only.objective_uS + 1e-9  # never more mapping error
        assert result.objective_uS == pytest.approx(least, abs=tolerance(problem))
        assert result.analog_ns == pytest.approx(analog_of(problem, result.regions))
        assert result.analog_bound_ns <= best + 1e-6  # a valid bound
        assert result.analog_ns == pytest.approx(best), (result, best)  # tiny problems: solved exactly
        assert result.analog_gap == 0.0
        cpsat_runs += "cpsat-exhaustive" in result.method
    if spread == "no spread":
        assert cpsat_runs >= 3  # the CP-SAT model was exercised, not only bound-meeting spreads


def test_balanced_spends_at_most_its_tolerance_of_error_for_time(instances) -> None:
    for problem, pairs in instances:
        least = min(e for e, _ in pairs)
        allowed = least * (1 + BALANCED_TOLERANCE) + tolerance(problem)
        best = min(t for e, t in pairs if e <= allowed)
        result = solve_placement(dataclasses.replace(problem, objective="balanced"), time_limit_s=5.0)
        check_valid(problem, result)
        assert result.objective_uS <= allowed + 1e-9
        assert result.bound_uS <= least + 1e-9  # still the minimum error's bound
        assert result.analog_ns <= best + 1e-6 or result.analog_gap > 0


@pytest.mark.parametrize("placer", ["greedy", "random"])
def test_the_baselines_spread_without_more_error(instances, placer) -> None:
    for problem, _ in instances:
        before = PLACERS[placer](dataclasses.replace(problem, objective="error"), time_limit_s=5.0, seed=1)
        after = PLACERS[placer](problem, time_limit_s=5.0, seed=1)
        check_valid(problem, after)
        assert after.status == "HEURISTIC" and "latency: spread" in after.method
        assert after.objective_uS <= before.objective_uS + 1e-9
        assert after.analog_ns <= before.analog_ns
        assert after.analog_bound_ns <= after.analog_ns


# --------------------------------------------------------------------------
# Spreading, determinism, bad values


def stacked_problem(objective: str) -> PlacementProblem:
    """A defect-free chip of 8 arrays of 8 x 8 and one layer of four 4 x 4 copies: every region costs 0, so the
    error objective stacks them on array 0 (ties go to the lowest array id)."""
    chip = Chip(arrays=tuple(Array(i, 8, 8) for i in range(8)))
    pattern = Pattern("p", np.full((4, 4), 133.0))
    items = tuple(Item(f"c{c}", 0, "fc", 140.0) for c in range(4))
    return PlacementProblem((pattern,), items, chip, objective=objective, layer_weights={"fc": 2.0})


@pytest.mark.parametrize("placer", sorted(PLACERS))
def test_latency_spreads_copies_over_more_arrays_than_error(placer) -> None:
    error = PLACERS[placer](stacked_problem("error"), time_limit_s=2.0, seed=0)
    latency = PLACERS[placer](stacked_problem("latency"), time_limit_s=2.0, seed=0)
    assert error.objective_uS == latency.objective_uS == 0.0
    assert len({r.array for r in latency.regions}) == 4  # one copy per array: the reads overlap
    assert latency.analog_ns == latency.analog_bound_ns == 2 * 140.0
    if placer != "random":
        assert {r.array for r in error.regions} == {0}
        assert error.analog_ns == 2 * 4 * 140.0


def hard_problem(objective: str) -> PlacementProblem:
    """A problem where the spread does not meet the bound, so the second stage runs CP-SAT."""
    chip = synth_chip(arrays=6, rows=8, cols=8, stuck_high=0.05, stuck_low=0.01, seed=3)
    rng = np.random.default_rng(0)
    patterns = [Pattern(f"p{i}", rng.choice((133.0, 167.0, 200.0, 233.0), size=s))
                for i, s in enumerate([(3, 4), (3, 4), (4, 2)])]
    items = [Item(f"p{p}/c{c}", p, f"L{p // 2}", 100.0 + 10 * patterns[p].shape[1]) for p in range(3) for c in range(3)]
    return PlacementProblem(tuple(patterns), tuple(items), chip, objective=objective,
                            layer_weights={"L0": 1.0, "L1": 4.0})


def test_the_second_solve_is_deterministic_and_improves_on_the_spread() -> None:
    first: Placement = solve_placement(hard_problem("latency"), time_limit_s=3.0, seed=0)
    again = solve_placement(hard_problem("latency"), time_limit_s=3.0, seed=0)
    assert "cpsat-exhaustive" in first.method
    assert dataclasses.replace(first, seconds=0.0) == dataclasses.replace(again, seconds=0.0)
    greedy = PLACERS["greedy"](hard_problem("latency"), time_limit_s=3.0, seed=0)
    assert first.analog_ns < greedy.analog_ns  # CP-SAT beat the spread here
    assert first.objective_uS <= solve_placement(hard_problem("error"), time_limit_s=3.0).objective_uS


def test_a_bad_objective_or_read_time_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown placement objective 'fast'; choose one of error, latency, "
                                         "balanced"):
        stacked_problem("fast")
    with pytest.raises(UsageError, match="read_ns -1"):
        PlacementProblem(stacked_problem("error").patterns, (Item("c", 0, "fc", -1.0),),
                         stacked_problem("error").chip)


# --------------------------------------------------------------------------
# Through the compiler


def compile_example(tmp_path: Path, objective: str, k: int = 3) -> Path:
    out = tmp_path / f"{objective}-{k}.leac"
    assert main(["compile", str(DATA / "yinyang_mlp.onnx"), "--chip", str(DATA / "paper_chip.json"), "-k", str(k),
                 "--objective", objective, "-o", str(out)]) == 0
    return out


def test_the_bundled_example_spreads_at_no_mapping_error(tmp_path, capsys) -> None:
    error, latency = (Program.load(compile_example(tmp_path, o)) for o in ("error", "latency"))
    text = capsys.readouterr().out
    assert "analog time (latency objective): 510.0 ns per sample" in text
    assert latency.mapping_error_uS == error.mapping_error_uS
    assert len(latency.arrays_used) > len(error.arrays_used)
    for program in (error, latency):  # the proxy is the cost model's analog time
        assert program_analog_time(program)[0] == pytest.approx(estimate_cost(program).analog_ns)
    assert estimate_cost(latency).analog_ns < estimate_cost(error).analog_ns / 4  # 2200 ns -> 510 ns
    assert "objective" not in error.options and "analog_ns" not in error.placement  # as before the option
    assert latency.placement["objective"] == latency.options["objective"] == "latency"
    assert latency.placement["analog_ns"] == pytest.approx(program_analog_time(latency)[0])


def test_a_latency_compile_is_byte_identical_in_two_processes(tmp_path) -> None:
    """Through the second CP-SAT solve, in processes with different hash seeds (no set or dict order of strings
    may matter)."""
    model, chip = tmp_path / "m.onnx", tmp_path / "c.json"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=8, rows=12, cols=12, stuck_high=0.05, stuck_low=0.01, seed=2), chip)
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"p{hash_seed}.leac"
        done = subprocess.run(
            [sys.executable, "-m", "lea_compiler", "compile", str(model), "--chip", str(chip), "-k", "2", "--block",
             "4x6", "--objective", "latency", "--time-limit", "2", "--seed", "3", "-o", str(out)],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert done.returncode == 0, done.stderr
        outputs.append(out)
    first, second = (Program.load(path) for path in outputs)
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert "latency: cpsat-exhaustive: OPTIMAL" in first.placement["method"]  # the second solve ran
    error = leac.compile(model, chip, k=2, block=(4, 6), time_limit_s=2.0, seed=3)
    assert first.mapping_error_uS <= error.mapping_error_uS + 1e-9
    assert program_analog_time(first)[0] < program_analog_time(error)[0]


def test_a_bad_objective_names_the_choices_and_writes_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "p.leac"
    status = main(["compile", str(DATA / "yinyang_mlp.onnx"), "--chip", str(DATA / "paper_chip.json"),
                   "--objective", "fast", "-o", str(out)])
    assert status == 2
    assert "argument --objective: invalid choice: 'fast' (choose from error, latency, balanced)" in \
        capsys.readouterr().err.replace("'error', 'latency', 'balanced'", "error, latency, balanced")
    # a wrong API value is a wrong call, as --objective fast is (it was a CompileError, exit 1)
    with pytest.raises(UsageError, match="unknown placement objective 'fast'; choose one of error, latency"):
        leac.compile(DATA / "yinyang_mlp.onnx", DATA / "paper_chip.json", objective="fast")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_wall_clock_strike_is_in_the_compile_report_and_the_program(tmp_path, capsys, monkeypatch) -> None:
    """A CP-SAT stage stopped by its wall-clock safety limit is recorded (`cpsat._run`, forced here by a limit of
    0 s: any solve reaches it), carried to the Placement, the Program's placement record and the compile report's
    `placement_wall_clock_limited`, and the text warns; without one the key is empty and the record has no such
    entry (as before)."""
    from ortools.sat.python import cp_model

    from lea_compiler.placement import context, cpsat

    model = cp_model.CpModel()
    model.add(model.new_int_var(0, 3, "v") >= 1)
    strikes: list[str] = []
    solver, _ = cpsat._solver(1.0, 0, 1)
    cpsat._run(solver, model, 0.0, "placement", strikes)
    cpsat._run(solver, model, 1e9, "latency placement", strikes)
    assert strikes == ["placement"]

    out = tmp_path / "e.leac"
    args = ["compile", str(DATA / "yinyang_mlp.onnx"), "--chip", str(DATA / "paper_chip.json"), "-k", "3",
            "--objective", "latency", "--json"]
    assert main([*args, "-o", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["placement_wall_clock_limited"] == []
    assert "wall_clock_limited" not in Program.load(out).placement
    placement = context._Context.placement

    def struck(self, *a, **k):  # as if `_run` had recorded a strike of the first stage
        self.wall_strikes[:] = ["placement"]
        return placement(self, *a, **k)

    monkeypatch.setattr(context._Context, "placement", struck)
    assert main([*args, "-o", str(tmp_path / "s.leac")]) == 0
    assert json.loads(capsys.readouterr().out)["placement_wall_clock_limited"] == ["placement"]
    assert Program.load(tmp_path / "s.leac").placement["wall_clock_limited"] == ["placement"]
    assert main(args[:-1] + ["-o", str(tmp_path / "t.leac")]) == 0
    assert "stopped at its wall-clock safety limit" in capsys.readouterr().out
