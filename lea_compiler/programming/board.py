"""A board: anything that programs a chip from a board file's programming records and reports what it reads back.

leac's programming strategies (`lea_compiler.programming.loop`) talk to a chip only through `Board`: they hand
it a round of records (`select_array`, then `write` and `skip` records, exactly as a board file holds them:
docs/board-format.md) and get back, per `write` record, the read-back after the write; they may also ask it to
read devices. `SimulatedBoard` is leac's: it programs the chip file's devices with the chip's programming model
(`lea_compiler.programming.devices`). A lab plugs in its own driver without changing leac: `open_board`
resolves `module:callable` or an entry point of the group `leac.boards` (docs/programming.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from lea_compiler.arguments import int_argument
from lea_compiler.chip import Chip
from lea_compiler.chip_limits import MAX_READBACK_READS
from lea_compiler.errors import UsageError
from lea_compiler.programming.devices import read_back, write_devices
from lea_compiler.schedule.records import Record, SelectArray, Skip, Write

ENTRY_POINT_GROUP = "leac.boards"
"""The entry-point group a lab's board driver registers under (`--board NAME`)."""


@dataclass(frozen=True, eq=False)
class RoundResult:
    """What a board reports for one round of programming records: per `write` record, in record order."""

    measured_uS: np.ndarray  # (n,) float64: the read-back after the write (mean of the board's read-back reads)
    pulses: np.ndarray  # (n,) int64: programming pulses the write spent
    verify_reads: np.ndarray  # (n,) int64: verify read-backs the write spent
    failed: np.ndarray  # (n,) bool: the last read-back was outside the record's tolerance


@runtime_checkable
class Board(Protocol):
    """The interface a board driver implements (docs/programming.md)."""

    @property
    def chip(self) -> Chip:
        """The chip the board programs (its arrays and device model)."""
        ...

    @property
    def readback_reads(self) -> int:
        """Device reads averaged per read-back value."""
        ...

    def program(self, records: Sequence[Record]) -> RoundResult:
        """Run one round of programming records; report each `write` record's read-back, in order."""
        ...

    def read(self, array: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Read devices back (mean of `readback_reads` reads each), e.g. the stuck devices no write touches."""
        ...

    def held(self) -> Mapping[int, np.ndarray] | None:
        """What every device holds, per array (uS), if the board knows it (a simulation does); else None."""
        ...


class SimulatedBoard:
    """A simulated board: the chip file's arrays, defects and programming model (`device.programming`).

    Every device starts at the lowest level (a stuck one at its stuck conductance). A `write` record
    write-verifies its device (`programming.devices.write_devices`, with the record's tolerance and pulse limit);
    a device stuck on this chip keeps its stuck conductance whatever is written, and spends the record's
    pulses. `skip` records leave their device alone. Deterministic given the seed.
    """

    def __init__(self, chip: Chip, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UsageError(f"the seed must be a non-negative integer, got {seed!r}")
        self._chip = chip
        self._rng = np.random.default_rng(seed)
        self._stuck: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._state: dict[int, np.ndarray] = {}

    @property
    def chip(self) -> Chip:
        return self._chip

    @property
    def readback_reads(self) -> int:
        return int(self._chip.device.programming.readback_reads)

    def _array(self, array: int) -> np.ndarray:
        if array not in self._state:
            state, g = self._chip.stuck_map(array)  # refuses an array the chip does not have
            self._stuck[array] = (state, g)
            self._state[array] = np.where(state != 0, g, self._chip.device.levels_uS[0])
        return self._state[array]

    def program(self, records: Sequence[Record]) -> RoundResult:
        writes = [r for r in records if isinstance(r, Write)]
        for record in records:
            if not isinstance(record, (SelectArray, Write, Skip)):
                raise UsageError(f"a board's programming round holds select_array, write and skip records, "
                                 f"not {type(record).op!r}")
        n = len(writes)
        measured = np.zeros(n)
        pulses = np.zeros(n, dtype=np.int64)
        verify = np.zeros(n, dtype=np.int64)
        failed = np.zeros(n, dtype=bool)
        if not n:
            return RoundResult(measured, pulses, verify, failed)
        array = np.fromiter((w.array for w in writes), np.int64, n)
        row = np.fromiter((w.row for w in writes), np.int64, n)
        col = np.fromiter((w.col for w in writes), np.int64, n)
        level = np.fromiter((w.level for w in writes), np.int64, n)
        tolerance = np.fromiter((w.tolerance_uS for w in writes), np.float64, n)
        limit = np.fromiter((w.max_pulses for w in writes), np.int64, n)
        levels = np.asarray(self._chip.device.levels_uS, dtype=np.float64)
        stuck = np.zeros(n, dtype=bool)
        for a in np.unique(array).tolist():
            self._array(a)
            at = array == a
            stuck[at] = self._stuck[a][0][row[at], col[at]] != 0
        settings = np.stack([tolerance, limit.astype(np.float64)], axis=1)
        for setting in np.unique(settings, axis=0):  # one call per (tolerance, pulse limit): usually one
            sel = np.flatnonzero((tolerance == setting[0]) & (limit == setting[1]))
            done = write_devices(level[sel], self._chip.device, self._rng, tolerance_uS=float(setting[0]),
                                 max_pulses=int(setting[1]))
            measured[sel], pulses[sel] = done.measured_uS, done.pulses
            verify[sel], failed[sel] = done.verify_reads, done.failed
            g = np.array(done.conductance_uS, dtype=np.float64)
            for a in np.unique(array[sel]).tolist():
                at = array[sel] == a
                self._state[a][row[sel][at], col[sel][at]] = g[at]
        if np.any(stuck):  # a stuck device ignores the write, reads its stuck conductance and exhausts the pulses
            held = np.empty(int(stuck.sum()))
            for a in np.unique(array[stuck]).tolist():
                at = array[stuck] == a
                held[at] = self._stuck[a][1][row[stuck][at], col[stuck][at]]
                self._state[a][row[stuck][at], col[stuck][at]] = held[at]
            measured[stuck] = read_back(held, self._chip.device, self._rng)
            pulses[stuck] = limit[stuck]
            verify[stuck] = limit[stuck]  # a verify after every pulse
            failed[stuck] = np.abs(measured[stuck] - levels[level[stuck]]) > tolerance[stuck]
        return RoundResult(measured, pulses, verify, failed)

    def read(self, array: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return read_back(self._array(array)[rows, cols], self._chip.device, self._rng)

    def held(self) -> Mapping[int, np.ndarray] | None:
        return {a: g.copy() for a, g in sorted(self._state.items())}


def with_readback_reads(chip: Chip, reads: int | None) -> Chip:
    """`chip` with its programming model's reads per read-back replaced (`leac program --readback-reads`);
    `chip` itself for None.

    Raises:
        UsageError: `reads` not an integer in 1..MAX_READBACK_READS (a wrong value given, not a wrong chip file).
    """
    if reads is None:
        return chip
    reads = int_argument(reads, "readback_reads", 1, MAX_READBACK_READS)
    programming = dataclasses.replace(chip.device.programming, readback_reads=reads)
    return dataclasses.replace(chip, device=dataclasses.replace(chip.device, programming=programming))


def open_board(name: str, chip: Chip, seed: int = 0) -> Board:
    """The board `name` names, for `chip`: `sim` (leac's `SimulatedBoard`), `module:callable`, or the name of an
    entry point in the group `leac.boards`; a driver is called as `factory(chip=chip, seed=seed)`.

    A driver comes wrapped in a `DriverBoard`, which turns any exception its calls raise into a UsageError.

    Raises:
        UsageError: no such board, opening it failed, or what it made is not a `Board`.
    """
    if name == "sim":
        return SimulatedBoard(chip, seed)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except Exception as error:  # noqa: BLE001 - whatever a driver's module raises, the user gets a message
            raise UsageError(f"--board {name}: cannot load {attr!r} from module {module_name!r}: "
                             f"{type(error).__name__}: {error}") from None
    else:
        found = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == name]
        if not found:
            known = sorted({"sim", *(e.name for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))})
            raise UsageError(f"no board named {name!r}; boards: {', '.join(known)}, or module:callable")
        try:
            factory = found[0].load()
        except Exception as error:  # noqa: BLE001
            raise UsageError(f"--board {name}: cannot load its entry point: {type(error).__name__}: {error}") from None
    try:
        board = factory(chip=chip, seed=seed)
        is_board = isinstance(board, Board)  # evaluates the driver's properties (Python 3.11's protocol check)
    except Exception as error:  # noqa: BLE001 - a driver that cannot open its board is the user's to see
        raise UsageError(f"--board {name}: opening the board failed: {_described(error)}") from None
    if not is_board:
        raise UsageError(f"--board {name}: {factory!r} made a {type(board).__name__}, which is not a leac Board "
                         "(program, read, held, chip, readback_reads: docs/programming.md)")
    return DriverBoard(board, name)


def _described(error: Exception) -> str:
    """`Type: message` of an exception a driver raised, for a one-line error (`Type` alone when it says nothing)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class DriverBoard:
    """A lab's board driver as leac calls it (what `open_board` returns for anything but `sim`).

    Each member forwards to the driver; whatever exception the driver's code raises (a lost USB link, an I/O
    error) becomes a UsageError naming the driver and the call, so that `leac program` stops with a one-line
    message (exit 2) and writes nothing. Only the calls into the driver are guarded: leac's own code around
    them is not, so a bug in leac is still reported as one.
    """

    def __init__(self, driver: Board, name: str) -> None:
        self._driver = driver
        self._name = name

    def _failed(self, call: str, error: Exception) -> UsageError:
        return UsageError(f"--board {self._name}: the driver's {call} failed: {_described(error)}")

    @property
    def chip(self) -> Chip:
        try:
            return self._driver.chip
        except Exception as error:  # noqa: BLE001 - the driver's code: the user's to see, not a bug in leac
            raise self._failed("chip", error) from None

    @property
    def readback_reads(self) -> int:
        try:
            return self._driver.readback_reads
        except Exception as error:  # noqa: BLE001
            raise self._failed("readback_reads", error) from None

    def program(self, records: Sequence[Record]) -> RoundResult:
        try:
            return self._driver.program(records)
        except Exception as error:  # noqa: BLE001
            raise self._failed("program()", error) from None

    def read(self, array: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        try:
            return self._driver.read(array, rows, cols)
        except Exception as error:  # noqa: BLE001
            raise self._failed("read()", error) from None

    def held(self) -> Mapping[int, np.ndarray] | None:
        try:
            return self._driver.held()
        except Exception as error:  # noqa: BLE001
            raise self._failed("held()", error) from None
