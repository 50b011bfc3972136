"""The event-driven timing (`backends/timing.py`) against hand-worked timelines and a brute-force event loop."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

import lea_compiler as leac
from lea_compiler.backends.board import emit_board, read_board, validate_board
from lea_compiler.backends.cost import estimate_cost, full_scale_read_power, layer_cost, layer_step, timeline_of
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.backends.timing import (
    DigitalStep,
    LayerStep,
    ReadJob,
    ReadJobs,
    Timing,
    fifo,
    read_jobs,
    run_timeline,
)
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery, load_chip
from lea_compiler.chip.forms import chip_to_text
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.schedule.lower import SKIPPED, UNUSED, ArrayProgram
from lea_compiler.schedule.plan import LayerPlan, Schedule, schedule_of
from lea_compiler.schedule.records import Accumulate, Combine, Convert, LayerStart, Read, Scale
from tests.helpers import assert_bad_periphery_refused, make_model
from tests.test_output_paths import _kinds, _same_kind, unix_socket  # noqa: F401 - the fixture too

# t_dac 5 ns, t_mvm 100 ns, t_adc 10 ns, a 100 MHz clock (10 ns), 8 digital lanes
P = Periphery(t_dac_ns=5.0, t_mvm_ns=100.0, t_adc_ns=10.0, clock_MHz=100.0, digital_lanes=8, adcs_per_array=2)


def plan(name: str, regions: list[tuple[int, int]], *, cols: int = 2, adcs: int = 2, x_fs: float | None = 1.0,
         inp: str = "x", out: str = "y") -> LayerPlan:
    """A one-block, one-copy layer of 2 rows and `cols` columns: its G+ and G- regions are the (array, reads)
    of `regions` (two items), each converting `cols` columns `adcs` at a time."""
    start = LayerStart(name, inp, out, rows=2, cols=cols, inputs=2, bias_row=False, bias="none", alpha=1, beta=1,
                       encoding="joint", scale_uS=(1.0,) * cols, blocks=1, row_blocks=((0, 2),),
                       col_blocks=((0, cols),), vectors_per_sample=None)
    reads = tuple((Read(name, 0, 0, polarity, array, 0, 0, 2, cols, 0, 2, None, n),
                   Convert(name, 0, 0, polarity, array, 0, cols, adcs, -(-cols // adcs), 1.0))
                  for polarity, (array, n) in zip(("pos", "neg"), regions, strict=True))
    combine = Combine(name, 0, 0, cols, ((0,),) * cols, 1)
    return LayerPlan(start, reads, (combine,), Accumulate(name, cols, ((0, 0, cols),)),
                     Scale(name, (1.0,) * cols, 0.2, 0.0, x_fs), None)


def test_two_reads_on_one_array_serialise() -> None:
    """Array 0: read 1 (DAC 5 + 100 ns) 0-105, its one ADC round 105-115; read 2 waits for the array, 105-210,
    210-220; combine / scale (2 cols: 2 subtract + 2 sum + 2 divide + 2 scale = 8 ops, one clock on 8 lanes)
    220-230."""
    step = layer_step(plan("fc", [(0, 1), (0, 1)]), 1, P)
    assert (step.pre_ops, step.post_ops) == (0, 8)
    timing = run_timeline([step], P, bars=True)
    assert timing.latency_ns == 230.0
    bars = {(b.resource, b.kind): (b.start.tolist(), b.end.tolist()) for b in timing.bars}
    assert bars[("array 0", "dac")] == ([0.0, 105.0], [5.0, 110.0])
    assert bars[("array 0", "read")] == ([5.0, 110.0], [105.0, 210.0])
    assert bars[("adc 0", "adc")] == ([105.0, 210.0], [115.0, 220.0])
    assert bars[("digital", "digital")] == ([220.0], [230.0])
    assert timing.period_ns == 210.0 and timing.bottleneck == "array 0"
    assert timing.busy_ns == {"dac": 10.0, "read": 200.0, "adc": 20.0, "digital": 10.0}


def test_two_reads_on_two_arrays_overlap() -> None:
    """Arrays 0 and 1 read at once, 0-105, convert 105-115; the combine 115-125."""
    timing = run_timeline([layer_step(plan("fc", [(0, 1), (1, 1)]), 1, P)], P, bars=True)
    assert timing.latency_ns == 125.0 and timing.period_ns == 105.0
    reads = sorted((b.resource, b.end.tolist()) for b in timing.bars if b.kind == "read")
    assert reads == [("array 0", [105.0]), ("array 1", [105.0])]
    assert timing.resources == {"array": 2, "adc": 2, "digital": 1}


def test_adc_multiplexing_25_columns_over_5_adcs_takes_5_rounds() -> None:
    """One read of 25 columns with 5 ADCs: 5 conversion rounds of 10 ns after the read; 25 conversions."""
    layer = plan("fc", [(0, 1), (1, 1)], cols=25, adcs=5)
    assert read_jobs(layer).rounds.tolist() == [5, 5]
    assert layer_cost(layer, P).adc_conversions == 50
    timing = run_timeline([layer_step(layer, 1, P)], P, bars=True)
    adc = [b for b in timing.bars if b.kind == "adc"]
    assert [(b.start.tolist(), b.end.tolist()) for b in adc] == [([105.0], [155.0])] * 2
    assert timing.busy_ns["adc"] == 2 * 50.0


def test_dac_time_is_counted_and_overlaps_the_previous_conversion() -> None:
    """With 10 ADC rounds of 10 ns per read (20 columns, 2 ADCs), read 2's DACs settle (105-110) while read 1 is
    converted (105-205); read 2 ends at 210, is converted 210-310. A DAC of 50 ns adds 45 ns per read in series."""
    layer = plan("fc", [(0, 1), (0, 1)], cols=20, adcs=2)
    timing = run_timeline([layer_step(layer, 1, P)], P, bars=True)
    bars = {(b.resource, b.kind): (b.start.tolist(), b.end.tolist()) for b in timing.bars}
    assert bars[("array 0", "dac")] == ([0.0, 105.0], [5.0, 110.0])
    assert bars[("adc 0", "adc")] == ([105.0, 210.0], [205.0, 310.0])
    assert timing.peak_sample_holds == 1  # read 2 ends after read 1's conversion: one read held at a time
    slow = Periphery(**{**P.__dict__, "t_dac_ns": 50.0})
    assert run_timeline([layer_step(layer, 1, slow)], slow).latency_ns == timing.latency_ns + 2 * 45.0


def test_a_read_waits_in_the_sample_and_hold_while_the_adcs_are_busy() -> None:
    """Each half read 3 times (5 + 300 ns), 20 columns. With 2 ADCs a read's conversion takes 3 x 10 rounds of
    10 ns = 300 ns: read 1 is converted 305-605, before read 2 ends (610), so one region's 3 reads are held at
    a time. With one ADC it takes 600 ns: read 1 is converted 305-905 while read 2 ends at 610: 6 reads held,
    and read 2 is converted 905-1505. Then 200 digital ops (20 columns x 4, and per half 2 x 20 additions and
    20 divisions for the mean of 3 reads) on 8 lanes: 25 clocks."""
    two = run_timeline([layer_step(plan("fc", [(0, 3), (0, 3)], cols=20, adcs=2), 1, P)], P)
    one = run_timeline([layer_step(plan("fc", [(0, 3), (0, 3)], cols=20, adcs=1), 1, P)], P)
    assert (two.peak_sample_holds, one.peak_sample_holds) == (3, 6)
    assert one.latency_ns == 1505.0 + 250.0
    assert one.bottleneck == "adc 0" and one.period_ns == 1200.0
    assert one.peak_buffer_words == 2 * 3 * 20  # both halves' 3 digitised reads of 20 columns


def test_a_pipelined_two_layer_network_runs_at_its_slowest_stage() -> None:
    """fc1 on array 0 (one read each half: 2 x 105 ns), fc2 on array 1 reading each half 3 times
    (2 x 305 ns): one inference takes both in series; streamed, a sample leaves every 610 ns (array 1's busy
    time), which a run of 40 samples back to back through the same engine confirms."""
    fc1, fc2 = plan("fc1", [(0, 1), (0, 1)], out="h"), plan("fc2", [(1, 3), (1, 3)], inp="h")
    steps: list[LayerStep | DigitalStep] = [layer_step(fc1, 1, P), layer_step(fc2, 1, P)]
    timing = run_timeline(steps, P)
    # fc2 from 230: reads 230-535 and 535-840, the second's 3 rounds 840-870, then 20 ops (8 + the means'
    # 2 x 6) on 8 lanes, 870-900
    assert timing.latency_ns == 900.0
    assert timing.period_ns == 610.0 and timing.bottleneck == "array 1"
    assert timing.throughput_per_s == pytest.approx(1e9 / 610.0)
    assert timing.step_latency_ns == {"fc1": 230.0, "fc2": 670.0}

    # 40 samples, issued stage by stage (each stage serves its own queue, as pipelined hardware does): fc2 of
    # sample s starts when fc1 of sample s is done and array 1 is free
    stream = run_timeline([layer_step(plan("fc1", [(0, 1), (0, 1)], inp=f"x{s}", out=f"h{s}"), 1, P)
                           for s in range(40)]
                          + [layer_step(plan("fc2", [(1, 3), (1, 3)], inp=f"h{s}", out=f"y{s}"), 1, P)
                             for s in range(40)], P)
    assert (stream.latency_ns - timing.latency_ns) / 39 == pytest.approx(610.0)


def test_a_digital_node_waits_for_its_inputs_and_takes_ceil_ops_over_lanes_clocks() -> None:
    step = layer_step(plan("fc", [(0, 1), (1, 1)], out="h"), 1, P)
    relu = DigitalStep("relu", 17, ("h",), ("y",))  # ceil(17 / 8) = 3 clocks
    timing = run_timeline([step, relu], P)
    assert timing.latency_ns == 125.0 + 30.0 and timing.step_latency_ns["relu"] == 30.0


def test_the_vector_maximum_runs_before_the_reads() -> None:
    """Without a calibrated x_fs each application first finds its max |x| (2 inputs: one clock)."""
    step = layer_step(plan("fc", [(0, 1), (1, 1)], x_fs=None), 1, P)
    assert (step.pre_ops, step.post_ops) == (2, 8)
    assert run_timeline([step], P).latency_ns == 10.0 + 125.0


def _brute_force(steps: list[LayerStep | DigitalStep], p: Periphery) -> dict:
    """One task at a time, every resource first come, first served in the schedule's order, and every number
    `Timing` reports found from those tasks: the latency, the busiest resource, the busy time per kind, each
    step's span, the sample-and-hold and buffer peaks by sorting their events, and every task's bars."""
    free: dict[str, float] = {}
    busy: dict[str, float] = {}
    kind = {"dac": 0.0, "read": 0.0, "adc": 0.0, "digital": 0.0}
    bars: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    holds: dict[int, list[tuple[float, int]]] = {}
    buffer: list[tuple[float, float]] = []
    clock = 1e3 / p.clock_MHz
    tasks = 0

    def serve(resource: str, release: float, duration: float, bar: tuple[str, str]) -> float:
        nonlocal tasks
        end = max(release, free.get(resource, 0.0)) + duration
        free[resource] = end
        busy[resource] = busy.get(resource, 0.0) + duration
        kind[bar[1] if bar[1] != "dac+read" else "read"] += duration if bar[1] != "dac+read" else duration - p.t_dac_ns
        if bar[1] == "dac+read":
            kind["dac"] += p.t_dac_ns
            bars.setdefault((resource, "dac", bar[0]), []).append((end - duration, end - duration + p.t_dac_ns))
            bars.setdefault((resource, "read", bar[0]), []).append((end - duration + p.t_dac_ns, end))
        else:
            bars.setdefault((resource, bar[1], bar[0]), []).append((end - duration, end))
        tasks += 1
        return end

    ready: dict[str, float] = {}
    spans: dict[str, float] = {}
    for step in steps:
        start = max((ready.get(name, 0.0) for name in step.inputs), default=0.0)
        if isinstance(step, DigitalStep):
            end = serve("digital", start, -(-step.ops // p.digital_lanes) * clock, (step.name, "digital"))
            first = end - -(-step.ops // p.digital_lanes) * clock
        elif step.applications == 0:
            first = end = start
        else:
            jobs, first = step.jobs.items(), math.inf
            pre = -(-step.pre_ops // p.digital_lanes) * clock
            release = [serve("digital", start, pre, (step.name, "digital")) if step.pre_ops else start
                       for _ in range(step.applications)]
            if step.pre_ops:
                first = release[0] - pre
            done = list(release)
            on: dict[int, list[ReadJob]] = {}  # each array's jobs, arrays in the order the layer first reads them
            for job in jobs:
                on.setdefault(job.array, []).append(job)
            for array, its_jobs in on.items():
                for i in range(step.applications):
                    for job in its_jobs:
                        hold = p.t_dac_ns + job.reads * p.t_mvm_ns
                        read_end = serve(f"array {array}", release[i], hold, (step.name, "dac+read"))
                        first = min(first, read_end - hold)
                        adc_end = serve(f"adc {array}", read_end, job.reads * job.rounds * p.t_adc_ns,
                                        (step.name, "adc"))
                        done[i] = max(done[i], adc_end)
                        holds.setdefault(array, []).extend([(read_end, job.reads), (adc_end, -job.reads)])
                        buffer.append((adc_end, job.reads * job.columns))
            post = -(-step.post_ops // p.digital_lanes) * clock
            for i in range(step.applications):
                end = serve("digital", done[i], post, (step.name, "digital"))
                first = min(first, end - post)
                buffer.append((end, -sum(job.reads * job.columns for job in jobs)))
        for name in step.outputs:
            ready[name] = end
        spans[step.name] = end - first

    def peak(events: list[tuple[float, float]]) -> float:
        running, best = 0.0, 0.0
        for _, weight in sorted(events):  # by time, departures (negative) first at equal times
            running += weight
            best = max(best, running)
        return best

    period = max(busy.values(), default=0.0)
    return {"latency": max([0.0, *free.values()]), "period": period, "busy_per_resource": busy,
            "busy": kind, "spans": spans, "holds": max((peak(e) for e in holds.values()), default=0.0),
            "buffer": peak(buffer), "tasks": tasks, "bars": bars,
            "resources": {"array": sum(name.startswith("array") for name in busy),
                          "adc": sum(name.startswith("adc") for name in busy), "digital": int("digital" in busy)}}


def _check_against_the_loop(timing: Timing, expected: dict) -> None:
    assert timing.latency_ns == pytest.approx(expected["latency"], rel=1e-12)
    assert timing.period_ns == pytest.approx(expected["period"], rel=1e-12)
    busiest = [name for name, busy in expected["busy_per_resource"].items()
               if busy == pytest.approx(expected["period"], rel=1e-12)]  # of equally busy ones, the last name
    assert timing.bottleneck == max(busiest, default="digital")
    assert timing.step_latency_ns == pytest.approx(expected["spans"], rel=1e-12, abs=1e-9)
    assert timing.busy_ns == pytest.approx(expected["busy"], rel=1e-12)
    assert (timing.peak_sample_holds, timing.peak_buffer_words) == (expected["holds"], expected["buffer"])
    assert (timing.tasks, timing.resources) == (expected["tasks"], expected["resources"])
    bars: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for bar in timing.bars:
        bars.setdefault((bar.resource, bar.kind, bar.step), []).extend(zip(bar.start.tolist(), bar.end.tolist(),
                                                                           strict=True))
    assert bars.keys() == expected["bars"].keys()
    for key, intervals in bars.items():
        assert np.array(intervals) == pytest.approx(np.array(expected["bars"][key]), rel=1e-12), key


def _random_periphery(rng: np.random.Generator) -> Periphery:
    return Periphery(t_dac_ns=float(rng.uniform(1, 50)), t_mvm_ns=float(rng.uniform(50, 150)),
                     t_adc_ns=float(rng.uniform(1, 40)), clock_MHz=float(rng.uniform(50, 300)),
                     digital_lanes=int(rng.integers(1, 4)))


@pytest.mark.parametrize("seed", range(6))
def test_a_conv_layers_applications_timed_at_once_equal_a_task_by_task_loop(seed) -> None:
    rng = np.random.default_rng(seed)
    jobs = ReadJobs.of(ReadJob(int(rng.integers(0, 3)), int(rng.integers(1, 4)), 4, 8, int(rng.integers(1, 9)))
                       for _ in range(int(rng.integers(1, 7))))
    p = Periphery(t_dac_ns=float(rng.uniform(1, 50)), t_mvm_ns=100.0, t_adc_ns=float(rng.uniform(1, 40)),
                  digital_lanes=int(rng.integers(1, 4)))
    step = LayerStep("conv", jobs, int(rng.integers(0, 30)), int(rng.integers(1, 200)), int(rng.integers(1, 60)),
                     ("x",), ("y",))
    _check_against_the_loop(run_timeline([step], p, bars=True), _brute_force([step], p))


@pytest.mark.parametrize("seed", range(12))
def test_networks_of_many_reads_on_many_arrays_equal_the_task_by_task_loop(seed) -> None:
    """Several layers sharing arrays (an array's queue carries over from layer to layer), with digital nodes
    between, each layer's reads spread over many arrays holding unequal numbers of them (1 to many; arrays
    timed together by that number), dense layers (one application) and convs (many): every reported number
    and every bar equals the task-by-task loop's."""
    rng = np.random.default_rng(100 + seed)
    p = _random_periphery(rng)
    arrays = rng.choice(200, size=int(rng.integers(1, 60)), replace=False)  # sparse array ids
    steps: list[LayerStep | DigitalStep] = []
    values = ["x"]
    for i in range(int(rng.integers(1, 6))):
        count = int(rng.integers(1, 120))
        on = rng.choice(arrays, size=count) if rng.random() < 0.7 else np.repeat(arrays[:3], -(-count // 3))[:count]
        jobs = ReadJobs(on, rng.integers(1, 4, count), rng.integers(1, 26, count), rng.integers(1, 26, count),
                        rng.integers(1, 10, count))
        source = str(rng.choice(values))  # often an earlier value: layers that overlap on shared arrays
        steps.append(LayerStep(f"l{i}", jobs, int(rng.integers(0, 40)) * int(rng.random() < 0.5),
                               int(rng.integers(1, 300)), 1 if rng.random() < 0.5 else int(rng.integers(1, 25)),
                               (source,), (f"h{i}",)))
        values.append(f"h{i}")
        if rng.random() < 0.4:
            steps.append(DigitalStep(f"d{i}", int(rng.integers(0, 100)), (f"h{i}",), (f"v{i}",)))
            values.append(f"v{i}")
    _check_against_the_loop(run_timeline(steps, p, bars=True), _brute_force(steps, p))


def test_a_layer_without_applications_and_a_network_without_reads() -> None:
    steps: list[LayerStep | DigitalStep] = [
        LayerStep("empty", ReadJobs.of([ReadJob(4, 1, 2, 2, 1)]), 0, 8, 0, ("x",), ("h",)),
        DigitalStep("relu", 17, ("h",), ("y",))]
    timing = run_timeline(steps, P, bars=True)
    _check_against_the_loop(timing, _brute_force(steps, P))
    assert (timing.latency_ns, timing.bottleneck, timing.resources["array"]) == (30.0, "digital", 0)
    assert run_timeline([], P).bottleneck == "digital" and run_timeline([], P).period_ns == 0.0


def test_read_jobs_of_a_grouped_layer_are_one_per_group_a_read_holds() -> None:
    """A grouped layer of 4 columns in 2 groups, one block: each region's read is two jobs, one per group, of
    2 columns each (1 round with 2 ADCs); the same as ReadJob by ReadJob."""
    layer = plan("fc", [(0, 1), (1, 2)], cols=4, adcs=2)
    layer = dataclasses.replace(layer, start=dataclasses.replace(layer.start, groups=2))
    assert read_jobs(layer).items() == [ReadJob(0, 1, 2, 2, 1), ReadJob(0, 1, 2, 2, 1), ReadJob(1, 2, 2, 2, 1),
                                        ReadJob(1, 2, 2, 2, 1)]
    assert read_jobs(layer) is read_jobs(layer)  # found once per plan
    with pytest.raises(ValueError):
        read_jobs(layer).reads[0] = 5  # read only: the cost model and the timeline share them


def test_fifo_is_the_lindley_recursion() -> None:
    release, duration = np.array([0.0, 0.0, 50.0, 400.0, 401.0]), np.array([100.0, 10.0, 20.0, 5.0, 5.0])
    assert fifo(release, duration, 30.0).tolist() == [130.0, 140.0, 160.0, 405.0, 410.0]


# ------------------------------------------------------------------ the new periphery fields


def _program_on(tmp_path, **periphery):
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (np.float32, ["N", 2])},
                       ["y"], {"W": np.array([[1, -1], [0, 1]], np.float32)})
    onnx.save(model, tmp_path / "mm.onnx")
    chip = Chip(arrays=(Array(0, 2, 4), Array(1, 2, 4)),
                device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0),
                periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=16, **periphery))
    return compile_model(tmp_path / "mm.onnx", chip, CompileOptions(k=1)).program


def test_the_new_periphery_fields_have_their_defaults_and_old_files_keep_their_bytes() -> None:
    paper = load_chip("lea_compiler/data/paper_chip.json")
    assert (paper.periphery.t_dac_ns, paper.periphery.digital_lanes) == (85.0, 1)
    with open("lea_compiler/data/paper_chip.json") as f:
        text = f.read()
    assert chip_to_text(paper) == text and "t_dac_ns" not in text  # a file without them: the defaults
    changed = Periphery(**{**paper.periphery.__dict__, "t_dac_ns": 2.0, "digital_lanes": 16})
    written = json.loads(chip_to_text(dataclasses.replace(paper, periphery=changed)))["periphery"]
    assert (written["t_dac_ns"], written["digital_lanes"]) == (2.0, 16)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("t_dac_ns", 0, "periphery.t_dac_ns: 0 is not positive"),
    ("t_dac_ns", 1e10, "periphery.t_dac_ns: 1e+10 is outside the range leac accepts (0.001 to 1e+09 ns)"),
    ("digital_lanes", 0, "periphery.digital_lanes: 0"),
    ("digital_lanes", 2.5, "periphery.digital_lanes: 2.5"),
])
def test_a_bad_new_periphery_field_is_refused_and_nothing_is_written(tmp_path, capsys, key, value, message) -> None:
    assert_bad_periphery_refused(tmp_path, capsys, key, value, message)


def test_the_board_header_holds_the_new_fields_only_when_not_default_and_old_files_load(tmp_path) -> None:
    default = _program_on(tmp_path)
    emit_board(default, tmp_path / "d.jsonl")
    header = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])
    assert not {"t_dac_ns", "digital_lanes", "e_digital_op_pJ"} & set(header["periphery"])  # as before the keys
    assert read_board(tmp_path / "d.jsonl").header.periphery["t_mvm_ns"] == 100.0
    custom = _program_on(tmp_path, t_dac_ns=7.0, digital_lanes=4, e_digital_op_pJ=2.5)
    emit_board(custom, tmp_path / "c.jsonl")
    periphery = read_board(tmp_path / "c.jsonl").header.periphery
    assert (periphery["t_dac_ns"], periphery["digital_lanes"], periphery["e_digital_op_pJ"]) == (7.0, 4, 2.5)
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    bad = json.loads(lines[0])
    bad["periphery"]["digital_lanes"] = 0
    (tmp_path / "bad.jsonl").write_text("\n".join([json.dumps(bad), *lines[1:]]) + "\n")
    problems = validate_board(tmp_path / "bad.jsonl")
    assert any("periphery.digital_lanes" in p and "0" in p for p in problems), problems


def test_estimate_cost_times_the_programs_schedule_and_simulate_reports_it(tmp_path) -> None:
    """y = x @ W on a chip of two arrays: whether the placement put the G+ and G- regions on one array or on
    two, the cost's latency is the timeline's, worked by hand for either case, and `simulate` reports it."""
    program = _program_on(tmp_path, t_dac_ns=5.0, digital_lanes=2)
    schedule = schedule_of(program)
    timing = timeline_of(program, schedule, program.chip.periphery)
    cost = estimate_cost(program)
    assert cost.latency_ns == timing.latency_ns and cost.period_ns == timing.period_ns
    arrays = {read.array for read, _ in schedule.layers["mm"].reads}
    # max |x| (2 ops, 1 clock of 2 lanes); the two reads (5 + 100 ns) at once or one after the other; one ADC
    # round per column (2 columns, 1 ADC): 20 ns; 8 ops on 2 lanes: 40 ns
    assert cost.latency_ns == (10 + 105 + 20 + 40 if len(arrays) == 2 else 10 + 2 * 105 + 20 + 40)
    report = simulate(program, [Dataset("d", np.array([[1, -1]], np.float32), np.array([0]))]).to_json()
    assert report["latency_ns"] == cost.latency_ns and report["throughput_per_s"] == cost.throughput_per_s
    assert report["layer_latency_ns"] == {"mm": cost.latency_ns} and report["bottleneck"] == cost.bottleneck


# ------------------------------------------------------------------ leac simulate --timeline


def _program_and_data(tmp_path):
    program = _program_on(tmp_path, t_dac_ns=5.0)
    program.save(tmp_path / "p.leac")
    np.savez(tmp_path / "d.npz", x=np.array([[1, -1], [-1, 1]], np.float32), y=np.array([0, 1]))
    return tmp_path / "p.leac", tmp_path / "d.npz"


def test_simulate_timeline_draws_the_gantt_chart(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    program, data = _program_and_data(tmp_path)
    assert main(["simulate", str(program), "--data", str(data), "--timeline", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "latency per crossbar layer, us: mm" in capsys.readouterr().out
    leac.simulate(program, str(data), timeline=tmp_path / "api.png")
    assert (tmp_path / "api.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
def test_simulate_timeline_refuses_what_is_not_a_regular_file(tmp_path, kind, unix_socket, capsys) -> None:  # noqa: F811
    pytest.importorskip("matplotlib")
    program, data = _program_and_data(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    make, message = _kinds(unix_socket)[kind]
    target = make(out / "t.png")
    capsys.readouterr()
    assert main(["simulate", str(program), "--data", str(data), "--timeline", str(target)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "--timeline" in captured.err and captured.out == ""  # refused before work
    assert _same_kind(target, kind) and os.listdir(out) == ["t.png"]


def test_simulate_timeline_refusals_name_the_problem_and_write_nothing(tmp_path, monkeypatch, capsys) -> None:
    program, data = _program_and_data(tmp_path)
    assert main(["simulate", str(program), "--data", str(data), "--timeline", str(data)]) == 2
    assert "--timeline" in capsys.readouterr().err and np.load(data)["x"].shape == (2, 2)  # the input kept
    assert main(["simulate", str(program), str(program), "--data", str(data), "--timeline",
                 str(tmp_path / "t.png")]) == 2
    assert "--timeline goes with one Program, not with many" in capsys.readouterr().err
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["simulate", str(program), "--data", str(data), "--timeline", str(tmp_path / "t.png")]) == 2
    assert "leac simulate --timeline needs the plot extra: pip install 'lea-compiler[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()


# ------------------------------------------------------------------ the device-read bound without data


@pytest.mark.parametrize("seed", range(4))
def test_the_full_scale_read_power_sums_every_region_as_region_by_region(seed) -> None:
    """Random regions (overlapping ones, several on one array, arrays of unequal shapes, stuck and unused
    devices, N reads) summed in one pass against np.sum of each region's conductances, by hand."""
    rng = np.random.default_rng(seed)
    levels = np.array([100.0, 150.0, 210.5, 333.25])
    arrays = {}
    for a in rng.choice(50, size=6, replace=False):
        shape = (int(rng.integers(3, 30)), int(rng.integers(3, 30)))
        level = rng.integers(UNUSED, len(levels), shape)
        arrays[int(a)] = ArrayProgram(int(a), level, rng.uniform(0, 400, shape) * (level == SKIPPED),
                                      rng.integers(0, len(levels), shape))
    reads = []
    for _ in range(int(rng.integers(1, 40))):
        a = int(rng.choice(list(arrays)))
        height, width = arrays[a].level.shape
        row, col = int(rng.integers(0, height)), int(rng.integers(0, width))
        rows, cols = int(rng.integers(1, height - row + 1)), int(rng.integers(1, width - col + 1))
        reads.append((Read("fc", 0, 0, "pos", a, row, col, rows, cols, 0, rows, None, int(rng.integers(1, 4))),
                      Convert("fc", 0, 0, "pos", a, col, col + cols, 1, cols, 1.0)))
    layer = dataclasses.replace(plan("fc", [(0, 1), (0, 1)]), reads=tuple(reads))
    schedule = Schedule(levels, arrays, {"fc": layer}, None)
    expected = sum(read.reads * float(np.sum(arrays[read.array].conductance(read, levels))) for read, _ in reads)
    assert full_scale_read_power(layer, schedule) == pytest.approx(0.2 ** 2 * expected, rel=1e-12)
    whole = arrays[reads[0][0].array].conductances(levels)
    assert not whole.flags.writeable  # shared by every region's read: read only
