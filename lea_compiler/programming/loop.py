"""Programming strategies: program a Program onto a chip through a `Board` and keep what it reads back.

`open-loop` writes every device to the level the Program says, in one round, as a board file does.

`closed-loop` uses the read-back. The beta copies a column averages are programmed one after the other (per
column in the encode pass's order: copies with stuck devices first, healthy ones last, since a healthy copy can
reach any difference), each copy's pairs are read back, and the copies not yet programmed are re-encoded so that
the mean cancels the error measured so far. With the planned differences P_1..P_beta (the Program's, stuck
devices at their stuck conductance) and the measured ones M_1..M_n of the copies programmed so far, copy n + 1
holds the reachable difference nearest to

    P_{n+1} + sum_{m <= n} (P_m - M_m)

(`passes.encode.encode_difference`: a healthy pair any of the pair code's differences, a pair with a stuck
device what its healthy partner can reach). The error of the mean is then the last copy's error divided by
beta (its quantization and its own programming error) instead of the copies' errors averaged, so it falls
like sigma / beta instead of sigma / sqrt(beta). A pair whose re-encoded difference equals its planned one
keeps the Program's levels, so with ideal devices closed loop programs exactly what open loop does. Copies a
column does not average are programmed in the first round, as planned.

With beta < alpha, the beta copies each column averages are chosen again on the read-back (`reselect`): the
set whose measured mean is nearest the weights.

With calibration data (`leac program --calibrate DATA.npz`), each layer's per-column gain and offset (the
stuck-device compensation of `passes/compensate.py`) is refitted on the read-back: the columns' measured
differences against the weights, over the layer's inputs on that data; the refit replaces the compile-time one.

Both strategies can re-program: `attempts` > 1 writes a device again (a fresh write) while its read-back is
outside the write's tolerance, up to `attempts` writes, before the next copy is re-encoded.

Each round is a static list of board records (`select_array` + `write`, docs/board-format.md), which a
controller can run as a board file. The result is an as-programmed Program: the levels finally written, and
per device what the chip holds (`CopyHalf.programmed_uS`: the board's own account when it has one, as the
simulated board does, else its read-back), which `leac simulate` runs with read noise only.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lea_compiler.backends.board.writer import DEFAULT_MAX_PULSES, default_tolerance_uS
from lea_compiler.backends.cost import programming_cost
from lea_compiler.chip import Chip
from lea_compiler.chip_limits import MAX_READBACK_READS
from lea_compiler.errors import BadDataError, UsageError
from lea_compiler.passes.compensate import fit_columns, layer_inputs
from lea_compiler.passes.encode import encode_difference
from lea_compiler.passes.quantize import PairCode, crossbar_matrix
from lea_compiler.program import Program
from lea_compiler.program.types import BlockCopy, CopyHalf, Layer, ProgramBlock
from lea_compiler.programming.board import Board, RoundResult
from lea_compiler.programming.readback import ReadBack, readback_of
from lea_compiler.schedule.lower import SKIPPED, Lowered, prepare
from lea_compiler.schedule.records import Record, SelectArray, Write

logger = logging.getLogger(__name__)

STRATEGIES = ("open-loop", "closed-loop")
MAX_ATTEMPTS = 100
"""Most writes of one device a strategy allows (`attempts`)."""
MAX_SUBSETS = 256
"""Most sets of beta copies `reselect` compares per block; beyond, the candidates are each column's compiled set
and the set of its beta copies with the smallest errors of their own."""


@dataclass(frozen=True)
class ProgrammingCost:
    """What programming cost: rounds run, writes issued, pulses, read-backs, and the time and energy they take.

    Time and energy: `backends.cost.programming_cost` (a read-back is `readback_reads` device reads).
    """

    rounds: int
    writes: int
    pulses: int
    readbacks: int
    device_reads: int
    failed: int  # devices whose last read-back is outside the write's tolerance
    time_s: float
    energy_uJ: float
    devices: int  # devices written at least once

    @property
    def writes_per_device(self) -> float:
        return self.writes / self.devices if self.devices else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "writes_per_device": self.writes_per_device}


@dataclass(frozen=True, eq=False)
class Programmed:
    """The outcome of programming: the as-programmed Program, the read-back and the cost."""

    program: Program
    readback: ReadBack
    cost: ProgrammingCost
    strategy: str
    reencoded_pairs: int  # closed loop: pairs whose levels were changed from the Program's
    reselected_columns: int  # beta < alpha: columns now averaging other copies than compiled


@dataclass(eq=False)
class _Devices:
    """Every device the Program's copy halves occupy, flat, half after half (each half row-major)."""

    array: np.ndarray
    row: np.ndarray
    col: np.ndarray
    level: np.ndarray  # int64, current plan; SKIPPED for a stuck device
    measured: np.ndarray  # float64, last read-back; NaN before
    offsets: list[int]
    shapes: list[tuple[int, int]]

    def half(self, index: int, values: np.ndarray) -> np.ndarray:
        """A (rows, cols) view of one half's entries of a flat vector."""
        lo = self.offsets[index]
        rows, cols = self.shapes[index]
        return values[lo:lo + rows * cols].reshape(rows, cols)


def program_chip(
    program: Program,
    board: Board,
    *,
    strategy: str = "closed-loop",
    attempts: int = 1,
    tolerance_uS: float | None = None,
    max_pulses: int = DEFAULT_MAX_PULSES,
    progress: Callable[[str], None] | None = None,
    board_name: str = "sim",
    calibration: np.ndarray | None = None,
    chip_fingerprint: str | None = None,
) -> Programmed:
    """Program `program` onto the chip behind `board` with `strategy` (module docstring).

    Args:
        attempts: writes allowed per device while its read-back is outside the tolerance (1: no re-programming).
        tolerance_uS, max_pulses: the write records' verify window (default a quarter of the smallest level gap,
            as `leac emit`) and pulse limit.
        progress: called with a line per round.
        calibration: model inputs (samples first, as `leac compile --calibrate` reads them): refit each layer's
            per-column gain and offset on what the board read back (`refit_compensation`).
        chip_fingerprint: the fingerprint the as-programmed Program records for the chip programmed, which
            `simulate` then requires (default: the board's chip's). Give the chip file's when the board's chip
            differs from it only in a session setting (`with_readback_reads`, `leac program --readback-reads`):
            the devices are that file's chip's.

    Raises:
        UsageError: an unknown strategy, attempts outside 1..MAX_ATTEMPTS, a bad tolerance or pulse limit, a
            Program already programmed, or a board whose chip lacks the Program's arrays.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown programming strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS:
        raise UsageError(f"attempts must be an integer in 1..{MAX_ATTEMPTS}, got {attempts!r}")
    if isinstance(max_pulses, bool) or not isinstance(max_pulses, int) or max_pulses < 1:
        raise UsageError(f"max_pulses must be an integer >= 1, got {max_pulses!r}")
    levels = np.asarray(program.chip.device.levels_uS, dtype=np.float64)
    tolerance = default_tolerance_uS(program.chip.device.levels_uS) if tolerance_uS is None else float(tolerance_uS)
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise UsageError(f"the tolerance must be a positive number of uS, got {tolerance_uS!r}")
    if program.as_programmed:
        raise UsageError("the Program is already programmed (it holds a chip's conductances); program the Program "
                         "leac compile wrote")
    chip = board.chip
    if tuple(chip.device.levels_uS) != tuple(program.chip.device.levels_uS):
        raise UsageError(f"the board's chip has the device levels {list(chip.device.levels_uS)} uS, the Program's "
                         f"{list(program.chip.device.levels_uS)} uS: compile the Program for that chip")
    sizes = {a.id: (a.rows, a.cols) for a in chip.arrays}
    for array_id in program.arrays_used:
        compiled = program.chip.array(array_id)
        if sizes.get(array_id) != (compiled.rows, compiled.cols):
            raise UsageError(f"the board's chip has no array {array_id} of {compiled.rows} x {compiled.cols}, "
                             "which the Program uses")
    reads = board.readback_reads
    if isinstance(reads, bool) or not isinstance(reads, int) or not 1 <= reads <= MAX_READBACK_READS:
        raise UsageError(f"the board's readback_reads must be an integer in 1..{MAX_READBACK_READS}, got {reads!r}")
    say = progress or (lambda line: logger.info("%s", line))
    lowered = prepare(program)
    devices = _device_table(lowered)
    runner = _Runner(board, devices, levels, tolerance, max_pulses, attempts, say)
    runner.read_stuck()
    code = PairCode.build(tuple(float(v) for v in levels), "joint")
    index = _half_index(lowered)
    plans = [_BlockPlan.of(layer, block, index, lowered, levels, strategy)
             for layer in program.layers for block in layer.blocks]
    rounds = max(plan.rounds for plan in plans) if plans else 0
    reencoded = 0
    for n in range(rounds):
        mask = np.zeros(devices.level.size, dtype=bool)
        active = [plan for plan in plans if n < plan.rounds]  # a layer with a smaller beta is done sooner
        for plan in active:
            if n > 0:
                reencoded += plan.reencode(n, devices, levels, code)
            plan.mark(n, devices, mask)
        runner.run(mask, f"round {n + 1}/{rounds}")
        for plan in active:
            plan.measured(n, devices)
    changed = reselect(program, plans, devices)
    reselected = int(sum(int(c.sum()) for c in changed.values()))
    cost = runner.cost()
    settings = {"strategy": strategy, "board": board_name, "attempts": attempts, "tolerance_uS": tolerance,
                "max_pulses": max_pulses, "readback_reads": board.readback_reads,
                "chip": {"name": chip.name,
                         "fingerprint": chip.fingerprint() if chip_fingerprint is None else chip_fingerprint},
                "programming_model": chip.device.programming.model, "reencoded_pairs": reencoded,
                "reselected_columns": reselected, "cost": cost.to_json()}
    if calibration is not None:
        corrections = refit_compensation(program, plans, devices, calibration)
        settings["compensation"] = "refitted on the read-back"
    else:  # a compile-time compensation was fitted for the copies compiled: none for a column that changed them
        corrections = {layer.name: _without(layer, changed[layer.name]) for layer in program.layers
                       if layer.column_gain is not None and changed[layer.name].any()}
    programmed = _as_programmed(program, lowered, devices, _checked_held(board.held(), devices, chip), settings,
                                corrections, {(p.layer.name, p.block.index): p.selection for p in plans})
    readback = _readback(devices, chip, board.readback_reads,
                         f"leac program --strategy {strategy} --board {board_name}")
    return Programmed(programmed, readback, cost, strategy, reencoded, reselected)


def _readback(devices: _Devices, chip: Chip, reads: int, source: str) -> ReadBack:
    """The last read-back of every device, per array (NaN where no device of the Program is)."""
    values: dict[int, np.ndarray] = {}
    for array_id in np.unique(devices.array).tolist():
        grid = np.full((chip.array(array_id).rows, chip.array(array_id).cols), np.nan)
        at = devices.array == array_id
        grid[devices.row[at], devices.col[at]] = np.maximum(devices.measured[at], 0.0)  # noise below 0 reads 0
        values[array_id] = grid
    return readback_of(chip, values, reads=reads, source=source)


def checked_round(result: Any, n: int) -> RoundResult:
    """A board's report on a round of `n` writes, checked: a board driver is outside leac, and a NaN or a short
    array would silently corrupt the closed loop.

    Raises:
        UsageError: the report is not n finite read-backs with non-negative pulse and read counts.
    """
    try:
        measured = _finite(result.measured_uS, n, "program")
        counts = [np.asarray(getattr(result, name)) for name in ("pulses", "verify_reads")]
        failed = np.asarray(result.failed)
    except AttributeError as error:
        raise UsageError(f"the board's program() returned a {type(result).__name__}, not a RoundResult "
                         f"(measured_uS, pulses, verify_reads, failed): {error}") from None
    for name, value in (("pulses", counts[0]), ("verify_reads", counts[1]), ("failed", failed)):
        if value.shape != (n,):
            raise UsageError(f"the board's program() reported {name} of shape {value.shape} for {n} writes")
    if not all(c.dtype.kind in "iu" and (c.size == 0 or c.min() >= 0) for c in counts) or failed.dtype != bool:
        raise UsageError("the board's program() must report pulses and verify_reads as counts (integers >= 0) "
                         "and failed as booleans")
    return RoundResult(measured, counts[0].astype(np.int64), counts[1].astype(np.int64), failed)


def _finite(values: Any, n: int, call: str) -> np.ndarray:
    """`values` as n finite floats (a board's read-backs), or a UsageError naming the board call."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"the board's {call}() returned read-backs that are not numbers") from None
    if array.shape != (n,):
        raise UsageError(f"the board's {call}() returned {array.shape} read-backs for {n} devices")
    if not np.all(np.isfinite(array)):
        raise UsageError(f"the board's {call}() returned a read-back that is not a finite number")
    return array


def _checked_held(held: Any, devices: _Devices, chip: Chip) -> Mapping[int, np.ndarray] | None:
    """A board's `held()`, checked: None, or per array the Program uses a finite (rows, cols) matrix >= 0."""
    if held is None:
        return None
    out = {}
    for array_id in np.unique(devices.array).tolist():
        array = chip.array(array_id)
        try:
            values = np.asarray(held[array_id], dtype=np.float64)
        except (KeyError, IndexError, TypeError, ValueError):
            raise UsageError(f"the board's held() has no conductances for array {array_id}") from None
        if values.shape != (array.rows, array.cols) or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise UsageError(f"the board's held() for array {array_id} is not a {array.rows} x {array.cols} matrix "
                             "of finite conductances >= 0")
        out[array_id] = values
    return out


def _half_index(lowered: Lowered) -> dict[tuple[str, int, int, str], int]:
    """(layer, block, copy, polarity) -> the half's index in `lowered.halves`."""
    return {(h.layer, h.block, h.copy, h.polarity): i for i, h in enumerate(lowered.halves)}


def _device_table(lowered: Lowered) -> _Devices:
    arrays, rows, cols, levels, offsets, shapes = [], [], [], [], [0], []
    for half in lowered.halves:
        r, c = half.levels.shape
        rr, cc = np.meshgrid(np.arange(r), np.arange(c), indexing="ij")
        arrays.append(np.full(r * c, half.array, dtype=np.int64))
        rows.append((rr + half.row).ravel())
        cols.append((cc + half.col).ravel())
        levels.append(np.asarray(half.levels, dtype=np.int64).ravel())
        offsets.append(offsets[-1] + r * c)
        shapes.append((r, c))
    level = np.concatenate(levels) if levels else np.zeros(0, np.int64)
    return _Devices(np.concatenate(arrays) if arrays else level.copy(), np.concatenate(rows) if rows else level.copy(),
                    np.concatenate(cols) if cols else level.copy(), level, np.full(level.size, np.nan), offsets,
                    shapes)


class _Runner:
    """Runs rounds of writes on the board, with re-programming, and counts what they cost."""

    def __init__(self, board: Board, devices: _Devices, levels: np.ndarray, tolerance: float, max_pulses: int,
                 attempts: int, say: Callable[[str], None]) -> None:
        self.board, self.devices, self.levels = board, devices, levels
        self.tolerance, self.max_pulses, self.attempts, self.say = tolerance, max_pulses, attempts, say
        self.rounds = self.writes = self.pulses = self.readbacks = self.stuck_reads = 0
        self.failed = np.zeros(devices.level.size, dtype=bool)
        self.written = np.zeros(devices.level.size, dtype=bool)

    def read_stuck(self) -> None:
        """Read back the devices the Program skips (stuck): their conductance enters the measured differences."""
        d = self.devices
        stuck = np.flatnonzero(d.level == SKIPPED)
        for array_id in np.unique(d.array[stuck]).tolist():
            at = stuck[d.array[stuck] == array_id]
            d.measured[at] = _finite(self.board.read(array_id, d.row[at], d.col[at]), int(at.size), "read")
            self.stuck_reads += int(at.size)

    def run(self, mask: np.ndarray, label: str) -> None:
        d = self.devices
        pending = np.flatnonzero(mask & (d.level >= 0))
        pending = pending[np.lexsort((d.col[pending], d.row[pending], d.array[pending]))]  # the records' order
        for attempt in range(self.attempts):
            if not pending.size:
                break
            result = checked_round(self.board.program(list(self._records(pending))), int(pending.size))
            self.rounds += 1
            self.writes += int(pending.size)
            self.pulses += int(np.sum(result.pulses))
            self.readbacks += int(np.sum(result.verify_reads))
            d.measured[pending] = result.measured_uS
            self.failed[pending] = result.failed
            self.written[pending] = True
            self.say(f"{label}{f' (attempt {attempt + 1})' if attempt else ''}: {pending.size} writes, "
                     f"{int(np.sum(result.failed))} outside +-{self.tolerance:g} uS")
            pending = pending[np.asarray(result.failed, dtype=bool)]

    def _records(self, which: np.ndarray) -> Iterator[Record]:
        """select_array + write records for devices `which` (sorted by array, then row-major, as `leac emit`)."""
        d = self.devices
        arrays = d.array[which]
        starts = np.flatnonzero(np.r_[True, arrays[1:] != arrays[:-1]])
        ends = np.r_[starts[1:], which.size]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            yield SelectArray(int(arrays[lo]), hi - lo)
            for i in which[lo:hi].tolist():
                level = int(d.level[i])
                yield Write(int(d.array[i]), int(d.row[i]), int(d.col[i]), level, float(self.levels[level]),
                            self.tolerance, self.max_pulses)

    def cost(self) -> ProgrammingCost:
        reads = (self.readbacks + self.stuck_reads) * self.board.readback_reads
        time_s, energy_uJ = programming_cost(self.pulses, reads, self.board.chip.periphery)
        return ProgrammingCost(
            rounds=self.rounds, writes=self.writes, pulses=self.pulses, readbacks=self.readbacks + self.stuck_reads,
            device_reads=reads, failed=int(np.sum(self.failed)), time_s=time_s, energy_uJ=energy_uJ,
            devices=int(np.sum(self.written)))


@dataclass(eq=False)
class _BlockPlan:
    """One block's programming order and, for closed loop, its planned and measured sums."""

    layer: Layer
    block: ProgramBlock
    halves: list[tuple[int, int]]  # per copy (pos half index, neg half index)
    order: np.ndarray  # (rounds, cols): the copy each column programs in each round (-1: none)
    first: np.ndarray  # (alpha, cols) bool: copy columns programmed in round 0 (unselected ones too)
    planned: np.ndarray  # (alpha, rows, cols) planned differences G+ - G- (stuck devices at their conductance)
    stuck: tuple[np.ndarray, ...]  # (alpha, rows, cols) each: state and conductance of G+, then of G-
    error: np.ndarray  # (rows, cols): sum over programmed copies of planned - measured
    closed: bool
    selection: np.ndarray  # (alpha, cols) bool: the copies each column averages

    @property
    def rounds(self) -> int:
        return int(self.order.shape[0])

    @classmethod
    def of(cls, layer: Layer, block: ProgramBlock, index: dict[tuple[str, int, int, str], int], lowered: Lowered,
           levels: np.ndarray, strategy: str) -> _BlockPlan:
        rows, cols = block.shape
        halves = [(index[(layer.name, block.index, c.copy, "pos")], index[(layer.name, block.index, c.copy, "neg")])
                  for c in block.copies]
        parts: list[list[np.ndarray]] = [[], [], [], []]  # per copy: G+ state, G+ conductance, G- state, G-'s
        planned = []
        for copy in block.copies:
            held = []
            for i, half in enumerate((copy.pos, copy.neg)):
                region = half.region
                skipped = np.asarray(half.levels) == SKIPPED
                on_chip = lowered.arrays[region.array].stuck_uS[region.row:region.row + rows,
                                                                region.col:region.col + cols]
                parts[2 * i].append(skipped.astype(np.int8))
                parts[2 * i + 1].append(np.where(skipped, on_chip, np.nan))
                held.append(np.where(skipped, on_chip, levels[np.maximum(half.levels, 0)]))
            planned.append(held[0] - held[1])
        stuck = tuple(np.stack(part) for part in parts)
        selection = np.asarray(block.selection, dtype=bool)
        if strategy == "open-loop":
            order = np.zeros((1, cols), dtype=np.int64) - 1
            first = np.ones_like(selection)
        else:  # the encode pass's order: most stuck devices first, healthy copies last
            count = ((stuck[0] != 0) | (stuck[2] != 0)).sum(axis=1)  # (alpha, cols)
            order = np.argsort(np.where(selection, -count, rows + 1), axis=0, kind="stable")[:layer.beta]
            first = ~selection
            first[order[0], np.arange(cols)] = True
        return cls(layer, block, halves, order, first, np.stack(planned), stuck, np.zeros((rows, cols)),
                   strategy == "closed-loop", selection)

    def mark(self, n: int, devices: _Devices, mask: np.ndarray) -> None:
        """Set `mask` on the devices this block programs in round `n`."""
        for copy, (pos, neg) in enumerate(self.halves):
            columns = self.first[copy] if n == 0 else self.order[n] == copy
            if not np.any(columns):
                continue
            for half in (pos, neg):
                devices.half(half, mask)[:, columns] = True

    def measured(self, n: int, devices: _Devices) -> None:
        """Add the error of the copies read back in round `n` to the running error (closed loop)."""
        if not self.closed:
            return
        cols = np.arange(self.order.shape[1])
        copies = self.order[n]
        measured = self._differences(devices)
        self.error += self.planned[copies, :, cols].T - measured[copies, :, cols].T

    def measured_mean(self, devices: _Devices) -> np.ndarray:
        """(rows, cols) uS: per column the mean of its selected copies' read-back differences."""
        mask = self.selection[:, None, :]
        return (self._differences(devices) * mask).sum(axis=0) / mask.sum(axis=0)

    def _differences(self, devices: _Devices) -> np.ndarray:
        """(alpha, rows, cols) uS: every copy's read-back G+ - G-."""
        return np.stack([devices.half(p, devices.measured) - devices.half(q, devices.measured)
                         for p, q in self.halves])

    def reencode(self, n: int, devices: _Devices, levels: np.ndarray, code: PairCode) -> int:
        """Re-encode the copies of round `n` to cancel the running error; the number of pairs changed."""
        copies = self.order[n]
        cols = np.arange(copies.size)
        rows = self.planned.shape[1]
        r = np.arange(rows)[:, None]
        target = self.planned[copies[None, :], r, cols[None, :]] + self.error
        gather = [part[copies[None, :], r, cols[None, :]] for part in self.stuck]
        pos, neg, g_pos, g_neg = encode_difference(levels, code, target, (gather[0], gather[1]), (gather[2], gather[3]))
        planned = self.planned[copies[None, :], r, cols[None, :]]
        change = np.abs((g_pos - g_neg) - planned) > 1e-9
        changed = 0
        for copy, (p, q) in enumerate(self.halves):
            at = change & (copies[None, :] == copy)
            if not np.any(at):
                continue
            devices.half(p, devices.level)[at] = pos[at]
            devices.half(q, devices.level)[at] = neg[at]
            changed += int(at.sum())
        return changed


def reselect(program: Program, plans: list[_BlockPlan], devices: _Devices) -> dict[str, np.ndarray]:
    """With beta < alpha, choose again, per column, the beta copies whose read-back mean is nearest the weights
    (the least sum over the column's rows of |mean of measured G+ - G- - W s|, over every set of beta copies, or
    over `MAX_SUBSETS`' candidates; ties keep the compiled choice). Returns per layer which columns changed."""
    changed = {layer.name: np.zeros(layer.cols, dtype=bool) for layer in program.layers}
    targets: dict[str, np.ndarray] = {}  # per layer W s (uS), computed once
    for this in plans:
        layer, block = this.layer, this.block
        if layer.beta == layer.alpha:
            continue
        if layer.name not in targets:
            targets[layer.name] = (crossbar_matrix(program.graph.node(layer.name), layer.bias_row)
                                   * np.asarray(layer.scale, dtype=np.float64))
        rows, cols = slice(block.row_start, block.row_stop), slice(block.col_start, block.col_stop)
        target = targets[layer.name][rows, cols]
        diffs = this._differences(devices)  # (alpha, rows, cols)
        compiled = [tuple(np.flatnonzero(this.selection[:, j]).tolist()) for j in range(this.selection.shape[1])]
        if math.comb(layer.alpha, layer.beta) > MAX_SUBSETS:  # too many sets: the copies' own errors decide
            own = np.abs(diffs - target).sum(axis=1)  # (alpha, cols)
            best_sets = np.sort(np.argsort(own, axis=0, kind="stable")[:layer.beta], axis=0).T
            subsets = sorted({tuple(row) for row in best_sets.tolist()} | set(compiled))
        else:
            subsets = list(itertools.combinations(range(layer.alpha), layer.beta))
        errors = np.stack([np.abs(diffs[list(s)].mean(axis=0) - target).sum(axis=0) for s in subsets])
        masks = np.zeros((len(subsets), layer.alpha), dtype=bool)
        for i, subset in enumerate(subsets):
            masks[i, list(subset)] = True
        where = {subset: i for i, subset in enumerate(subsets)}
        current = np.array([where[subset] for subset in compiled])
        best = np.argmin(errors, axis=0)
        columns = np.arange(best.size)
        best = np.where(errors[current, columns] <= errors[best, columns], current, best)
        changed[layer.name][cols] = best != current
        this.selection = masks[best].T.copy()
    return changed


def _without(layer: Layer, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The layer's compensation (gain, offset) with `columns` uncompensated."""
    gain = np.where(columns, 1.0, np.asarray(layer.column_gain, dtype=np.float64))
    offset = np.where(columns, 0.0, np.asarray(layer.column_offset, dtype=np.float64))
    return gain, offset


def refit_compensation(program: Program, plans: list[_BlockPlan], devices: _Devices, calibration: np.ndarray
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer, the per-column gain and offset (`passes.compensate.fit_columns`) that map what the chip holds,
    as read back (each column the mean of its selected copies' measured differences), onto the layer's weights,
    over the layer's inputs on `calibration`: every column, as every column now carries a known error."""
    inputs = layer_inputs(program.graph, calibration)
    effective = {layer.name: np.zeros((layer.rows, layer.cols)) for layer in program.layers}
    for plan in plans:
        block = plan.block
        rows, cols = slice(block.row_start, block.row_stop), slice(block.col_start, block.col_stop)
        effective[plan.layer.name][rows, cols] = plan.measured_mean(devices)
    out = {}
    for layer in program.layers:
        scale = np.asarray(layer.scale, dtype=np.float64)
        target = crossbar_matrix(program.graph.node(layer.name), layer.bias_row)
        x = inputs[layer.name]
        if not np.all(np.isfinite(x)):
            raise BadDataError(f"layer {layer.name!r}: the calibration data drives its input to infinity or NaN "
                               "(float32 overflow); scale the data down")
        gain, offset = fit_columns(x, effective[layer.name] / scale, target, layer.bias_row,
                                   int(program.graph.node(layer.name).attr("groups", 1)))
        if not np.all(np.isfinite(offset)):
            raise BadDataError(f"layer {layer.name!r}: the calibration data is too large for a finite "
                               "compensation offset; scale the data down")
        out[layer.name] = (gain, offset)
    return out


def _as_programmed(program: Program, lowered: Lowered, devices: _Devices, held: Mapping[int, np.ndarray] | None,
                   settings: dict[str, Any], corrections: dict[str, tuple[np.ndarray, np.ndarray]],
                   selections: Mapping[tuple[str, int], np.ndarray]) -> Program:
    """The Program with the levels finally written and what every device holds (the board's account, else
    the read-back), and how it was programmed in `extra.programming`."""
    index = _half_index(lowered)

    def half(layer: Layer, block: ProgramBlock, copy: int, polarity: str, old: CopyHalf) -> CopyHalf:
        i = index[(layer.name, block.index, copy, polarity)]
        region = old.region
        rows, cols = devices.shapes[i]
        if held is not None:
            g = held[region.array][region.row:region.row + rows, region.col:region.col + cols]
        else:  # a read-back may read a device below 0 (noise); what it holds cannot be
            g = np.maximum(devices.half(i, devices.measured), 0.0)
        levels = devices.half(i, devices.level).astype(np.asarray(old.levels).dtype)
        return CopyHalf(region, levels, old.cost_uS, np.array(g, dtype=np.float64))

    layers = tuple(dataclasses.replace(layer, blocks=tuple(dataclasses.replace(
        block, selection=selections[(layer.name, block.index)], copies=tuple(
        BlockCopy(c.copy, half(layer, block, c.copy, "pos", c.pos), half(layer, block, c.copy, "neg", c.neg))
        for c in block.copies)) for block in layer.blocks)) for layer in program.layers)
    layers = tuple(layer if layer.name not in corrections else dataclasses.replace(
        layer, column_gain=corrections[layer.name][0], column_offset=corrections[layer.name][1]) for layer in layers)
    return dataclasses.replace(program, layers=layers, extra={**program.extra, "programming": settings})
