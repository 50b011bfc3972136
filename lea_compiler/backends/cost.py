"""The cost model of one inference and of programming a Program: the events a crossbar layer's reads cause
(reads, DAC and ADC conversions, device reads, digital ops, analog time), counted per layer from the Program
and the chip's periphery, and their energy; the latency, cycles and throughput of the event-driven timeline of the
same records (`backends.timing`); docs/simulator.md gives the model.

The simulator (`backends/sim.py`) counts the same events while it runs and reports them with this model.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np

from lea_compiler.analog_time import applications, rounds_ns
from lea_compiler.backends.timing import (
    DigitalStep,
    LayerStep,
    Timing,
    block_columns,
    read_jobs,
    run_timeline,
    vector_max_ops,
)
from lea_compiler.chip import Chip, Periphery
from lea_compiler.errors import InvalidInputError
from lea_compiler.grouping import groups_reading
from lea_compiler.interpreter import Array
from lea_compiler.ir import Node
from lea_compiler.program import Program
from lea_compiler.schedule.layout import region_rows
from lea_compiler.schedule.plan import LayerPlan, Schedule, schedule_of


@dataclass
class EventCounts:
    """What the crossbar kernels did, counted while simulating (per inference after `per_sample`)."""

    reads: float = 0.0
    adc_conversions: float = 0.0
    dac_conversions: float = 0.0
    device_reads: float = 0.0
    digital_ops: float = 0.0
    analog_ns: float = 0.0
    device_read_pJ: dict[str, float] = field(default_factory=dict)  # per crossbar layer: sum V^2 G t of its reads


class DigitalCounter:
    """Listener: one digital op per output element of every non-crossbar node."""

    def __init__(self, counts: EventCounts) -> None:
        self.counts = counts

    def on_node(self, node: Node, inputs: Sequence[Array | None], outputs: Sequence[Array]) -> None:
        if node.op_type != "MVM":
            self.counts.digital_ops += sum(out.size for out in outputs)


# ------------------------------------------------------------------ cost model
@dataclass(frozen=True)
class LayerCost:
    """Events and time of one application of a crossbar layer (one input vector)."""

    reads: int
    adc_conversions: int
    dac_conversions: int
    device_reads: int
    digital_ops: int
    analog_ns: float


def read_runs(plan: LayerPlan) -> np.ndarray:
    """Per read record of a layer application (int64): how many vectors drive its region's rows, each making
    every device of the region conduct (V^2 G over all its columns, converted or not): 1 (0 for a block without
    columns); in a grouped layer, the groups with a column in the read's block (`grouping.groups_reading`)."""
    start = plan.start
    c0, c1 = block_columns(plan)  # a block's reads share their run (thousands of reads on 25 x 25 arrays)
    if start.groups == 1:
        return (c1 > c0).astype(np.int64)
    return np.array([len(groups_reading(a, b, start.cols, start.groups)) for a, b in zip(c0.tolist(), c1.tolist(),
                                                                                          strict=True)],
                    dtype=np.int64)


def layer_cost(plan: LayerPlan, periphery: Periphery) -> LayerCost:
    """Cost of applying a layer's schedule to one input vector (see docs/simulator.md): its reads and
    conversions as the records give them, and one digital op per combined, summed, scaled and biased value, plus
    the input's max |x| when the layer scales each vector by its own (no calibrated `x_fs`).

    A read record of N > 1 reads (`leac compile --reads`) is N reads, N conversions of each column, N times its
    devices and analog time, but one DAC conversion per row (the DACs hold their voltages over the N reads);
    averaging its columns costs N - 1 additions and one division each.

    A grouped layer (`groups` = G > 1) is applied to a run of G vectors, one per group: vector g reads only the
    regions of the blocks that hold group g's columns and converts only those columns (their devices are the
    ones it reads), so every column is converted once per run, as in a layer of one vector. Its voltages drive
    the block's rows, though, and every device on them conducts, the other groups' columns of the region too
    (`read_runs`): those device reads are counted once per vector that drives them."""
    jobs = read_jobs(plan)
    n, columns = jobs.reads, jobs.columns
    # each array's reads and conversions, added job by job in schedule order (bincount adds in order)
    busy = np.bincount(jobs.by_array[2],
                       rounds_ns(periphery, jobs.rounds, n))  # type: ignore[arg-type]
    reads = int(np.sum(n))
    adc = int(np.sum(n * columns))
    dac = int(np.sum(jobs.rows))
    heights, widths, each = plan.read_fields("rows", "cols", "reads")
    devices = int(np.sum(read_runs(plan) * each * heights * widths))
    ops = int(np.sum((n * columns)[n > 1]))  # the mean of the N digitised reads: N - 1 additions, one division
    start = plan.start
    for combine in plan.combines:
        cols = combine.col_stop - combine.col_start
        ops += start.alpha * cols  # G+ - G- per copy
        ops += combine.divisor * cols  # sum of the selected copies, then one divide per column below
        ops += cols
    ops += (len(start.row_blocks) - 1) * start.cols  # partial sums
    ops += start.cols  # scale
    ops += start.cols if plan.bias is not None else 0
    ops += vector_max_ops(plan)  # each vector's own full scale: max |x_i|
    return LayerCost(reads, adc, dac, devices, ops, float(np.max(busy, initial=0.0)))


@dataclass(frozen=True)
class CostModel:
    """Per-inference cost of a Program, and of programming it: the event counts and energy of the schedule's
    records, the event-driven latency and pipelined throughput (`backends.timing`).

    `analog_ns` is analog work, not time: per application the busiest array's reads and conversions, summed
    over the applications (what the simulator counts too); `digital_cycles` counts the digital ops."""

    cycles_per_inference: float  # the event-driven latency in clock cycles
    latency_ns: float  # one inference alone: the timeline's makespan
    throughput_per_s: float  # samples streamed back to back: 1 / period_ns
    energy_pJ_per_inference: float
    energy_breakdown_pJ: dict[str, float]
    analog_ns: float
    digital_cycles: float
    program_pulses: int
    program_time_s: float
    program_energy_uJ: float
    applications: dict[str, int] = field(default_factory=dict)
    energy_by_layer_pJ: dict[str, dict[str, float]] = field(default_factory=dict)
    device_energy: str = "full scale"  # how `device_reads` was found: "full scale" or "measured" (`estimate_cost`)
    period_ns: float = 0.0  # the busiest resource's busy time per sample
    bottleneck: str = ""  # that resource ("array 3", "adc 3", "digital")
    layer_latency_ns: dict[str, float] = field(default_factory=dict)  # per crossbar layer: first start to last end
    busy_ns: dict[str, float] = field(default_factory=dict)  # per resource kind: dac, read, adc, digital
    peak_sample_holds: int = 0  # most reads one array's sample-and-hold keeps waiting for its ADCs
    peak_buffer_words: int = 0  # most converted values waiting for the digital unit
    timed_tasks: int = 0  # tasks the timeline timed (or the schedule's tasks, when not timing_exact)
    timing_exact: bool = True  # False: above the timeline's task limit; latencies and peaks are upper bounds
    static_power_uW: float = 0.0  # the powered hardware's static power (`static_power_uW`)
    pipelined_static_pJ: float = 0.0  # static energy per inference streamed back to back: power x period


def timing_json(cost: CostModel) -> dict[str, Any]:
    """The timing keys of a report (docs/reports.md), from `estimate_cost`'s timeline."""
    return {"period_ns": cost.period_ns, "bottleneck": cost.bottleneck, "layer_latency_ns": dict(cost.layer_latency_ns),
            "busy_ns": dict(cost.busy_ns), "peak_sample_holds": cost.peak_sample_holds,
            "peak_buffer_words": cost.peak_buffer_words, "timing_exact": cost.timing_exact,
            "static_power_uW": cost.static_power_uW, "pipelined_static_pJ": cost.pipelined_static_pJ}


def _applications(program: Program) -> dict[str, int]:
    """How often each crossbar layer is applied per sample (1 for a dense layer, OH*OW for a conv, of a run of
    one vector per group for a grouped conv)."""
    result = {}
    for node in program.graph.nodes_of("MVM"):
        count = applications(node)
        if count is None:
            x = node.input(0)
            raise InvalidInputError(f"{node.describe()}: the input shape {x.type_str() if x else '?'} is not fully "
                                    "known, so the cost model cannot count its reads per sample")
        result[node.name] = count
    return result


def _node_ops(node: Node) -> int:
    """Output elements per sample of a non-crossbar node (one digital op each; outputs of unknown shape none)."""
    total = 0
    for out in node.outputs:
        dims = out.shape[1:] if out.shape else ()
        known = [d for d in dims if isinstance(d, int)]
        if len(known) == len(dims):
            total += math.prod(known)
    return total


def _digital_elements(program: Program) -> int:
    """Output elements per sample of every non-crossbar node (one digital op each)."""
    return sum(_node_ops(node) for node in program.graph.nodes if node.op_type != "MVM")


def layer_step(plan: LayerPlan, applications: int, periphery: Periphery, inputs: tuple[str, ...] = (),
               outputs: tuple[str, ...] = (), cost: LayerCost | None = None) -> LayerStep:
    """A crossbar layer as the timeline runs it (`backends.timing`): its reads, and its digital ops split into
    the input maximum before the reads and the rest (`layer_cost`, or `cost` when the caller has it) after the
    conversions."""
    pre = vector_max_ops(plan)
    return LayerStep(plan.name, read_jobs(plan), pre, (cost or layer_cost(plan, periphery)).digital_ops - pre,
                     applications, inputs or (plan.start.input,), outputs or (plan.start.output,))


def timeline_of(program: Program, schedule: Schedule, periphery: Periphery, *, bars: bool = False,
                max_applications: int | None = None, applications: Mapping[str, int] | None = None,
                costs: Mapping[str, LayerCost] | None = None) -> Timing:
    """The event-driven timing of one inference of the Program's schedule (`backends.timing.run_timeline`): its
    crossbar layers' records and its other nodes, in graph order (the order the board runs them). With
    `max_applications`, each crossbar layer's first that many applications only (a picture's prefix).
    `applications` (`_applications`) and `costs` (`layer_cost` per layer): when the caller has them."""
    apps = {name: n if max_applications is None else min(n, max_applications)
            for name, n in (applications if applications is not None else _applications(program)).items()}
    steps: list[LayerStep | DigitalStep] = []
    for node in program.graph.nodes:
        inputs = tuple(v.name for v in node.inputs if v is not None)
        outputs = tuple(v.name for v in node.outputs)
        if node.op_type == "MVM":
            steps.append(layer_step(schedule.layers[node.name], apps[node.name], periphery, inputs, outputs,
                                    costs.get(node.name) if costs is not None else None))
        else:
            steps.append(DigitalStep(node.name, _node_ops(node), inputs, outputs))
    return run_timeline(steps, periphery, bars=bars)


def read_energy_pJ(read_power_V2uS: float, periphery: Periphery) -> float:
    """The energy (pJ) the devices dissipate over reads of `t_mvm_ns` each: sum_ij V_i^2 G_ij t, with V in volts
    and G in uS (V^2 uS ns = 1e-15 J = 1e-3 pJ)."""
    return read_power_V2uS * periphery.t_mvm_ns * 1e-3


def full_scale_read_power(plan: LayerPlan, schedule: Schedule) -> float:
    """sum_ij V_i^2 G_ij N over one application's reads with every row at the full read voltage `v_read` and
    the conductances the Program programs (stuck values where it skipped a device): the device-read power the
    analytic model charges without data (an upper bound of the DAC's voltages; `leac simulate` measures it).
    A grouped layer's run drives a read's rows once per group with a column in its block, and all the region's
    devices conduct each time (`read_runs`)."""
    if not len(plan.reads):
        return 0.0
    rows, cols, reads = plan.read_fields("rows", "cols", "reads")
    # every region's conductances, region after region, row by row (the schedule's flat buffers and windows)
    flat = schedule.read_conductances(plan.name)
    region, starts = region_rows(rows, cols)  # every region row, region by region
    row_sums = np.add.reduceat(flat, starts)  # each row's sum: its devices follow each other
    runs = read_runs(plan)
    return plan.scale.v_read_V ** 2 * float(np.sum(runs * reads * np.bincount(region, row_sums, len(rows))))


def static_power_uW(schedule: Schedule, periphery: Periphery) -> float:
    """The static (bias and leakage) power (uW) of the hardware an inference of the schedule keeps powered:
    every array the schedule programs, with its `adcs_per_array` ADCs and one DAC per row, and the digital unit
    with its `digital_lanes` lanes (docs/simulator.md, "Static energy"). Arrays the schedule does not use are
    taken to be powered off."""
    p = periphery
    rows = schedule.layout.total_rows
    per_array = p.p_static_array_uW + p.adcs_per_array * p.p_static_adc_uW
    return len(schedule.arrays) * per_array + rows * p.p_static_dac_uW + p.digital_lanes * p.p_static_digital_uW


def static_energy_pJ(power_uW: float, time_ns: float) -> float:
    """The energy (pJ) a static power (uW) dissipates over `time_ns` (uW ns = 1e-15 J = 1e-3 pJ)."""
    return power_uW * time_ns * 1e-3


def programming_cost(pulses: int, device_reads: int, periphery: Periphery) -> tuple[float, float]:
    """Time (s) and energy (uJ) of programming: each pulse takes `t_write_pulse_ns` and `e_write_pulse_pJ`,
    each verify device read `t_mvm_ns` and `e_device_read_pJ + e_adc_pJ`; devices one after the other."""
    p = periphery
    return ((pulses * p.t_write_pulse_ns + device_reads * p.t_mvm_ns) * 1e-9,
            (pulses * p.e_write_pulse_pJ + device_reads * (p.e_device_read_pJ + p.e_adc_pJ)) * 1e-6)


_T = TypeVar("_T")


class LatestOf:
    """A value made for the latest of some objects, which it holds weakly (a cache that keeps no owner alive)."""

    def __init__(self) -> None:
        self._owner: weakref.ref[Any] | None = None
        self._value: Any = None

    def of(self, owner: Any, make: Callable[[], _T]) -> _T:
        """The value made for `owner`: the one kept if it was made for this very object (still alive), else
        `make()`, kept in its place."""
        if self._owner is None or self._owner() is not owner:
            self._value = make()
            self._owner = weakref.ref(owner)
        return cast(_T, self._value)


def estimate_cost(program: Program, chip: Chip | None = None, schedule: Schedule | None = None,
                  device_read_pJ: Mapping[str, float] | None = None,
                  layer_costs: Mapping[str, LayerCost] | None = None) -> CostModel:
    """The analytic cost model of one inference and of programming (docs/simulator.md), of the Program's
    schedule (`schedule`, when the caller has lowered it or read it from a board file) on `chip`.

    Energy per component (device reads, ADC, DAC, digital, static) and per crossbar layer (`energy_by_layer_pJ`;
    the digital energy of the non-crossbar nodes is in the total only, and the static energy too: the hardware
    is powered for the whole inference, while the layers overlap in time). The static energy of one inference
    is `static_power_uW` x the latency; streamed back to back, x the period (`pipelined_static_pJ`). A layer's
    device-read energy is `device_read_pJ[layer]` per inference when the caller measured it (`leac simulate`:
    sum V^2 G t over the applied voltages and the simulated chip's conductances), else every row at the full
    read voltage on the programmed conductances (`full_scale_read_power`). `layer_costs` are the layers'
    `layer_cost`s on `chip`'s periphery when the caller has them (the simulator's layers do). The timeline is
    kept with the schedule (`Schedule.derived`, per Program and periphery): later draws of one schedule reuse it."""
    chip = chip or program.chip
    schedule = schedule or schedule_of(program)
    p = chip.periphery
    apps = _applications(program)
    analog_ns = 0.0
    digital = float(_digital_elements(program))
    energy = {"device_reads": 0.0, "adc": 0.0, "dac": 0.0, "digital": digital * p.e_digital_op_pJ}
    by_layer: dict[str, dict[str, float]] = {}
    costs: dict[str, LayerCost] = {}
    for name, plan in schedule.layers.items():
        cost = costs[name] = layer_costs[name] if layer_costs is not None else layer_cost(plan, p)
        n = apps[name]
        analog_ns += cost.analog_ns * n
        digital += cost.digital_ops * n
        measured = device_read_pJ.get(name) if device_read_pJ is not None else None
        layer = {
            "device_reads": measured if measured is not None
            else read_energy_pJ(full_scale_read_power(plan, schedule), p) * n,
            "adc": cost.adc_conversions * n * p.e_adc_pJ,
            "dac": cost.dac_conversions * n * p.e_dac_pJ,
            "digital": cost.digital_ops * n * p.e_digital_op_pJ,
        }
        by_layer[name] = layer
        for key, value in layer.items():
            energy[key] += value
    # the timeline depends on the Program, the schedule and the periphery only (the layers' costs are their
    # `layer_cost`s on it): kept with the schedule per periphery (by its values) for the latest Program, which it
    # does not keep alive, so every draw of `simulate_trials` makes it once
    timing = schedule.derived(("timeline", p), LatestOf).of(
        program, lambda: timeline_of(program, schedule, p, applications=apps, costs=costs))
    latency = timing.latency_ns
    power = static_power_uW(schedule, p)
    energy["static"] = static_energy_pJ(power, latency)
    pulses = schedule.program_pulses
    time_s, energy_uJ = programming_cost(pulses, pulses * chip.device.programming.readback_reads, p)
    return CostModel(
        cycles_per_inference=latency * p.clock_MHz * 1e-3,
        latency_ns=latency,
        throughput_per_s=timing.throughput_per_s,
        energy_pJ_per_inference=sum(energy.values()),
        energy_breakdown_pJ=energy,
        analog_ns=analog_ns,
        digital_cycles=digital,
        program_pulses=pulses,
        program_time_s=time_s,
        program_energy_uJ=energy_uJ,
        applications=apps,
        energy_by_layer_pJ=by_layer,
        device_energy="measured" if device_read_pJ is not None else "full scale",
        period_ns=timing.period_ns,
        bottleneck=timing.bottleneck,
        layer_latency_ns={name: timing.step_latency_ns[name] for name in schedule.layers},
        busy_ns=dict(timing.busy_ns),
        peak_sample_holds=timing.peak_sample_holds,
        peak_buffer_words=timing.peak_buffer_words,
        timed_tasks=timing.tasks,
        timing_exact=timing.exact,
        static_power_uW=power,
        pipelined_static_pJ=static_energy_pJ(power, timing.period_ns),
    )
