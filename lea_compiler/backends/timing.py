"""Event-driven timing of one inference: the schedule's tasks on the chip's resources, in the schedule's order.

Resources (docs/simulator.md, "Cost model"): every array with its row DACs (a read holds it for the DAC's
settling `t_dac_ns`, then N x `t_mvm_ns` for its N reads), every array's ADC bank (a read's N x
ceil(columns / adcs_per_array) conversion rounds of `t_adc_ns`, after the read; the columns' sample-and-hold
keeps the samples, so the array is free for its next read, and that read's DACs settle, while the bank
converts), and one digital unit that does `digital_lanes` ops per clock.

Tasks, in the order the board runs the records: per crossbar layer and per application (one input vector; a
conv's OH x OW, in order), the input's max |x| when the layer has no calibrated full scale (digital, before the
reads), every read (array, then ADC), and the layer's combine / accumulate / scale / bias (digital, after all
of the application's conversions); per other graph node, its ops on the digital unit. A task starts when its
inputs are ready and its resource is free. Each array and ADC bank serves its tasks in that order. The digital
unit serves the steps in schedule order, and a crossbar layer's tasks first come, first served by release
time: all of its applications' input maxima (released together when the layer's input is ready), then the
combines in application order, so a later application's input maximum may go before an earlier one's combine
(not the board's record order pre_0, post_0, pre_1, ...; docs/simulator.md). A layer's applications wait for
the node that produces its input as a whole; they do not wait for each other, so they overlap wherever their
resources allow. A read record of N reads converts after its N-th read: N sample-and-hold slots per column.
Above `MAX_TIMED_TASKS` tasks a schedule is bounded in closed form instead (`untimed`).

A resource serving tasks k = 0, 1, ... with release times r_k and durations d_k in order, free from F, ends task
k at end_k = max(end_{k-1}, r_k) + d_k = C_k + max(F, max_{j<=k} (r_j - C_{j-1})), C_k = d_0 + ... + d_k (the
Lindley recursion, unrolled), so all applications of a layer are timed in a few numpy passes, exactly, with no
Python loop per application (`fifo`).

Throughput with samples streamed back to back: a resource busy B ns per sample serves at most 1/B samples per
second, and the busiest one's rate is reached: put each resource's tasks back to back in a period of
max B, and give each task an offset of whole periods (a later sample) until it starts after its inputs; the
task graph of one sample has no cycle, so such offsets exist (modulo scheduling). The period is the slowest
pipeline stage's busy time, the `bottleneck`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from lea_compiler.chip import Periphery
from lea_compiler.geometry import find_sorted
from lea_compiler.grouping import group_overlaps
from lea_compiler.schedule.plan import LayerPlan

DIGITAL = "digital"


@dataclass(frozen=True)
class ReadJob:
    """One read of a layer application: `reads` reads of a region of `rows` on `array`, converting `columns`
    columns in `rounds` rounds of the array's ADCs."""

    array: int
    reads: int
    rows: int
    columns: int
    rounds: int


@dataclass(frozen=True, eq=False)
class ReadJobs:
    """The reads of one layer application in schedule order, one column per `ReadJob` field (int64 arrays, read
    only): the timeline and the cost model take a layer's reads in a few numpy passes, not one object each."""

    array: np.ndarray
    reads: np.ndarray
    rows: np.ndarray
    columns: np.ndarray
    rounds: np.ndarray

    def __post_init__(self) -> None:
        for name in ("array", "reads", "rows", "columns", "rounds"):
            column = np.array(getattr(self, name), dtype=np.int64).reshape(-1)
            column.setflags(write=False)
            object.__setattr__(self, name, column)

    def __len__(self) -> int:
        return len(self.array)

    @cached_property
    def by_array(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The jobs' arrays: `np.unique(array, return_index=True, return_inverse=True, return_counts=True)`, found
        once (the cost model's busiest array and the timeline each ask)."""
        return np.unique(self.array, return_index=True, return_inverse=True, return_counts=True)

    @classmethod
    def of(cls, jobs: Iterable[ReadJob]) -> ReadJobs:
        """The columns of `jobs` (e.g. hand-worked ones), in their order."""
        table = np.array([(j.array, j.reads, j.rows, j.columns, j.rounds) for j in jobs], dtype=np.int64)
        return cls(*table.reshape(-1, 5).T)

    def items(self) -> list[ReadJob]:
        """The jobs one by one (for a reference loop or a reader; the timeline never asks)."""
        return [ReadJob(*map(int, row)) for row in zip(self.array, self.reads, self.rows, self.columns, self.rounds,
                                                        strict=True)]


_JOBS: weakref.WeakKeyDictionary[LayerPlan, ReadJobs] = weakref.WeakKeyDictionary()


def read_jobs(plan: LayerPlan) -> ReadJobs:
    """The reads one application of a layer makes, in schedule order (docs/simulator.md).

    A grouped layer (`groups` = G > 1) is applied to a run of G vectors: vector g reads only the regions of the
    blocks holding group g's columns and converts only those columns, so a read record is one job per group
    whose columns it holds (in group order). Found once per plan (the cost model, the timeline and the
    simulator each ask)."""
    jobs = _JOBS.get(plan)
    if jobs is None:
        jobs = _JOBS[plan] = _read_jobs(plan)
    return jobs


def block_columns(plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
    """Per read of a layer, in order: its block's output columns [c0, c1) as the accumulate's terms give them
    (the last term of a block listed twice), or (0, its conversion's width) for a block the terms do not list
    (int64, from the plan's tables)."""
    block, = plan.read_fields("block")
    col_start, col_stop = plan.convert_fields("col_start", "col_stop")
    terms = {b: (c0, c1) for b, c0, c1 in plan.accumulate.terms}
    c0, c1 = np.zeros(len(block), dtype=np.int64), col_stop - col_start
    if terms and len(block):
        listed = np.array(sorted(terms), dtype=np.int64)
        at, hit = find_sorted(listed, block)
        columns = np.array([terms[b] for b in listed.tolist()], dtype=np.int64).reshape(-1, 2)
        c0 = np.where(hit, columns[at, 0], c0)
        c1 = np.where(hit, columns[at, 1], c1)
    return c0, c1


def _read_jobs(plan: LayerPlan) -> ReadJobs:
    groups = plan.start.groups
    array, reads, rows = plan.read_fields("array", "reads", "rows")
    rounds, adcs = plan.convert_fields("rounds", "adcs")
    c0, c1 = block_columns(plan)
    if groups == 1:
        columns = c1 - c0
        keep = columns > 0  # a block without columns is not read
        return ReadJobs(array[keep], reads[keep], rows[keep], columns[keep], rounds[keep])
    columns = group_overlaps(c0, c1, plan.start.cols, groups)  # (reads, G)
    read, _ = np.nonzero(columns > 0)  # read by read, group by group: the schedule's order
    columns = columns[columns > 0]
    return ReadJobs(array[read], reads[read], rows[read], columns, -(-columns // adcs[read]))


def vector_max_ops(plan: LayerPlan) -> int:
    """Digital ops before a layer application's reads: each vector's max |x_i| over its inputs, when the layer
    scales every vector by its own full scale (no calibrated `x_fs`); 0 otherwise."""
    return plan.start.inputs * plan.start.groups if plan.scale.x_fs is None else 0


@dataclass(frozen=True)
class LayerStep:
    """A crossbar layer in the timeline: its reads per application, its digital ops before the reads
    (`pre_ops`) and after the conversions (`post_ops`) per application, and its applications per sample."""

    name: str
    jobs: ReadJobs
    pre_ops: int
    post_ops: int
    applications: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class DigitalStep:
    """A non-crossbar node: `ops` digital ops once its inputs are ready."""

    name: str
    ops: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Bars:
    """What one resource did for one step (a Gantt row's bars of one colour): intervals in ns."""

    resource: str  # "array 3", "adc 3", "digital"
    kind: str  # "dac", "read", "adc", "digital"
    step: str
    start: np.ndarray
    end: np.ndarray


@dataclass(frozen=True)
class Timing:
    """The timeline of one inference and the pipelined rate (module docstring)."""

    latency_ns: float
    period_ns: float  # steady state: ns per sample with samples streamed back to back
    bottleneck: str  # the busiest resource (the period is its busy time per sample)
    step_latency_ns: dict[str, float]  # per step: its last task's end minus its first task's start
    busy_ns: dict[str, float]  # per resource kind (dac, read, adc, digital): summed over the resources
    resources: dict[str, int]  # per resource kind: how many the timeline uses
    peak_sample_holds: int  # most reads an array's sample-and-hold keeps at once, waiting for conversion
    peak_buffer_words: int  # most converted values waiting at once for the digital unit (a layer's combine)
    tasks: int  # tasks timed (or, when not `exact`, the tasks the schedule has)
    bars: tuple[Bars, ...] = field(default=())
    exact: bool = True  # False: the schedule has more than `max_tasks` tasks and was not timed (`untimed`)

    @property
    def throughput_per_s(self) -> float:
        return 1e9 / self.period_ns if self.period_ns > 0 else math.inf


def digital_ns(periphery: Periphery, ops: int) -> float:
    """The digital unit's time for a task of `ops` ops: ceil(ops / digital_lanes) clocks."""
    return math.ceil(ops / periphery.digital_lanes) * 1e3 / periphery.clock_MHz


def fifo(release: np.ndarray, duration: np.ndarray, free: float | np.ndarray) -> np.ndarray:
    """End times of tasks served in order by one resource free from `free`: task k starts at
    max(its release, the end of task k - 1) (module docstring). With 2-D `release` and `duration`, each row is
    one resource's queue and `free` holds each one's free time."""
    if release.shape[-1] == 0:
        return np.zeros(release.shape)
    total = np.cumsum(duration, axis=-1)
    start = np.maximum.accumulate(release - (total - duration), axis=-1)
    return total + np.maximum(free[..., None] if isinstance(free, np.ndarray) else free, start)


def _peak(times: np.ndarray, weights: np.ndarray, owners: np.ndarray | None = None) -> int:
    """The largest running sum of `weights` (+ on arrival, - on departure) over events sorted by time,
    departures first at equal times; with `owners`, the largest of each owner's own running sums (each array's
    sample-and-hold): its events sorted owner by owner, whose weights sum to 0, so one running sum does."""
    if len(times) == 0:
        return 0
    order = np.lexsort((weights, times) if owners is None else (weights, times, owners))
    return int(max(0, np.max(np.cumsum(weights[order]))))


@dataclass
class _Queues:
    """Every array's and ADC bank's free time and busy time, indexed by array id."""

    array_free: np.ndarray
    adc_free: np.ndarray
    array_busy: np.ndarray
    adc_busy: np.ndarray
    used: np.ndarray  # bool: the array (and its ADC bank) has served a task

    @classmethod
    def of(cls, size: int) -> _Queues:
        return cls(np.zeros(size), np.zeros(size), np.zeros(size), np.zeros(size), np.zeros(size, dtype=bool))


class _Timeline:
    def __init__(self, periphery: Periphery, bars: bool, arrays: int) -> None:
        p = periphery
        self.p = p
        self.clock_ns = 1e3 / p.clock_MHz
        self.queues = _Queues.of(arrays)
        self.digital_free = 0.0
        self.digital_busy: float | None = None  # None until the digital unit serves a task
        self.kind_busy = {"dac": 0.0, "read": 0.0, "adc": 0.0, DIGITAL: 0.0}
        self.keep_bars = bars
        self.bars: list[Bars] = []
        self.holds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (times, reads +/-, array) per queue group
        self.buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self.tasks = 0

    def digital_ns(self, ops: int) -> float:
        return digital_ns(self.p, ops)

    def bar(self, resource: str, kind: str, step: str, start: np.ndarray, end: np.ndarray) -> None:
        if self.keep_bars and len(start):
            self.bars.append(Bars(resource, kind, step, start, end))

    def digital(self, step: str, release: np.ndarray, ops: int) -> np.ndarray:
        duration = np.full(len(release), self.digital_ns(ops))
        end = fifo(release, duration, self.digital_free)
        if len(end):
            self.digital_free = float(end[-1])
            self.digital_busy = (self.digital_busy or 0.0) + float(np.sum(duration))
        self.tasks += len(end)
        self.kind_busy[DIGITAL] += float(np.sum(duration))
        self.bar(DIGITAL, DIGITAL, step, end - duration, end)
        return end

    def layer(self, step: LayerStep, ready: float) -> tuple[float, float]:
        """Time a layer's applications from `ready` (its input's); returns (first start, last end).

        Each array serves its tasks (application by application, its jobs in schedule order) through `fifo`,
        then its ADC bank the conversions; arrays holding equally many of the layer's jobs are timed together,
        one row each, so a layer costs a few numpy passes per distinct jobs-per-array count, not per read."""
        p, n, jobs, q = self.p, step.applications, step.jobs, self.queues
        release = np.full(n, ready)
        first = math.inf
        if step.pre_ops:
            release = self.digital(step.name, release, step.pre_ops)
            first = float(release[0]) - self.digital_ns(step.pre_ops)
        done = release.copy()
        hold = p.t_dac_ns + jobs.reads * p.t_mvm_ns  # per job: the DACs settle, then its reads
        convert = (jobs.reads * jobs.rounds) * p.t_adc_ns
        words = (jobs.reads * jobs.columns).astype(np.float64)
        ids, seen, inverse, counts = jobs.by_array
        by_array = np.argsort(inverse, kind="stable")  # job indices array by array, in schedule order within each
        offsets = np.cumsum(counts) - counts
        hold_sum, convert_sum = np.zeros(len(ids)), np.zeros(len(ids))
        rows: dict[int, tuple[np.ndarray, ...]] = {}  # per array (index into ids), for the bars
        for count in np.unique(counts):
            group = np.flatnonzero(counts == count)  # the arrays holding `count` jobs each
            index = by_array[offsets[group][:, None] + np.arange(count)]  # (arrays, count) job indices
            shape = (len(group), n, int(count))
            d_hold = np.repeat(hold[index][:, None, :], n, axis=1).reshape(len(group), -1)  # (arrays, tasks)
            d_convert = np.repeat(convert[index][:, None, :], n, axis=1).reshape(len(group), -1)
            on = ids[group]
            read_end = fifo(np.repeat(release, count)[None, :], d_hold, q.array_free[on])
            adc_end = fifo(read_end, d_convert, q.adc_free[on])
            q.array_free[on], q.adc_free[on] = read_end[:, -1], adc_end[:, -1]
            hold_sum[group], convert_sum[group] = np.sum(d_hold, axis=1), np.sum(d_convert, axis=1)
            q.array_busy[on] += hold_sum[group]
            q.adc_busy[on] += convert_sum[group]
            q.used[on] = True
            self.tasks += 2 * read_end.size
            done = np.maximum(done, adc_end.reshape(shape).max(axis=(0, 2)))
            first = min(first, float(np.min(read_end[:, 0] - d_hold[:, 0])))
            reads = np.repeat(jobs.reads[index][:, None, :], n, axis=1).reshape(-1)
            owner = np.repeat(on, read_end.shape[1])
            self.holds.append((np.concatenate([read_end.ravel(), adc_end.ravel()]), np.concatenate([reads, -reads]),
                               np.concatenate([owner, owner])))
            self.buffer.append((adc_end.ravel(), np.repeat(words[index][:, None, :], n, axis=1).reshape(-1)))
            if self.keep_bars:
                rows.update({int(g): (read_end[i], d_hold[i], adc_end[i], d_convert[i]) for i, g in enumerate(group)})
        # per resource kind, the arrays' busy times added in the order the layer first reads them (as one array
        # at a time would add them)
        order = np.argsort(seen, kind="stable")
        dac = (n * counts[order]) * p.t_dac_ns
        self.kind_busy["dac"] = _added(self.kind_busy["dac"], dac)
        self.kind_busy["read"] = _added(self.kind_busy["read"], hold_sum[order] - dac)
        self.kind_busy["adc"] = _added(self.kind_busy["adc"], convert_sum[order])
        for g in order if self.keep_bars else ():
            read_end, d_hold, adc_end, d_convert = rows[int(g)]
            self.bar(f"array {ids[g]}", "dac", step.name, read_end - d_hold, read_end - d_hold + p.t_dac_ns)
            self.bar(f"array {ids[g]}", "read", step.name, read_end - d_hold + p.t_dac_ns, read_end)
            self.bar(f"adc {ids[g]}", "adc", step.name, adc_end - d_convert, adc_end)
        end = self.digital(step.name, done, step.post_ops)
        words_per_app = float(np.sum(jobs.reads * jobs.columns))
        self.buffer.append((end, np.full(n, -words_per_app)))  # the words wait until their combine is done
        first = min(first, float(end[0] - self.digital_ns(step.post_ops)))
        return first, float(end[-1])

    def bottleneck(self) -> tuple[float, str]:
        """The busiest resource's busy time and name (of equally busy ones, the name that sorts last)."""
        q = self.queues
        used = np.flatnonzero(q.used)
        busiest = max(float(np.max(q.array_busy[used], initial=0.0)), float(np.max(q.adc_busy[used], initial=0.0)))
        if self.digital_busy is not None:
            busiest = max(busiest, self.digital_busy)
        if self.digital_busy is None and not len(used):
            return 0.0, DIGITAL
        names = [f"array {a}" for a in used[q.array_busy[used] == busiest]]
        names += [f"adc {a}" for a in used[q.adc_busy[used] == busiest]]
        names += [DIGITAL] if self.digital_busy == busiest else []
        return busiest, max(names)


def _added(total: float, values: np.ndarray) -> float:
    """total + values[0] + values[1] + ..., added one after the other (np.cumsum adds in order)."""
    return float(np.cumsum(np.concatenate(([total], values)))[-1])


def run_timeline(steps: Sequence[LayerStep | DigitalStep], periphery: Periphery, *, bars: bool = False,
                 max_tasks: int | None = None) -> Timing:
    """Time one inference of `steps` (in schedule order) on the periphery's resources (module docstring); with
    `bars`, keep every task's interval for a picture (`lea_compiler.plot_timeline`). A schedule of more than
    `max_tasks` tasks (default `MAX_TIMED_TASKS`) is not timed task by task: `untimed` bounds it."""
    limit = MAX_TIMED_TASKS if max_tasks is None else max_tasks
    if count_tasks(steps) > limit:
        return untimed(steps, periphery)
    arrays = max((int(np.max(s.jobs.array)) + 1 for s in steps if isinstance(s, LayerStep) and len(s.jobs)), default=0)
    line = _Timeline(periphery, bars, arrays)
    ready: dict[str, float] = {}
    spans: dict[str, float] = {}
    latency = 0.0
    for step in steps:
        start = max((ready.get(name, 0.0) for name in step.inputs), default=0.0)
        if isinstance(step, LayerStep):
            if step.applications == 0:
                first, end = start, start
            else:
                first, end = line.layer(step, start)
        else:
            end = float(line.digital(step.name, np.array([start]), step.ops)[0])
            first = end - line.digital_ns(step.ops)
        for name in step.outputs:
            ready[name] = end
        spans[step.name] = end - first
        latency = max(latency, end)
    period, bottleneck = line.bottleneck()
    used = int(np.count_nonzero(line.queues.used))
    return Timing(
        latency_ns=latency,
        period_ns=period,
        bottleneck=bottleneck,
        step_latency_ns=spans,
        busy_ns=line.kind_busy,
        resources={"array": used, "adc": used, DIGITAL: int(line.digital_busy is not None)},
        peak_sample_holds=_peak(*_stack(line.holds)),
        peak_buffer_words=_peak(*_stack(line.buffer)),
        tasks=line.tasks,
        bars=tuple(line.bars),
    )


def _stack(parts: Sequence[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    if not parts:
        return np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


MAX_TIMED_TASKS = 1 << 23
"""The most tasks `run_timeline` times one by one (docs/limits.md): its memory and time grow with the tasks
(about 60 bytes and 0.4 us each, the reviewer's 27 M tasks took 1.6 GB and 11 s), and a conv's tasks grow with
its output pixels (up to ~4e8 within the input limits). 2^23 tasks take about 0.5 GB and 3 s."""


def count_tasks(steps: Sequence[LayerStep | DigitalStep]) -> int:
    """The tasks `run_timeline` would time: per crossbar layer application, its input maximum (when it has one),
    a read and a conversion per job and its combine; one per other node."""
    total = 0
    for step in steps:
        if isinstance(step, LayerStep):
            total += step.applications * (2 * len(step.jobs) + 1 + (1 if step.pre_ops else 0))
        else:
            total += 1
    return total


def untimed(steps: Sequence[LayerStep | DigitalStep], periphery: Periphery) -> Timing:
    """The timing of a schedule too large to time task by task (`MAX_TIMED_TASKS`), in closed form, `exact`
    False. Exact: every resource's busy time per sample, so the period, the bottleneck and `busy_ns`. Upper
    bounds: the latency and each step's latency, the sum of every task's duration up to the step's end (in the
    timeline some resource is always busy until the last task ends: the first unfinished task in schedule order
    has its inputs and is first in its resource's queue, and later steps never delay earlier ones), and the
    peaks (every read of an array held at once; every converted value waiting at once)."""
    p = periphery
    busy: dict[str, float] = {}
    kinds = {"dac": 0.0, "read": 0.0, "adc": 0.0, DIGITAL: 0.0}
    holds: dict[int, int] = {}
    spans: dict[str, float] = {}
    work = 0.0
    words = 0
    for step in steps:
        if isinstance(step, LayerStep):
            n = step.applications
            if n == 0:
                spans[step.name] = 0.0
                continue
            ops_ns = n * ((digital_ns(p, step.pre_ops) if step.pre_ops else 0.0) + digital_ns(p, step.post_ops))
            for job in step.jobs.items():
                read_ns, adc_ns = n * (p.t_dac_ns + job.reads * p.t_mvm_ns), n * job.reads * job.rounds * p.t_adc_ns
                busy[f"array {job.array}"] = busy.get(f"array {job.array}", 0.0) + read_ns
                busy[f"adc {job.array}"] = busy.get(f"adc {job.array}", 0.0) + adc_ns
                kinds["dac"] += n * p.t_dac_ns
                kinds["read"] += read_ns - n * p.t_dac_ns
                kinds["adc"] += adc_ns
                holds[job.array] = holds.get(job.array, 0) + n * job.reads
                words += n * job.reads * job.columns
                work += read_ns + adc_ns
        else:
            ops_ns = digital_ns(p, step.ops)
        busy[DIGITAL] = busy.get(DIGITAL, 0.0) + ops_ns
        kinds[DIGITAL] += ops_ns
        work += ops_ns
        spans[step.name] = work
    period, bottleneck = max(((b, name) for name, b in busy.items()), default=(0.0, DIGITAL))
    used = {kind: sum(1 for name in busy if name.split()[0] == kind) for kind in ("array", "adc", DIGITAL)}
    return Timing(latency_ns=work, period_ns=period, bottleneck=bottleneck, step_latency_ns=spans, busy_ns=kinds,
                  resources=used, peak_sample_holds=max(holds.values(), default=0), peak_buffer_words=words,
                  tasks=count_tasks(steps), exact=False)
