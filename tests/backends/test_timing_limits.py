"""The timeline's task limit (docs/limits.md): above `MAX_TIMED_TASKS` a schedule is bounded in closed form
(`untimed`), never timed task by task, so its memory and time do not grow with a conv's output pixels."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lea_compiler.backends.timing import (
    MAX_TIMED_TASKS,
    DigitalStep,
    LayerStep,
    ReadJob,
    ReadJobs,
    count_tasks,
    run_timeline,
)
from lea_compiler.chip import Periphery


def _network(seed: int) -> tuple[list[LayerStep | DigitalStep], Periphery]:
    """A chain of 1-4 crossbar layers (random jobs on arrays 0-3, with and without the input maximum) with a
    digital node after each."""
    rng = np.random.default_rng(seed)
    p = Periphery(t_dac_ns=float(rng.uniform(1, 90)), t_mvm_ns=100.0, t_adc_ns=float(rng.uniform(1, 40)),
                  digital_lanes=int(rng.integers(1, 9)))
    steps: list[LayerStep | DigitalStep] = []
    for i in range(int(rng.integers(1, 5))):
        jobs = ReadJobs.of(ReadJob(int(rng.integers(0, 4)), int(rng.integers(1, 4)), 4, int(rng.integers(1, 9)),
                             int(rng.integers(1, 9))) for _ in range(int(rng.integers(1, 7))))
        steps.append(LayerStep(f"l{i}", jobs, int(rng.integers(0, 2)) * int(rng.integers(1, 30)),
                               int(rng.integers(1, 200)), int(rng.integers(0, 50)), (f"x{i}",), (f"h{i}",)))
        steps.append(DigitalStep(f"d{i}", int(rng.integers(1, 100)), (f"h{i}",), (f"x{i + 1}",)))
    return steps, p


@pytest.mark.parametrize("seed", range(8))
def test_above_the_limit_the_busy_times_are_exact_and_the_latencies_and_peaks_bound_the_timeline(seed) -> None:
    steps, p = _network(seed)
    timed = run_timeline(steps, p)
    bound = run_timeline(steps, p, max_tasks=0, bars=True)
    assert timed.exact and not bound.exact and bound.bars == ()
    assert timed.tasks == bound.tasks == count_tasks(steps)
    assert bound.period_ns == pytest.approx(timed.period_ns, rel=1e-12)
    assert bound.busy_ns == pytest.approx(timed.busy_ns, rel=1e-12)
    assert bound.resources == timed.resources
    if list(timed.busy_ns.values()).count(timed.period_ns) <= 1:
        assert bound.bottleneck == timed.bottleneck
    assert timed.period_ns <= timed.latency_ns <= bound.latency_ns * (1 + 1e-12)
    for name, span in timed.step_latency_ns.items():
        assert span <= bound.step_latency_ns[name] * (1 + 1e-12) + 1e-9
    assert timed.peak_sample_holds <= bound.peak_sample_holds
    assert timed.peak_buffer_words <= bound.peak_buffer_words


def test_the_limit_is_inclusive() -> None:
    steps, p = _network(0)
    tasks = count_tasks(steps)
    assert run_timeline(steps, p, max_tasks=tasks).exact
    assert not run_timeline(steps, p, max_tasks=tasks - 1).exact


def test_a_conv_of_400_million_tasks_is_bounded_at_once() -> None:
    """1-channel 1x1 conv on 4096 x 4096 at k = 6: 16.7 M applications of 12 reads, ~4.2e8 tasks (about
    25 GB if timed task by task). By hand: array 0's busy time is 16.7 M x 12 x (85 + 100) ns."""
    n = 4096 * 4096
    jobs = ReadJobs.of(ReadJob(0, 1, 2, 1, 1) for _ in range(12))
    step = LayerStep("conv", jobs, 0, 20, n, ("x",), ("y",))
    assert count_tasks([step]) == n * 25 > MAX_TIMED_TASKS
    started = time.perf_counter()
    timing = run_timeline([step], Periphery())
    assert time.perf_counter() - started < 1.0
    assert not timing.exact and timing.bottleneck == "array 0"
    assert timing.period_ns == pytest.approx(n * 12 * (Periphery().t_dac_ns + Periphery().t_mvm_ns), rel=1e-12)


def test_the_digital_unit_serves_a_layers_input_maxima_before_its_combines() -> None:
    """Review 1's hand schedule: 2 applications, no calibrated full scale (2 ops each), one digital lane
    (10 ns a clock), two 105 ns reads on array 0 and one 10 ns round each: input maxima 0-20 and 20-40 (both
    released at 0), application 0's reads 20-125 and 125-230, its conversions 125-135 and 230-240, its combine
    (3 ops) 240-270; application 1's reads 230-335 and 335-440, conversions to 450, combine 450-480. By release
    time: in record order (pre_0, post_0, pre_1, post_1) pre_1 would wait for post_0 (docs/simulator.md)."""
    p = Periphery(t_dac_ns=5.0, t_mvm_ns=100.0, t_adc_ns=10.0, digital_lanes=1)
    jobs = ReadJobs.of([ReadJob(0, 1, 2, 1, 1), ReadJob(0, 1, 2, 1, 1)])
    timing = run_timeline([LayerStep("conv", jobs, 2, 3, 2, ("x",), ("y",))], p, bars=True)
    digital = [b for b in timing.bars if b.resource == "digital"]
    assert [(b.start.tolist(), b.end.tolist()) for b in digital] == [([0.0, 20.0], [20.0, 40.0]),
                                                                    ([240.0, 450.0], [270.0, 480.0])]
    assert timing.latency_ns == 480.0
