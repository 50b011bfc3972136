"""The chip: its crossbar arrays, their defects, and the device and periphery models.

This module implements the `leac-chip` file format, version 1, exactly as
docs/chip-format.md defines it: loading (with every problem of a bad
file collected and reported by JSON path), saving (deterministic, pretty JSON
that loads back into an equal `Chip`), the per-array stuck-device maps the
mapping passes and the simulator use, synthetic chips like the seed paper's,
and the import of measured conductance maps.

Every `Chip` object is valid: its constructor runs the same checks as the file
loader, so code downstream (placement, simulation) never meets an
out-of-range defect or two contradictory defects on one device.

Orientation everywhere: an array's rows are word lines (inputs), its columns
are bit lines (outputs); indices start at 0.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import gc
import hashlib
import json
import logging
import math
import numbers
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import Any, NamedTuple, TypeAlias

import numpy as np

from lea_compiler.chip_limits import (
    DEVICE_RANGES,
    MAX_ADCS_PER_ARRAY,
    MAX_ARRAY_COLS,
    MAX_ARRAY_DEVICES,
    MAX_ARRAY_ROWS,
    MAX_ARRAYS,
    MAX_DEVICES,
    MIN_BITS,
    PERIPHERY_RANGES,
    MAX_CONDUCTANCE_uS,
    MIN_CONDUCTANCE_uS,
    conductance_problem,
    levels_problem,
    range_problem,
)
from lea_compiler.errors import BadDataError, InvalidChipError, InvalidInputError, UsageError
from lea_compiler.fileio import atomic_write_text, read_input

logger = logging.getLogger(__name__)

FORMAT = "leac-chip"
"""The value of the top-level `format` key."""
VERSION = 1
"""The newest `leac-chip` version this leac reads and the one it writes."""

STUCK_HIGH = "stuck_high"
STUCK_LOW = "stuck_low"
STATES = (STUCK_HIGH, STUCK_LOW)

# Limits that keep a hostile or mistaken file from exhausting memory or time (chip_limits says why each).
MAX_BITS = 32
"""Widest DAC/ADC leac accepts; wider is not physical and overflows integer maths."""
MAX_LEVELS = 65_535
"""Most conductance levels a device may have. Fine analog devices have 256-4096 programmable states; level
indices are stored as `level_index_dtype` integers, so more levels only widen them."""
MAX_FILE_BYTES = 256 * 2**20
"""Largest chip file or conductance map leac reads.

A 20,000-device chip file is ~50 kB; 1024 arrays of 128 x 128 with 5% stuck
devices (~840,000 defect entries) is ~52 MiB, which loads in a few seconds.
"""
MAX_PROBLEMS = 200
"""Most problems listed in one InvalidChipError; the rest are counted."""

_LARGEST_FLOAT_INT = int(np.finfo(np.float64).max)


def level_index_dtype(count: int) -> np.dtype[np.signedinteger[Any]]:
    """The integer type of the level indices of a device with `count` levels.

    The one rule every pass, the Program and the backends use: the smallest
    signed type holding -1 (a stuck device, not programmed) to count - 1,
    so int8 up to 128 levels (the seed paper's 4-level Programs stay as
    small as before), int16 up to 32,768 and int32 up to `MAX_LEVELS`.
    """
    for dtype in (np.int8, np.int16):
        if count - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int32)


# --------------------------------------------------------------------------
# Validation shared by the loader and the constructors

# Kinds: "levels" (ascending positive numbers), "positive" (number > 0),
# "non_negative" (number >= 0), "count" (int >= 1), "bits" (MIN_BITS <= int <= MAX_BITS).
_DEVICE_KINDS: dict[str, str] = {
    "levels_uS": "levels",
    "stuck_high_uS": "positive",
    "stuck_low_uS": "positive",
    # A noise figure is a spread, not a conductance: 0 is a legitimate ideal device.
    "write_noise_uS": "non_negative",
    "read_noise_uS": "non_negative",
}
_PERIPHERY_KINDS: dict[str, str] = {
    "v_read_V": "positive",
    "dac_bits": "bits",
    "adc_bits": "bits",
    "adcs_per_array": "count",
    "clock_MHz": "positive",
    "t_mvm_ns": "positive",
    "t_adc_ns": "positive",
    "t_write_pulse_ns": "positive",
    "e_device_read_pJ": "positive",
    "e_adc_pJ": "positive",
    "e_dac_pJ": "positive",
    "e_write_pulse_pJ": "positive",
}
_TOP_KEYS = ("format", "version", "name", "device", "periphery", "arrays", "defects")
_GRID_KEYS = ("count", "rows", "cols")
_ARRAY_KEYS = ("id", "rows", "cols")
_DEFECT_KEYS = ("array", "row", "col", "state", "g_uS")


class _NonFinite:
    """What the JSON decoder returns for NaN, Infinity or an overflowing number.

    Python's json accepts these by default; leac refuses them, but only after
    decoding, so the problem can be reported with its JSON path.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class _DupDict(dict):  # type: ignore[type-arg]
    """A decoded JSON object in which some keys appeared more than once."""

    duplicates: list[str]


def _show(value: object) -> str:
    """`value` as it would appear in JSON, shortened for a message."""
    if isinstance(value, _NonFinite):
        return value.text
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:76] + " ..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fields_of(obj: object) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


def _number_problem(value: object, path: str, *, positive: bool = True) -> str | None:
    """The problem with `value` as a finite (positive / non-negative) number, if any."""
    if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        return f"{path}: {_show(value)} is not a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{path}: {_show(value)} is not a number"
    if isinstance(value, int) and abs(value) > _LARGEST_FLOAT_INT:
        return f"{path}: {_show(value)} is too large"
    if positive and value <= 0:
        return f"{path}: {_show(value)} is not positive"
    if not positive and value < 0:
        return f"{path}: {_show(value)} is negative"
    return None


def _int_problem(
    value: object, path: str, *, minimum: int, maximum: int | None = None
) -> str | None:
    """The problem with `value` as an integer in [minimum, maximum], if any."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{path}: {_show(value)} is not an integer"
    if value < minimum:
        what = {0: "is negative", 1: "is not positive"}.get(minimum, f"is less than {minimum}")
        return f"{path}: {_show(value)} {what}"
    if maximum is not None and value > maximum:
        return f"{path}: {_show(value)} is more than leac supports ({maximum})"
    return None


def _levels_problems(value: object, path: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return [f"{path}: {_show(value)} is not a list of numbers"]
    problems = [
        p for i, v in enumerate(value) if (p := _number_problem(v, f"{path}[{i}]")) is not None
    ]
    if len(value) < 2:
        problems.append(f"{path}: {_show(value)} has fewer than 2 levels")
    elif len(value) > MAX_LEVELS:
        problems.append(f"{path}: {len(value)} levels is more than leac supports ({MAX_LEVELS})")
    elif not problems and any(b <= a for a, b in zip(value[:-1], value[1:], strict=True)):
        problems.append(f"{path}: {_show(value)} is not strictly ascending")
    elif not problems and (p := levels_problem([float(v) for v in value], path)) is not None:
        problems.append(p)
    return problems


def _kind_problems(value: object, kind: str, path: str) -> list[str]:
    if kind == "levels":
        return _levels_problems(value, path)
    if kind in ("positive", "non_negative"):
        problem = _number_problem(value, path, positive=kind == "positive")
    elif kind == "bits":
        problem = _int_problem(value, path, minimum=MIN_BITS, maximum=MAX_BITS)
    else:
        problem = _int_problem(value, path, minimum=1, maximum=MAX_ADCS_PER_ARRAY)
    return [problem] if problem else []


_RANGES = {**DEVICE_RANGES, **PERIPHERY_RANGES}
"""The accepted range of every scalar real-valued model key (chip_limits)."""


def _model_problems(values: Mapping[str, object], kinds: Mapping[str, str], path: str) -> list[str]:
    """Problems of a device or periphery model given as a mapping (missing keys are defaults)."""
    problems: list[str] = []
    for key, kind in kinds.items():
        if key in values:
            found = _kind_problems(values[key], kind, _join(path, key))
            if not found and key in _RANGES:
                unit = key.rsplit("_", 1)[-1]
                if (p := range_problem(float(values[key]), _join(path, key), *_RANGES[key], f" {unit}")):  # type: ignore[arg-type]
                    found.append(p)
            problems += found
    return problems


def _name_problem(value: object, path: str) -> str | None:
    if not isinstance(value, str):
        return f"{path}: {_show(value)} is not a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{path}: {_show(value)} is not valid Unicode text"
    return None


def _array_problems(values: Mapping[str, object], path: str) -> list[str]:
    problems = [_int_problem(values["id"], _join(path, "id"), minimum=0)]
    problems.append(_int_problem(values["rows"], _join(path, "rows"), minimum=1, maximum=MAX_ARRAY_ROWS))
    problems.append(_int_problem(values["cols"], _join(path, "cols"), minimum=1, maximum=MAX_ARRAY_COLS))
    return [p for p in problems if p]


def _defect_problems(values: Mapping[str, object], path: str) -> list[str]:
    """Type problems of one defect entry; an absent row/col is a missing key (or None)."""
    problems = [_int_problem(values["array"], _join(path, "array"), minimum=0)]
    for key in ("row", "col"):
        if values.get(key) is not None:
            problems.append(_int_problem(values[key], _join(path, key), minimum=0))
    if values.get("row") is None and values.get("col") is None:
        problems.append(f"{path}: has neither row nor col (give one, or both for one device)")
    state = values["state"]
    if state not in STATES or not isinstance(state, str):
        problems.append(
            f'{_join(path, "state")}: {_show(state)} is not "stuck_high" or "stuck_low"'
        )
    if values.get("g_uS") is not None:
        g_problem = _number_problem(values["g_uS"], _join(path, "g_uS"))
        if g_problem is None:
            g_problem = conductance_problem(float(values["g_uS"]), _join(path, "g_uS"))  # type: ignore[arg-type]
        problems.append(g_problem)
    return [p for p in problems if p]


def _arrays_cross_problems(arrays: Sequence[tuple[str, Array]], where: str) -> list[str]:
    """Unique ids and size limits over arrays that are each well-typed."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    total = 0
    for path, a in arrays:
        if a.id in seen:
            problems.append(f"{path}.id: {a.id} is used twice (also {seen[a.id]}.id)")
        else:
            seen[a.id] = path
        if a.devices > MAX_ARRAY_DEVICES:
            problems.append(
                f"{path}: {a.rows} x {a.cols} = {a.devices} devices is more than leac accepts "
                f"in one array ({MAX_ARRAY_DEVICES})"
            )
        total += a.devices
    if len(arrays) > MAX_ARRAYS:
        problems.append(f"{where}: {len(arrays)} arrays is more than leac accepts ({MAX_ARRAYS})")
    if total > MAX_DEVICES:
        problems.append(
            f"{where}: {total} devices in total is more than leac accepts ({MAX_DEVICES})"
        )
    return problems


def _defects_cross_problems(
    defects: Sequence[tuple[int, Defect]], arrays: Mapping[int, Array]
) -> list[str]:
    """Coordinates inside their array, and no device marked with two different states.

    Each entry is compared with the entries before it: device against device,
    a device against a marked row or column through it, a row against a row,
    a column against a column, and a row against every column it crosses.
    """
    problems: list[str] = []
    dev: dict[tuple[int, int, int], tuple[str, int]] = {}
    row_line: dict[tuple[int, int], dict[str, int]] = {}
    col_line: dict[tuple[int, int], dict[str, int]] = {}
    dev_in_row: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
    dev_in_col: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
    rows_of_array: dict[int, dict[str, tuple[int, int]]] = {}
    cols_of_array: dict[int, dict[str, tuple[int, int]]] = {}
    for i, d in defects:
        path = f"defects[{i}]"
        arr = arrays.get(d.array)
        if arr is None:
            problems.append(f"{path}.array: {d.array} is not the id of any array")
            continue
        bad = False
        if d.row is not None and d.row >= arr.rows:
            problems.append(f"{path}.row: {d.row} is outside array {arr.id} ({arr.rows} rows)")
            bad = True
        if d.col is not None and d.col >= arr.cols:
            problems.append(f"{path}.col: {d.col} is outside array {arr.id} ({arr.cols} columns)")
            bad = True
        if bad:
            continue
        a, r, c, s = d.array, d.row, d.col, d.state
        other = STUCK_LOW if s == STUCK_HIGH else STUCK_HIGH
        conflict: str | None = None
        if r is not None and c is not None:
            where = f"device (array {a}, row {r}, col {c}) is marked {s} here"
            earlier = dev.get((a, r, c))
            if earlier is not None and earlier[0] == other:
                conflict = f"{where} and {other} in defects[{earlier[1]}]"
            elif other in row_line.get((a, r), {}):
                j = row_line[(a, r)][other]
                conflict = f"{where} and lies in row {r}, marked {other} in defects[{j}]"
            elif other in col_line.get((a, c), {}):
                j = col_line[(a, c)][other]
                conflict = f"{where} and lies in column {c}, marked {other} in defects[{j}]"
            if conflict is None:
                dev.setdefault((a, r, c), (s, i))
                dev_in_row.setdefault((a, r), {}).setdefault(s, (i, c))
                dev_in_col.setdefault((a, c), {}).setdefault(s, (i, r))
        else:
            if c is None:
                kind, index, cross = "row", r, "column"
                same, devs, crossing = row_line, dev_in_row, cols_of_array
            else:
                kind, index, cross = "column", c, "row"
                same, devs, crossing = col_line, dev_in_col, rows_of_array
            assert index is not None
            where = f"{kind} {index} of array {a} is marked {s} here"
            if other in same.get((a, index), {}):
                conflict = f"{where} and {other} in defects[{same[(a, index)][other]}]"
            elif other in devs.get((a, index), {}):
                j, k = devs[(a, index)][other]
                rc = f"row {index}, col {k}" if kind == "row" else f"row {k}, col {index}"
                conflict = f"{where} but device ({rc}) is marked {other} in defects[{j}]"
            elif other in crossing.get(a, {}):
                j, k = crossing[a][other]
                conflict = f"{where} and crosses {cross} {k}, marked {other} in defects[{j}]"
            if conflict is None:
                same.setdefault((a, index), {}).setdefault(s, i)
                own = rows_of_array if kind == "row" else cols_of_array
                own.setdefault(a, {}).setdefault(s, (i, index))
        if conflict is not None:
            problems.append(f"{path}: {conflict}")
    return problems


# --------------------------------------------------------------------------
# The data model


def _as_float(value: object) -> object:
    """`value` as a Python float if it is a real number (not a bool), else unchanged."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        try:
            return float(value)
        except OverflowError:
            return value
    return value


def _as_int(value: object) -> object:
    """`value` as a Python int if it is an integer (numpy ones too, not a bool), else unchanged."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return value


def _coerce(obj: object, names: Sequence[str], convert: Callable[[object], object]) -> None:
    """Normalise fields of a frozen dataclass in place (ints to float, numpy ints to int)."""
    for name in names:
        object.__setattr__(obj, name, convert(getattr(obj, name)))


@dataclass(frozen=True)
class DeviceModel:
    """The memristor device model; defaults are the seed paper's measured 1T1R ReRAM.

    Attributes:
        levels_uS: Programmable conductance states in uS, strictly ascending.
        stuck_high_uS: Conductance of a stuck-high device when its defect gives none.
        stuck_low_uS: Conductance of a stuck-low device when its defect gives none.
        write_noise_uS: Standard deviation of a healthy device's programmed conductance.
        read_noise_uS: Half-width of the uniform noise added at every read.
    """

    levels_uS: tuple[float, ...] = (133.0, 167.0, 200.0, 233.0)
    stuck_high_uS: float = 500.0
    stuck_low_uS: float = 10.0
    write_noise_uS: float = 16.66
    read_noise_uS: float = 10.0

    def __post_init__(self) -> None:
        levels = self.levels_uS
        if isinstance(levels, (list, tuple, np.ndarray)):
            object.__setattr__(self, "levels_uS", tuple(_as_float(v) for v in levels))
        _coerce(self, [f for f in _DEVICE_KINDS if f != "levels_uS"], _as_float)
        problems = _model_problems(_fields_of(self), _DEVICE_KINDS, "device")
        if problems:
            raise InvalidChipError("device model", problems)


@dataclass(frozen=True)
class Periphery:
    """The DAC/ADC, timing and energy model of the board around the arrays.

    The defaults are placeholders of a plausible order (see the spec); reports
    say which values were used.
    """

    v_read_V: float = 0.2
    dac_bits: int = 12
    adc_bits: int = 12
    adcs_per_array: int = 1
    clock_MHz: float = 100.0
    t_mvm_ns: float = 100.0
    t_adc_ns: float = 10.0
    t_write_pulse_ns: float = 100.0
    e_device_read_pJ: float = 0.01
    e_adc_pJ: float = 2.0
    e_dac_pJ: float = 0.5
    e_write_pulse_pJ: float = 10.0

    def __post_init__(self) -> None:
        for name, kind in _PERIPHERY_KINDS.items():
            convert = _as_int if kind in ("count", "bits") else _as_float
            object.__setattr__(self, name, convert(getattr(self, name)))
        problems = _model_problems(_fields_of(self), _PERIPHERY_KINDS, "periphery")
        if problems:
            raise InvalidChipError("periphery model", problems)


@dataclass(frozen=True)
class Array:
    """One physical crossbar array: `rows` word lines by `cols` bit lines."""

    id: int
    rows: int
    cols: int

    def __post_init__(self) -> None:
        # Exact ints (the usual case) are already what _as_int would make of them.
        if type(self.id) is not int or type(self.rows) is not int or type(self.cols) is not int:
            _coerce(self, ("id", "rows", "cols"), _as_int)

    @property
    def devices(self) -> int:
        """Number of devices in the array."""
        return self.rows * self.cols


@dataclass(frozen=True)
class Defect:
    """One stuck device, or a whole stuck row or column, of one array.

    Attributes:
        array: Id of the array.
        row: Row of the device; None marks the whole column `col`.
        col: Column of the device; None marks the whole row `row`.
        state: "stuck_high" or "stuck_low".
        g_uS: Measured conductance in uS; None takes the device model's default.
    """

    array: int
    row: int | None
    col: int | None
    state: str
    g_uS: float | None = None

    def __post_init__(self) -> None:
        # Exact ints, None and exact floats (the usual case) are already what
        # _as_int / _as_float would make of them: skip the slow generic path.
        row, col, g = self.row, self.col, self.g_uS
        if (
            type(self.array) is not int
            or (row is not None and type(row) is not int)
            or (col is not None and type(col) is not int)
        ):
            _coerce(self, ("array", "row", "col"), _as_int)
        if g is not None and type(g) is not float:
            _coerce(self, ("g_uS",), _as_float)

    @property
    def is_line(self) -> bool:
        """True for a whole-row or whole-column defect."""
        return self.row is None or self.col is None


@dataclass(frozen=True)
class Chip:
    """A chip: its arrays, their defects, and the device and periphery models.

    Constructing a Chip validates it (the same rules as the file loader), so
    every Chip in leac is a valid one. Equality compares every field but `file_name`.

    Attributes:
        arrays: The physical crossbar arrays, in file order.
        defects: The stuck devices and lines, in file order.
        device: The device model.
        periphery: The DAC/ADC, timing and energy model.
        name: Free text echoed in reports.
        grid: True if the file gave `arrays` as a uniform grid, so that saving
            writes it back the same way.
        file_name: The name of the file the chip was read from (`load_chip`),
            or None; not part of the chip (not saved, not compared, not in the
            fingerprint). Reports show it for a chip without a name
            (`display_name`).
    """

    arrays: tuple[Array, ...]
    defects: tuple[Defect, ...] = ()
    device: DeviceModel = DeviceModel()
    periphery: Periphery = Periphery()
    name: str | None = None
    grid: bool = False
    file_name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("arrays", "defects"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        table = _fast_chip_table(self)
        if table is None:
            problems = _chip_problems(self)
            if problems:
                raise InvalidChipError("chip", _capped(problems))
        # The bulk form of the defects, for the fast queries; None (a chip the fast
        # path could not vouch for, or built with it off) means the per-defect paths.
        self.__dict__["_table"] = table

    @cached_property
    def _table(self) -> _DefectTable | None:
        # Normally set by the constructor; computed here only for an object made otherwise.
        return _fast_chip_table(self)

    @cached_property
    def _arrays_by_id(self) -> dict[int, Array]:
        return {a.id: a for a in self.arrays}

    @cached_property
    def _positions(self) -> dict[int, int]:
        return {a.id: p for p, a in enumerate(self.arrays)}

    @cached_property
    def _map_plan(self) -> _MapPlan | None:
        return None if self._table is None else _map_plan(self._table, self.arrays, self.device)

    @cached_property
    def _defects_by_array(self) -> dict[int, list[Defect]]:
        grouped: dict[int, list[Defect]] = {}
        for d in self.defects:
            grouped.setdefault(d.array, []).append(d)
        return grouped

    def array(self, array_id: int) -> Array:
        """The array with id `array_id`.

        Raises:
            UsageError: the chip has no such array.
        """
        try:
            return self._arrays_by_id[array_id]
        except (KeyError, TypeError):
            ids = sorted(self._arrays_by_id)
            raise UsageError(
                f"{self._label()} has no array {array_id!r} (its array ids: {_id_ranges(ids)})"
            ) from None

    @property
    def device_count(self) -> int:
        """Total number of devices over all arrays."""
        return sum(a.devices for a in self.arrays)

    def stuck_map(self, array_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The stuck devices of one array as two rows x cols matrices.

        Line defects cover their whole row or column and are applied first, in
        file order; device defects are applied after them, in file order. So
        where one device is marked more than once (always with the same state
        in a valid chip), a device-level entry beats a line entry and otherwise
        the later entry wins. A defect without `g_uS` takes the device model's
        `stuck_high_uS` / `stuck_low_uS`.

        Args:
            array_id: Id of the array.

        Returns:
            `(state, g_uS)`: an int8 matrix (0 healthy, 1 stuck high, -1 stuck
            low) and a float64 matrix of each stuck device's conductance in uS
            (NaN where healthy). Both are fresh arrays the caller may modify.

        Raises:
            UsageError: the chip has no such array.
        """
        arr = self.array(array_id)
        plan = self._map_plan
        if plan is None:
            return self._stuck_map_per_defect(arr)
        state = np.zeros((arr.rows, arr.cols), dtype=np.int8)
        g_uS = np.full((arr.rows, arr.cols), np.nan, dtype=np.float64)
        p = self._positions[arr.id]
        start, end = plan.line_bounds[p], plan.line_bounds[p + 1]
        if end > start:  # lines first, in file order
            for row, col, code, value in zip(
                plan.line_row[start:end].tolist(),
                plan.line_col[start:end].tolist(),
                plan.line_code[start:end].tolist(),
                plan.line_g[start:end].tolist(),
                strict=True,
            ):
                if col < 0:
                    state[row, :] = code
                    g_uS[row, :] = value
                else:
                    state[:, col] = code
                    g_uS[:, col] = value
        start, end = plan.device_bounds[p], plan.device_bounds[p + 1]
        if end > start:  # then the last entry of each device
            flat = plan.device_flat[start:end]
            state.flat[flat] = plan.device_code[start:end]
            g_uS.flat[flat] = plan.device_g[start:end]
        return state, g_uS

    def _stuck_map_per_defect(self, arr: Array) -> tuple[np.ndarray, np.ndarray]:
        """`stuck_map` defect by defect (the reference for the bulk path)."""
        state = np.zeros((arr.rows, arr.cols), dtype=np.int8)
        g_uS = np.full((arr.rows, arr.cols), np.nan, dtype=np.float64)
        defects = self._defects_by_array.get(arr.id, [])
        for d in defects:
            if d.is_line:
                code, value = self._code_and_g(d)
                if d.col is None:
                    state[d.row, :] = code
                    g_uS[d.row, :] = value
                else:
                    state[:, d.col] = code
                    g_uS[:, d.col] = value
        devices = [d for d in defects if not d.is_line]
        if devices:
            flat = np.array([d.row * arr.cols + d.col for d in devices], dtype=np.int64)  # type: ignore[operator]
            coded = [self._code_and_g(d) for d in devices]
            codes = np.array([c for c, _ in coded], dtype=np.int8)
            values = np.array([v for _, v in coded], dtype=np.float64)
            # Keep the last entry of each device: the first occurrence in the reversed order.
            _, first_reversed = np.unique(flat[::-1], return_index=True)
            keep = len(flat) - 1 - first_reversed
            state.flat[flat[keep]] = codes[keep]
            g_uS.flat[flat[keep]] = values[keep]
        return state, g_uS

    def _code_and_g(self, d: Defect) -> tuple[int, float]:
        if d.state == STUCK_HIGH:
            return 1, d.g_uS if d.g_uS is not None else self.device.stuck_high_uS
        return -1, d.g_uS if d.g_uS is not None else self.device.stuck_low_uS

    @cached_property
    def _counts_by_array(self) -> dict[int, dict[str, int]]:
        # The chip is immutable, so the counts are computed once, on first use.
        plan = self._map_plan
        if plan is None:
            return self._counts_per_defect()
        counts: dict[int, dict[str, int]] = {}
        line_bounds = plan.line_bounds
        for p, (arr, high, low, dead_rows, dead_cols) in enumerate(
            zip(
                self.arrays,
                plan.device_high.tolist(),
                plan.device_low.tolist(),
                plan.dead_rows.tolist(),
                plan.dead_cols.tolist(),
                strict=True,
            )
        ):
            if line_bounds[p + 1] > line_bounds[p]:  # lines: count the map
                state, _ = self.stuck_map(arr.id)
                high = int(np.count_nonzero(state == 1))
                low = int(np.count_nonzero(state == -1))
            counts[arr.id] = {
                "stuck_high": high,
                "stuck_low": low,
                "dead_rows": dead_rows,
                "dead_cols": dead_cols,
                "healthy": arr.devices - high - low,
            }
        return counts

    def _counts_per_defect(self) -> dict[int, dict[str, int]]:
        """`_counts_by_array` defect by defect (the reference for the bulk path)."""
        counts: dict[int, dict[str, int]] = {}
        for arr in self.arrays:
            defects = self._defects_by_array.get(arr.id, [])
            high = low = 0
            if defects:
                state, _ = self.stuck_map(arr.id)
                high = int(np.count_nonzero(state == 1))
                low = int(np.count_nonzero(state == -1))
            counts[arr.id] = {
                "stuck_high": high,
                "stuck_low": low,
                "dead_rows": len({d.row for d in defects if d.col is None}),
                "dead_cols": len({d.col for d in defects if d.row is None}),
                "healthy": arr.devices - high - low,
            }
        return counts

    def defect_counts(self, array_id: int | None = None) -> dict[str, int]:
        """Defect counts of the whole chip, or of one array.

        Args:
            array_id: Count only this array; None counts the whole chip.

        Returns:
            A new dict with `stuck_high` and `stuck_low` (devices in that
            state, whether marked singly or by a line), `dead_rows` and
            `dead_cols` (distinct rows / columns marked as a whole line, in
            either state) and `healthy` (all other devices). stuck_high +
            stuck_low + healthy is the number of devices counted.

        Raises:
            UsageError: the chip has no array `array_id`.
        """
        if array_id is not None:
            return dict(self._counts_by_array[self.array(array_id).id])
        total = dict.fromkeys(("stuck_high", "stuck_low", "dead_rows", "dead_cols", "healthy"), 0)
        for counts in self._counts_by_array.values():
            for key, value in counts.items():
                total[key] += value
        return total

    def summary(self) -> str:
        """One line for people: name, arrays, devices and defect counts."""
        sizes = {(a.rows, a.cols) for a in self.arrays}
        if len(sizes) == 1:
            rows, cols = next(iter(sizes))
            shape = f"{rows} x {cols}"
        else:
            shape = "mixed sizes"
        n = len(self.arrays)
        total = self.device_count
        c = self.defect_counts()
        stuck = c["stuck_high"] + c["stuck_low"]
        share = 100.0 * stuck / total
        return (
            f"{self._label()}: {n} {'array' if n == 1 else 'arrays'} of {shape}, "
            f"{total} devices, {c['stuck_high']} stuck high, {c['stuck_low']} stuck low "
            f"({share:.2f}% stuck), {c['dead_rows']} dead rows, {c['dead_cols']} dead columns, "
            f"{c['healthy']} healthy"
        )

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the chip's canonical JSON form, so a program can name its chip.

        The canonical form is `chip_to_json` without the free-text `name` and
        with `arrays` always as an explicit list, serialised with sorted keys
        and no whitespace: renaming a chip or writing its arrays as a grid
        instead of a list does not change what the chip is.
        """
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        obj = _chip_json_head(self)
        obj.pop("name", None)
        obj["arrays"] = [_array_json(a) for a in self.arrays]
        if self._table is None:
            obj["defects"] = [_defect_json(d) for d in self.defects]
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
            return hashlib.sha256(text.encode("utf-8")).hexdigest()
        # The same text, with the defects (exact ints, strs and floats) formatted in bulk.
        obj["defects"] = []
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
        head, tail = text.split('"defects":[]')  # the only string values are keys and FORMAT
        digest = hashlib.sha256(head.encode("utf-8"))
        digest.update(b'"defects":[')
        digest.update(",".join(_canonical_defect_texts(self.defects)).encode("utf-8"))
        digest.update(b"]")
        digest.update(tail.encode("utf-8"))
        return digest.hexdigest()

    @property
    def display_name(self) -> str | None:
        """What reports call the chip: its `name`, else the name of the file it was read from, else None.

        A chip made by `leac chip synth` or `leac chip import` without `--name` has no name; its reports
        then say `chip 'c.json'`, not `chip None`. The one place of this fallback.
        """
        return self.name if self.name is not None else self.file_name

    def with_file_name(self, file_name: str | None) -> Chip:
        """This chip, remembering `file_name` as the file it came from (the same object when already so)."""
        if file_name == self.file_name:
            return self
        chip = copy.copy(self)
        object.__setattr__(chip, "file_name", file_name)
        return chip

    def _label(self) -> str:  # the name only: the file's name is beside it wherever a summary is shown
        return f"chip {self.name!r}" if self.name is not None else "chip"


# --------------------------------------------------------------------------
# Whole-chip checks


def _chip_problems(chip: Chip) -> list[str]:
    """Every problem of a constructed Chip, with the JSON paths its file would have."""
    problems: list[str] = []
    if not isinstance(chip.device, DeviceModel):
        problems.append(f"device: {chip.device!r} is not a DeviceModel")
    if not isinstance(chip.periphery, Periphery):
        problems.append(f"periphery: {chip.periphery!r} is not a Periphery")
    if chip.name is not None and (p := _name_problem(chip.name, "name")):
        problems.append(p)
    if not isinstance(chip.grid, bool):
        problems.append(f"grid: {chip.grid!r} is not a bool")
    if not isinstance(chip.arrays, tuple) or not isinstance(chip.defects, tuple):
        return problems + ["arrays and defects must be sequences of Array and Defect"]
    arrays: list[tuple[str, Array]] = []
    for i, a in enumerate(chip.arrays):
        path = f"arrays[{i}]"
        if not isinstance(a, Array):
            problems.append(f"{path}: {a!r} is not an Array")
        elif array_problems := _array_problems(_fields_of(a), path):
            problems += array_problems
        else:
            arrays.append((path, a))
    if not chip.arrays:
        problems.append("arrays: the chip has no arrays")
    problems += _arrays_cross_problems(arrays, "arrays")
    defects: list[tuple[int, Defect]] = []
    fast = _FAST_PATHS
    for i, d in enumerate(chip.defects):
        if fast and type(d) is Defect and _plain_defect_fields(*_fields_of_defect(d)) is not None:
            defects.append((i, d))
            continue
        path = f"defects[{i}]"
        if not isinstance(d, Defect):
            problems.append(f"{path}: {d!r} is not a Defect")
        elif defect_problems := _defect_problems(_fields_of(d), path):
            problems += defect_problems
        else:
            defects.append((i, d))
    if not problems:
        cross = _cross_problems_in_bulk if fast else _defects_cross_problems
        problems += cross(defects, {a.id: a for _, a in arrays})
    if chip.grid is True and not problems and not _is_grid(chip.arrays):
        problems.append("grid: the arrays are not a uniform grid (ids 0..n-1, all one size)")
    return problems


def _is_grid(arrays: Sequence[Array]) -> bool:
    first = arrays[0]
    return all(
        a.id == i and (a.rows, a.cols) == (first.rows, first.cols) for i, a in enumerate(arrays)
    )


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problems"]


def _id_ranges(ids: Sequence[int]) -> str:
    """Sorted ids as compact ranges: [0, 1, 2, 5] -> '0..2, 5'."""
    parts: list[str] = []
    start = prev = None
    for i in [*ids, None]:
        if start is not None and (i is None or i != prev + 1):  # type: ignore[operator]
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts) or "none"


# --------------------------------------------------------------------------
# Fast paths for large chips
#
# A chip of 1024 arrays of 128 x 128 with 5% stuck devices has ~840,000 defect
# entries; checking and building them one at a time takes tens of seconds. The
# fast paths gather each field of every entry in one C-level pass (map, set),
# check the types in bulk, then ranges and conflicts with numpy, and build the
# Defect objects without re-running their __init__ checks. They accept only
# what the per-entry checks above would certainly accept: anything they cannot
# vouch for (an unusual type, a value out of range, a conflict, ...) makes
# them give up (return None), and the per-entry path runs instead and writes
# the messages. Even then, entries that are plainly fine skip the per-entry
# checks (`_plain_defect_fields`), and the order-dependent conflict walk runs
# only over the entries and arrays that may have a problem
# (`_cross_problems_in_bulk`). So the fast paths change speed, never results;
# `_FAST_PATHS = False` makes leac take the per-entry path everywhere (the
# tests' reference).

_FAST_PATHS = True
"""Use the bulk fast paths (tests switch them off to compare with the reference path)."""

_NONE_TYPE = type(None)
_INT_OR_NONE = frozenset((int, _NONE_TYPE))
_G_TYPES = frozenset((int, float, _NONE_TYPE))
_STATE_SET = frozenset(STATES)


class _DefectTable(NamedTuple):
    """The defects of a chip as numpy columns, in the chip's order (only for valid defects)."""

    pos: np.ndarray
    """int64: position of the defect's array in `Chip.arrays`."""
    row: np.ndarray
    """int64: the row; -1 where the defect marks a whole column."""
    col: np.ndarray
    """int64: the column; -1 where the defect marks a whole row."""
    high: np.ndarray
    """bool: stuck high (else stuck low)."""
    g_uS: np.ndarray
    """float64: the defect's g_uS; NaN where it gives none (a given one is always finite)."""


def _int_column(values: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact ints or None as (int64, -1 for None; None mask); None if one is negative or huge."""
    n = len(values)
    nones = values.count(None)
    try:
        if nones == 0:
            column = np.array(values, dtype=np.int64)
            missing = np.zeros(n, dtype=bool)
        else:
            column = np.array([-1 if v is None else v for v in values], dtype=np.int64)
            missing = np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=n)
    except OverflowError:
        return None
    if column.size and ((column < 0) & ~missing).any():
        return None
    return column, missing


def _table_from_columns(
    arrays: Sequence[Array],
    array_ids: list[Any],
    rows: list[Any],
    cols: list[Any],
    states: list[Any],
    g_uS: list[Any],
) -> _DefectTable | None:
    """The defect fields as a table if every entry is certainly well-typed, else None.

    Accepts only what `_defect_problems` finds no problem with (exact ints,
    None, exact strs, exact finite floats), whose array id is one of `arrays`
    (ids already validated). Coordinates are not yet checked against the
    arrays (see `_table_is_consistent`).
    """
    n = len(array_ids)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _DefectTable(empty, empty, empty, np.zeros(0, bool), np.zeros(0, np.float64))
    if set(map(type, array_ids)) != {int}:
        return None
    if not set(map(type, rows)) <= _INT_OR_NONE or not set(map(type, cols)) <= _INT_OR_NONE:
        return None
    if set(map(type, states)) != {str} or not set(states) <= _STATE_SET:
        return None
    g_types = set(map(type, g_uS))
    if not g_types <= _G_TYPES:
        return None
    if int in g_types and not all(
        MIN_CONDUCTANCE_uS <= v <= MAX_CONDUCTANCE_uS for v in g_uS if type(v) is int
    ):
        return None
    # Array ids are validated non-negative ints, so -1 marks an unknown (or negative) id.
    position = {a.id: p for p, a in enumerate(arrays)}
    pos = np.fromiter(map(position.get, array_ids, repeat(-1)), dtype=np.int64, count=n)
    if (pos < 0).any():
        return None
    row_column = _int_column(rows)
    col_column = _int_column(cols)
    if row_column is None or col_column is None:
        return None
    (row, row_none), (col, col_none) = row_column, col_column
    if (row_none & col_none).any():
        return None
    if g_types == {_NONE_TYPE}:
        g = np.full(n, np.nan)
    else:
        g = np.array([math.nan if v is None else float(v) for v in g_uS], dtype=np.float64)
        given = g[np.fromiter(map(operator.is_not, g_uS, repeat(None)), dtype=bool, count=n)]
        if not (np.isfinite(given).all() and (given >= MIN_CONDUCTANCE_uS).all()
                and (given <= MAX_CONDUCTANCE_uS).all()):
            return None
    high = np.fromiter(map(STUCK_HIGH.__eq__, states), dtype=bool, count=n)
    return _DefectTable(pos, row, col, high, g)


def _unique(values: np.ndarray) -> np.ndarray:
    """np.unique(values) for int64, by sorting (numpy 2's hash-based unique is far slower here)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _two_states(keys: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The keys that appear both stuck high and stuck low."""
    if keys.size < 2:
        return keys[:0]
    marked = _unique(keys * 2 + high)
    both = (marked[1:] >> 1) == (marked[:-1] >> 1)
    return marked[1:][both] >> 1


def _in_other_state(
    keys: np.ndarray, high: np.ndarray, line_keys: np.ndarray, line_high: np.ndarray
) -> np.ndarray:
    """Which keys are among `line_keys` with the other state (a bool mask)."""
    if keys.size == 0 or line_keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    marked = _unique(line_keys * 2 + line_high)
    wanted = keys * 2 + (~high).astype(np.int64)
    at = np.minimum(np.searchsorted(marked, wanted), marked.size - 1)
    return marked[at] == wanted


def _conflicting_arrays(
    pos: np.ndarray, row: np.ndarray, col: np.ndarray, high: np.ndarray, arrays: Sequence[Array]
) -> np.ndarray:
    """Which arrays (a bool per position) have a device marked with two states.

    The defects must lie inside their arrays (-1 for an absent row or col).
    A device can be covered twice only by: two device entries, a device entry
    and a marked row or column through it, two entries for the same row or
    column, or a marked row and a marked column of one array (which always
    cross). Each is checked for both states at once over the whole chip.
    """
    m = len(arrays)
    bad = np.zeros(m, dtype=bool)
    if pos.size == 0:
        return bad
    rows = np.array([a.rows for a in arrays], dtype=np.int64)
    cols = np.array([a.cols for a in arrays], dtype=np.int64)
    row_line = col < 0  # a whole row (its row is given)
    col_line = row < 0  # a whole column
    device = ~(row_line | col_line)
    sizes = rows * cols
    device_start = np.cumsum(sizes) - sizes
    row_start = np.cumsum(rows) - rows
    col_start = np.cumsum(cols) - cols
    d_pos, d_high = pos[device], high[device]
    d_key = device_start[d_pos] + row[device] * cols[d_pos] + col[device]
    r_key = row_start[pos[row_line]] + row[row_line]
    c_key = col_start[pos[col_line]] + col[col_line]
    r_high, c_high = high[row_line], high[col_line]
    for keys, states, starts in (
        (d_key, d_high, device_start),
        (r_key, r_high, row_start),
        (c_key, c_high, col_start),
    ):
        both = _two_states(keys, states)  # keys of array p lie in [starts[p], starts[p + 1])
        bad[np.searchsorted(starts, both, side="right") - 1] = True
    bad[d_pos[_in_other_state(row_start[d_pos] + row[device], d_high, r_key, r_high)]] = True
    bad[d_pos[_in_other_state(col_start[d_pos] + col[device], d_high, c_key, c_high)]] = True
    if r_key.size and c_key.size:

        def present(where: np.ndarray) -> np.ndarray:
            return np.bincount(pos[where], minlength=m) > 0

        rows_high, rows_low = present(row_line & high), present(row_line & ~high)
        cols_high, cols_low = present(col_line & high), present(col_line & ~high)
        bad |= (rows_high & cols_low) | (rows_low & cols_high)
    return bad


def _table_is_consistent(table: _DefectTable, arrays: Sequence[Array]) -> bool:
    """True if every defect lies inside its array and no device is marked with two states."""
    if table.pos.size == 0:
        return True
    rows = np.array([a.rows for a in arrays], dtype=np.int64)
    cols = np.array([a.cols for a in arrays], dtype=np.int64)
    pos, row, col, high = table.pos, table.row, table.col, table.high
    if (row >= rows[pos]).any() or (col >= cols[pos]).any():
        return False
    return not _conflicting_arrays(pos, row, col, high, arrays).any()


def _plain_defect_fields(
    array: object, row: object, col: object, state: object, g_uS: object
) -> tuple[int, int | None, int | None, str, float | None] | None:
    """The normalised fields of a defect `_defect_problems` certainly finds no problem with.

    None if it might (then the per-entry check decides); an absent row, col or
    g_uS is None here.
    """
    if type(array) is not int or array < 0 or type(state) is not str or state not in _STATE_SET:
        return None
    if row is None:
        if col is None:
            return None
    elif type(row) is not int or row < 0:
        return None
    if col is not None and (type(col) is not int or col < 0):
        return None
    if g_uS is not None:
        if type(g_uS) is float:
            if not MIN_CONDUCTANCE_uS <= g_uS <= MAX_CONDUCTANCE_uS:
                return None
        elif type(g_uS) is int and MIN_CONDUCTANCE_uS <= g_uS <= MAX_CONDUCTANCE_uS:
            g_uS = float(g_uS)
        else:
            return None
    return array, row, col, STUCK_HIGH if state == STUCK_HIGH else STUCK_LOW, g_uS


_DEFECT_KEY_SET = frozenset(_DEFECT_KEYS)
_fields_of_defect = operator.attrgetter(*_DEFECT_KEYS)


def _plain_defect_entry(item: object) -> Defect | None:
    """The Defect of a decoded entry the per-entry checks certainly find no problem with."""
    if type(item) is not dict or not item.keys() <= _DEFECT_KEY_SET:
        return None
    get = item.get
    row, col, g_uS = get("row"), get("col"), get("g_uS")
    if (row is None and "row" in item) or (col is None and "col" in item):
        return None  # null
    if g_uS is None and "g_uS" in item:
        return None
    fields = _plain_defect_fields(get("array"), row, col, get("state"), g_uS)
    return None if fields is None else _trusted_defect(*fields)


def _cross_problems_in_bulk(
    defects: Sequence[tuple[int, Defect]], arrays: Mapping[int, Array]
) -> list[str]:
    """`_defects_cross_problems`, walking entry by entry only where a problem may be.

    An entry with an unknown array or outside its array gets its message and
    leaves no trace for later entries, and conflicts are found within one
    array only. So walking just those entries and every entry of the arrays
    with a conflict, in file order, writes the same messages in the same order.
    """
    if not defects:
        return []
    listed = list(arrays.values())
    position = {array_id: p for p, array_id in enumerate(arrays)}
    entries = [d for _, d in defects]
    n = len(entries)
    ids = map(operator.attrgetter("array"), entries)
    pos = np.fromiter(map(position.get, ids, repeat(-1)), dtype=np.int64, count=n)
    try:
        row = np.array([-1 if d.row is None else d.row for d in entries], dtype=np.int64)
        col = np.array([-1 if d.col is None else d.col for d in entries], dtype=np.int64)
    except OverflowError:  # a coordinate beyond int64 (certainly outside its array)
        return _defects_cross_problems(defects, arrays)
    high = np.array([d.state == STUCK_HIGH for d in entries], dtype=bool)
    rows = np.array([a.rows for a in listed], dtype=np.int64)
    cols = np.array([a.cols for a in listed], dtype=np.int64)
    known = pos >= 0
    safe = np.where(known, pos, 0)
    inside = known & (row < rows[safe]) & (col < cols[safe])
    bad = _conflicting_arrays(pos[inside], row[inside], col[inside], high[inside], listed)
    walk = np.flatnonzero(~inside | bad[safe]).tolist()
    return _defects_cross_problems([defects[k] for k in walk], arrays) if walk else []


def _arrays_are_valid(arrays: tuple[Any, ...]) -> bool:
    """True if the arrays certainly pass `_array_problems` and `_arrays_cross_problems`."""
    if not arrays or set(map(type, arrays)) != {Array} or len(arrays) > MAX_ARRAYS:
        return False
    ids = list(map(operator.attrgetter("id"), arrays))
    rows = list(map(operator.attrgetter("rows"), arrays))
    cols = list(map(operator.attrgetter("cols"), arrays))
    if set(map(type, ids)) | set(map(type, rows)) | set(map(type, cols)) != {int}:
        return False
    if min(ids) < 0 or min(rows) < 1 or min(cols) < 1 or len(set(ids)) != len(ids):
        return False
    if max(rows) > MAX_ARRAY_ROWS or max(cols) > MAX_ARRAY_COLS:
        return False
    sizes = list(map(operator.mul, rows, cols))
    return max(sizes) <= MAX_ARRAY_DEVICES and sum(sizes) <= MAX_DEVICES


def _fast_chip_table(chip: Chip) -> _DefectTable | None:
    """The table of a chip that certainly has no problem (`_chip_problems` is empty), else None."""
    if not _FAST_PATHS:
        return None
    if not isinstance(chip.device, DeviceModel) or not isinstance(chip.periphery, Periphery):
        return None
    if chip.name is not None and _name_problem(chip.name, "name") is not None:
        return None
    arrays, defects = chip.arrays, chip.defects
    if not isinstance(chip.grid, bool) or not isinstance(arrays, tuple):
        return None
    if not isinstance(defects, tuple) or not _arrays_are_valid(arrays):
        return None
    if chip.grid and not _is_grid(arrays):
        return None
    if defects and set(map(type, defects)) != {Defect}:
        return None
    columns = [list(map(operator.attrgetter(key), defects)) for key in _DEFECT_KEYS]
    table = _table_from_columns(arrays, *columns)
    if table is None or not _table_is_consistent(table, arrays):
        return None
    return table


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many objects that form no cycles.

    Otherwise allocating a million objects on a heap that already holds
    millions triggers full collections that scan the whole heap again and
    again: about half the time of building the defects of a large chip.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_new_object = object.__new__
_set_attribute = object.__setattr__


def _trusted_defect(
    array: int, row: int | None, col: int | None, state: str, g_uS: float | None
) -> Defect:
    """A Defect from fields known to be valid and normalised, without __init__'s checks.

    The attributes are set in __init__'s order, so the object is laid out
    (and compares, hashes, pickles) exactly like a constructed one.
    """
    defect = _new_object(Defect)
    _set_attribute(defect, "array", array)
    _set_attribute(defect, "row", row)
    _set_attribute(defect, "col", col)
    _set_attribute(defect, "state", state)
    _set_attribute(defect, "g_uS", g_uS)
    return defect


def _trusted_defects(
    array_ids: list[int],
    rows: list[int | None],
    cols: list[int | None],
    table: _DefectTable,
    g_uS: list[Any],
) -> list[Defect]:
    """Defects from columns that `_table_from_columns` accepted as `table`."""
    states = list(map((STUCK_LOW, STUCK_HIGH).__getitem__, table.high.tolist()))
    if int in set(map(type, g_uS)):
        g_uS = [float(v) if type(v) is int else v for v in g_uS]  # as Defect's __init__ does
    with _gc_paused():
        return list(map(_trusted_defect, array_ids, rows, cols, states, g_uS))


def _trusted_chip(
    arrays: tuple[Array, ...],
    defects: tuple[Defect, ...],
    device: DeviceModel,
    periphery: Periphery,
    name: str | None,
    grid: bool,
    table: _DefectTable,
) -> Chip:
    """A Chip from parts already validated together (the table is their fast-path result)."""
    chip = _new_object(Chip)
    _set_attribute(chip, "arrays", arrays)
    _set_attribute(chip, "defects", defects)
    _set_attribute(chip, "device", device)
    _set_attribute(chip, "periphery", periphery)
    _set_attribute(chip, "name", name)
    _set_attribute(chip, "grid", grid)
    chip.__dict__["_table"] = table
    return chip


def _fast_parse_defects(
    raw: object, arrays: Sequence[Array]
) -> tuple[list[list[Any]], _DefectTable] | None:
    """The decoded `defects` list as columns and a table if it certainly has no problem."""
    if not _FAST_PATHS or not isinstance(raw, list):
        return None
    n = len(raw)
    if n and set(map(type, raw)) != {dict}:  # a _DupDict (repeated keys) is not a dict
        return None
    present = {key: sum(map(dict.__contains__, raw, repeat(key))) for key in _DEFECT_KEYS}
    # Every key is a known one (the known keys account for all keys) and the required are there.
    if present["array"] != n or present["state"] != n:
        return None
    if sum(present.values()) != sum(map(len, raw)):
        return None
    columns = [list(map(dict.get, raw, repeat(key))) for key in _DEFECT_KEYS]
    # A key that is present but null (None) is a problem. (Counted by identity: the
    # values are not type-checked yet, and == on some objects raises.)
    for key, column in zip(_DEFECT_KEYS, columns, strict=True):
        if key in ("row", "col", "g_uS"):
            if present[key] != n - sum(map(operator.is_, column, repeat(None))):
                return None
    table = _table_from_columns(arrays, *columns)
    if table is None or not _table_is_consistent(table, arrays):
        return None
    return columns, table


class _MapPlan(NamedTuple):
    """What `Chip.stuck_map` and the defect counts need, per array, from a defect table.

    `*_bounds[p] : *_bounds[p + 1]` is the slice of the array at position p.
    """

    line_bounds: list[int]
    line_row: np.ndarray  # the line entries, grouped by array, in file order within one
    line_col: np.ndarray
    line_code: np.ndarray
    line_g: np.ndarray
    device_bounds: list[int]
    device_flat: np.ndarray  # the last entry of each device, grouped by array
    device_code: np.ndarray
    device_g: np.ndarray
    device_high: np.ndarray  # per array: devices marked stuck high by device entries
    device_low: np.ndarray
    dead_rows: np.ndarray  # per array: distinct rows marked as a whole line
    dead_cols: np.ndarray


def _map_plan(table: _DefectTable, arrays: Sequence[Array], device: DeviceModel) -> _MapPlan:
    m = len(arrays)
    rows = np.array([a.rows for a in arrays], dtype=np.int64)
    cols = np.array([a.cols for a in arrays], dtype=np.int64)
    pos, row, col, high = table.pos, table.row, table.col, table.high
    code = np.where(high, 1, -1).astype(np.int8)
    default = np.where(high, device.stuck_high_uS, device.stuck_low_uS)
    value = np.where(np.isnan(table.g_uS), default, table.g_uS)
    is_line = (row < 0) | (col < 0)
    lines = np.flatnonzero(is_line)
    lines = lines[np.argsort(pos[lines], kind="stable")]
    line_bounds = np.searchsorted(pos[lines], np.arange(m + 1))
    devices = np.flatnonzero(~is_line)
    sizes = rows * cols
    start = np.cumsum(sizes) - sizes
    d_pos = pos[devices]
    key = start[d_pos] + row[devices] * cols[d_pos] + col[devices]
    # The last entry of each device: its first in the reversed order (sorted by key).
    _, first_reversed = np.unique(key[::-1], return_index=True)
    keep = devices.size - 1 - first_reversed
    kept = devices[keep]
    device_bounds = np.searchsorted(key[keep], np.append(start, start[-1] + sizes[-1]))
    kept_pos, kept_code = pos[kept], code[kept]
    row_lines = col < 0
    col_lines = row < 0

    def distinct_per_array(where: np.ndarray, index: np.ndarray, span: int) -> np.ndarray:
        marked = _unique(pos[where] * span + index[where])
        return np.bincount(marked // span, minlength=m)

    return _MapPlan(
        line_bounds=line_bounds.tolist(),
        line_row=row[lines],
        line_col=col[lines],
        line_code=code[lines],
        line_g=value[lines],
        device_bounds=device_bounds.tolist(),
        device_flat=key[keep] - start[kept_pos],
        device_code=kept_code,
        device_g=value[kept],
        device_high=np.bincount(kept_pos[kept_code == 1], minlength=m),
        device_low=np.bincount(kept_pos[kept_code == -1], minlength=m),
        dead_rows=distinct_per_array(row_lines, row, int(rows.max())),
        dead_cols=distinct_per_array(col_lines, col, int(cols.max())),
    )


def _defect_line(d: Defect) -> str:
    """`d` as a line of the chip file: what `_defect_json` and `chip_to_text` give."""
    if d.g_uS is None and d.row is not None and d.col is not None:
        return f'    {{"array": {d.array}, "row": {d.row}, "col": {d.col}, "state": "{d.state}"}}'
    parts = [f'"array": {d.array}']
    if d.row is not None:
        parts.append(f'"row": {d.row}')
    if d.col is not None:
        parts.append(f'"col": {d.col}')
    parts.append(f'"state": "{d.state}"')
    if d.g_uS is not None:
        parts.append(f'"g_uS": {d.g_uS!r}')
    return "    {" + ", ".join(parts) + "}"


def _defect_lines(defects: Sequence[Defect]) -> list[str]:
    """The file lines of defects with exact int, str and float fields (a valid table's).

    json.dumps writes an exact int as `int.__repr__`, a finite float as
    `float.__repr__` and these ASCII strs verbatim, which is what the
    f-strings give.
    """
    return [
        f'    {{"array": {d.array}, "row": {d.row}, "col": {d.col}, "state": "{d.state}"}}'
        if d.g_uS is None and d.row is not None and d.col is not None
        else _defect_line(d)
        for d in defects
    ]


def _canonical_defect_text(d: Defect) -> str:
    """`d` as `json.dumps(_defect_json(d), sort_keys=True, separators=(",", ":"))` gives it."""
    parts = [f'"array":{d.array}']
    if d.col is not None:
        parts.append(f'"col":{d.col}')
    if d.g_uS is not None:
        parts.append(f'"g_uS":{d.g_uS!r}')
    if d.row is not None:
        parts.append(f'"row":{d.row}')
    parts.append(f'"state":"{d.state}"')
    return "{" + ",".join(parts) + "}"


def _canonical_defect_texts(defects: Sequence[Defect]) -> list[str]:
    """The fingerprint's text of defects with exact int, str and float fields."""
    return [
        f'{{"array":{d.array},"col":{d.col},"row":{d.row},"state":"{d.state}"}}'
        if d.g_uS is None and d.row is not None and d.col is not None
        else _canonical_defect_text(d)
        for d in defects
    ]


# --------------------------------------------------------------------------
# Parsing a decoded JSON object


def _object(
    value: object,
    path: str,
    allowed: Sequence[str],
    required: Sequence[str],
    problems: list[str],
) -> dict[str, Any] | None:
    """`value` if it is a JSON object; records duplicate, unknown and missing keys."""
    if not isinstance(value, dict):
        problems.append(f"{path or 'top level'}: {_show(value)} is not a JSON object")
        return None
    for key in getattr(value, "duplicates", ()):
        problems.append(f"{_join(path, key)}: key appears more than once")
    ok = True
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{_join(path, key)}: unknown key{hint}")
    for key in required:
        if key not in value:
            problems.append(f"{_join(path, key)}: missing (required)")
            ok = False
    return value if ok else None


def _parse_model(
    top: Mapping[str, object],
    key: str,
    kinds: Mapping[str, str],
    problems: list[str],
) -> dict[str, Any] | None:
    """The keyword arguments of a device or periphery model, or None if it has problems."""
    if key not in top:
        return {}
    before = len(problems)
    values = _object(top[key], key, tuple(kinds), (), problems)
    if values is None:
        return None
    problems += _model_problems(values, kinds, key)
    if len(problems) > before:
        return None
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _parse_arrays(raw: object, problems: list[str]) -> tuple[list[Array] | None, bool]:
    """The arrays (None if any entry is bad) and whether they were given as a grid."""
    if isinstance(raw, dict):
        before = len(problems)
        grid = _object(raw, "arrays", _GRID_KEYS, _GRID_KEYS, problems)
        if grid is None:
            return None, True
        for key in _GRID_KEYS:
            if p := _int_problem(grid[key], f"arrays.{key}", minimum=1):
                problems.append(p)
        if len(problems) > before:
            return None, True
        count, rows, cols = grid["count"], grid["rows"], grid["cols"]
        if count > MAX_ARRAYS:
            problems.append(f"arrays.count: {count} is more than leac accepts ({MAX_ARRAYS})")
        elif rows > MAX_ARRAY_ROWS:
            problems.append(f"arrays.rows: {rows} is more than leac accepts ({MAX_ARRAY_ROWS})")
        elif cols > MAX_ARRAY_COLS:
            problems.append(f"arrays.cols: {cols} is more than leac accepts ({MAX_ARRAY_COLS})")
        elif rows * cols > MAX_ARRAY_DEVICES:
            problems.append(
                f"arrays: {rows} x {cols} = {rows * cols} devices is more than leac accepts "
                f"in one array ({MAX_ARRAY_DEVICES})"
            )
        elif count * rows * cols > MAX_DEVICES:
            problems.append(
                f"arrays: {count * rows * cols} devices in total is more than leac accepts "
                f"({MAX_DEVICES})"
            )
        else:
            return [Array(i, rows, cols) for i in range(count)], True
        return None, True
    if isinstance(raw, list):
        if not raw:
            problems.append("arrays: [] lists no arrays")
            return None, False
        good: list[tuple[str, Array]] = []
        for i, item in enumerate(raw):
            path = f"arrays[{i}]"
            entry = _object(item, path, _ARRAY_KEYS, _ARRAY_KEYS, problems)
            if entry is None:
                continue
            if entry_problems := _array_problems(entry, path):
                problems += entry_problems
            else:
                good.append((path, Array(**{k: v for k, v in entry.items() if k in _ARRAY_KEYS})))
        cross = _arrays_cross_problems(good, "arrays")
        problems += cross
        if len(good) < len(raw) or cross:
            return None, False
        return [a for _, a in good], False
    problems.append(
        f'arrays: {_show(raw)} is neither a grid {{"count", "rows", "cols"}} nor a list of arrays'
    )
    return None, False


def _parse_defects(raw: object, problems: list[str]) -> list[tuple[int, Defect]]:
    """The well-typed defect entries with their index in the file."""
    if not isinstance(raw, list):
        problems.append(f"defects: {_show(raw)} is not a list")
        return []
    good: list[tuple[int, Defect]] = []
    # Without the fast paths, no entry is taken as plain: each goes through the checks.
    plain = _plain_defect_entry if _FAST_PATHS else lambda item: None
    with _gc_paused():
        for i, item in enumerate(raw):
            if (defect := plain(item)) is not None:
                good.append((i, defect))
                continue
            path = f"defects[{i}]"
            entry = _object(item, path, _DEFECT_KEYS, ("array", "state"), problems)
            if entry is None:
                continue
            nulls = [k for k in ("row", "col", "g_uS") if k in entry and entry[k] is None]
            for key in nulls:
                problems.append(f"{path}.{key}: null is not allowed (leave the key out instead)")
            if entry_problems := _defect_problems(entry, path):
                problems += entry_problems
            elif not nulls:
                known = {k: v for k, v in entry.items() if k in _DEFECT_KEYS}
                good.append((i, Defect(**{"row": None, "col": None, **known})))
    return good


def parse_chip(obj: object, source: str) -> Chip:
    """Validate a decoded `leac-chip` JSON object and build the Chip it describes.

    Every problem is collected before raising, each naming its JSON path and
    value, so a test station can fix a file in one round.

    Args:
        obj: The decoded JSON (as from `json.loads`).
        source: Where it came from (a file name), for the error message.

    Returns:
        The chip.

    Raises:
        InvalidChipError: the object breaks the format; `problems` lists every problem.
    """
    problems: list[str] = []
    top = _object(obj, "", _TOP_KEYS, ("format", "version", "arrays"), problems)
    if not isinstance(obj, dict):
        raise InvalidChipError(source, problems)
    fmt = obj.get("format", FORMAT)
    if fmt != FORMAT:
        # A different kind of file: its other keys would only add noise.
        raise InvalidChipError(source, [f'format: {_show(fmt)} is not "{FORMAT}"'])
    if "version" in obj:
        version = obj["version"]
        if p := _int_problem(version, "version", minimum=1):
            problems.append(p)
        elif version > VERSION:
            raise InvalidChipError(
                source, [f"version: {version} is newer than this leac understands ({VERSION})"]
            )
    name = obj.get("name")
    if "name" in obj and (p := _name_problem(name, "name")):
        problems.append(p)
    device_kwargs = _parse_model(obj, "device", _DEVICE_KINDS, problems)
    periphery_kwargs = _parse_model(obj, "periphery", _PERIPHERY_KINDS, problems)
    arrays, grid = _parse_arrays(obj["arrays"], problems) if "arrays" in obj else (None, False)
    raw_defects = obj.get("defects", [])
    # The bulk check succeeds only where the per-entry checks find no problem at all.
    fast = _fast_parse_defects(raw_defects, arrays) if arrays is not None else None
    if fast is None:
        defects = _parse_defects(raw_defects, problems)
        if arrays is not None:
            cross = _cross_problems_in_bulk if _FAST_PATHS else _defects_cross_problems
            problems += cross(defects, {a.id: a for a in arrays})
    if problems or top is None or arrays is None:
        raise InvalidChipError(source, _capped(problems))
    assert device_kwargs is not None and periphery_kwargs is not None
    if fast is not None:
        (array_ids, rows, cols, _, g_uS), table = fast
        return _trusted_chip(
            arrays=tuple(arrays),
            defects=tuple(_trusted_defects(array_ids, rows, cols, table, g_uS)),
            device=DeviceModel(**device_kwargs),
            periphery=Periphery(**periphery_kwargs),
            name=name,
            grid=grid,
            table=table,
        )
    return Chip(
        arrays=tuple(arrays),
        defects=tuple(d for _, d in defects),
        device=DeviceModel(**device_kwargs),
        periphery=Periphery(**periphery_kwargs),
        name=name,
        grid=grid,
    )


# --------------------------------------------------------------------------
# Files


def _read_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of an input file, with a clear InvalidInputError when it cannot be read."""
    return read_input(path, MAX_FILE_BYTES, what)


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    """An input file decoded as UTF-8 (a leading byte-order mark is ignored)."""
    data = _read_bytes(path, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{os.fspath(path)}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); a {what} must be UTF-8"
        ) from None


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    duplicates: list[str] = []
    for key, value in pairs:
        if key in obj and key not in duplicates:
            duplicates.append(key)
        obj[key] = value
    if not duplicates:
        return obj
    marked = _DupDict(obj)
    marked.duplicates = duplicates
    return marked


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def decode_chip_json(text: str, source: str) -> object:
    """Decode chip-file text as strict JSON.

    NaN / Infinity literals and numbers too large for a float are kept as
    markers that validation reports with their path; keys repeated in one
    object are marked the same way.

    Raises:
        InvalidChipError: the text is empty or not JSON.
    """
    if not text.strip():
        raise InvalidChipError(source, ["the file is empty (expected a leac-chip JSON object)"])
    try:
        with _gc_paused():  # a large chip file decodes to millions of objects
            return json.loads(
                text,
                parse_constant=_NonFinite,
                parse_float=_parse_float,
                object_pairs_hook=_pairs_hook,
            )
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        hint = " (the file ends too early: is it truncated?)" if truncated else ""
        raise InvalidChipError(
            source, [f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}){hint}"]
        ) from None
    except RecursionError:
        raise InvalidChipError(source, ["not a chip file: JSON nested too deeply"]) from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise InvalidChipError(source, [f"not valid JSON: {exc}"]) from None


def load_chip(path: str | os.PathLike[str]) -> Chip:
    """Read and validate a `leac-chip` file.

    Args:
        path: The file (UTF-8 JSON).

    Returns:
        The chip.

    Raises:
        InvalidInputError: the file cannot be read (missing, a directory, not UTF-8, too large).
        InvalidChipError: the file is not JSON or breaks the format; every problem is listed.
    """
    source = os.fspath(path)
    chip = parse_chip(decode_chip_json(_read_text(path, "chip file"), source), source)
    chip = chip.with_file_name(os.path.basename(source))
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s: %s", source, chip.summary())
    return chip


def _array_json(a: Array) -> dict[str, int]:
    return {"id": a.id, "rows": a.rows, "cols": a.cols}


def _defect_json(d: Defect) -> dict[str, Any]:
    out: dict[str, Any] = {"array": d.array}
    if d.row is not None:
        out["row"] = d.row
    if d.col is not None:
        out["col"] = d.col
    out["state"] = d.state
    if d.g_uS is not None:
        out["g_uS"] = d.g_uS
    return out


def chip_to_json(chip: Chip) -> dict[str, Any]:
    """The chip as a JSON-ready dict, keys in the spec's order, models written out in full."""
    out = _chip_json_head(chip)
    out["defects"] = [_defect_json(d) for d in chip.defects]
    return out


def _chip_json_head(chip: Chip) -> dict[str, Any]:
    """`chip_to_json` without the `defects` key."""
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if chip.name is not None:
        out["name"] = chip.name
    device = _fields_of(chip.device)
    device["levels_uS"] = list(chip.device.levels_uS)
    out["device"] = device
    out["periphery"] = _fields_of(chip.periphery)
    if chip.grid:
        first = chip.arrays[0]
        out["arrays"] = {"count": len(chip.arrays), "rows": first.rows, "cols": first.cols}
    else:
        out["arrays"] = [_array_json(a) for a in chip.arrays]
    return out


def chip_to_text(chip: Chip) -> str:
    """The chip file's text: 2-space indented JSON, one array or defect entry per line.

    Deterministic: the same chip always gives the same text.
    """

    def leaf(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))

    # A chip with a defect table has exact int, str and float defect fields: its
    # defect lines are formatted in bulk, to the same text.
    bulk = chip._table is not None and bool(chip.defects)
    obj = _chip_json_head(chip) if bulk else chip_to_json(chip)
    if bulk:
        obj["defects"] = chip.defects
    lines = ["{"]
    for n, (key, value) in enumerate(obj.items()):
        comma = "," if n < len(obj) - 1 else ""
        if isinstance(value, dict) and key in ("device", "periphery"):
            inner = [f"    {leaf(k)}: {leaf(v)}" for k, v in value.items()]
            lines += [f"  {leaf(key)}: {{", ",\n".join(inner), f"  }}{comma}"]
        elif key == "defects" and bulk:
            lines += [f"  {leaf(key)}: [", ",\n".join(_defect_lines(value)), f"  ]{comma}"]
        elif isinstance(value, list) and value:
            inner = [f"    {leaf(item)}" for item in value]
            lines += [f"  {leaf(key)}: [", ",\n".join(inner), f"  ]{comma}"]
        else:
            lines.append(f"  {leaf(key)}: {leaf(value)}{comma}")
    return "\n".join(lines) + "\n}\n"


def save_chip(chip: Chip, path: str | os.PathLike[str]) -> None:
    """Write the chip to `path` atomically (see `chip_to_text` for the layout)."""
    atomic_write_text(path, chip_to_text(chip))
    if logger.isEnabledFor(logging.INFO):
        logger.info("wrote %s: %s", os.fspath(path), chip.summary())


# --------------------------------------------------------------------------
# Synthetic chips


def _probability_problem(value: object, name: str) -> str | None:
    if (p := _number_problem(value, name, positive=False)) is not None:
        return p
    if value > 1:  # type: ignore[operator]
        return f"{name}: {_show(value)} is not a probability between 0 and 1"
    return None


def synth_chip(
    *,
    arrays: int = 32,
    rows: int = 25,
    cols: int = 25,
    stuck_high: float = 0.025,
    stuck_low: float = 0.005,
    dead_rows: float = 0.0,
    dead_cols: float = 0.0,
    seed: int,
    name: str | None = None,
    device: DeviceModel = DeviceModel(),  # noqa: B008 - frozen, so a shared default is safe
    periphery: Periphery = Periphery(),  # noqa: B008
) -> Chip:
    """A random chip like the seed paper's (32 arrays of 25 x 25, about 2.5% stuck high).

    Each device is independently stuck high with probability `stuck_high`,
    else stuck low with probability `stuck_low` (so never both); each row and
    each column is independently dead (a whole-line stuck-low defect) with
    probability `dead_rows` / `dead_cols`. Devices on a dead line are not
    listed again, so the chip's stuck-high rate is
    `stuck_high * (1 - dead_rows) * (1 - dead_cols)`. Defects carry no `g_uS`:
    their conductances come from the device model. The same arguments and
    seed always give the same chip.

    Args:
        arrays: Number of arrays (ids 0..arrays-1, a uniform grid).
        rows: Rows per array.
        cols: Columns per array.
        stuck_high: Per-device probability of being stuck high.
        stuck_low: Per-device probability of being stuck low.
        dead_rows: Per-row probability of a dead (stuck-low) row.
        dead_cols: Per-column probability of a dead (stuck-low) column.
        seed: Seed for `numpy.random.default_rng`.
        name: The chip's name.
        device: The device model.
        periphery: The periphery model.

    Raises:
        UsageError: an argument is out of range (every bad one is listed).
    """
    problems = [
        _int_problem(arrays, "arrays", minimum=1, maximum=MAX_ARRAYS),
        _int_problem(rows, "rows", minimum=1, maximum=MAX_ARRAY_ROWS),
        _int_problem(cols, "cols", minimum=1, maximum=MAX_ARRAY_COLS),
        _int_problem(seed, "seed", minimum=0),
    ]
    rates = {
        "stuck_high": stuck_high,
        "stuck_low": stuck_low,
        "dead_rows": dead_rows,
        "dead_cols": dead_cols,
    }
    problems += [_probability_problem(value, key) for key, value in rates.items()]
    found = [p for p in problems if p]
    if not found:
        if stuck_high + stuck_low > 1.0:
            found.append(f"stuck_high + stuck_low: {stuck_high + stuck_low} is more than 1")
        if rows * cols > MAX_ARRAY_DEVICES or arrays * rows * cols > MAX_DEVICES:
            found.append(
                f"arrays x rows x cols: {arrays} x {rows} x {cols} is more devices than leac "
                f"accepts ({MAX_DEVICES} in all, {MAX_ARRAY_DEVICES} per array)"
            )
    if found:
        raise UsageError("invalid synthetic chip options:\n" + "\n".join(f"  {p}" for p in found))
    rng = np.random.default_rng(seed)
    if _FAST_PATHS:
        chip = _synth_in_bulk(rng, arrays, rows, cols, stuck_high, stuck_low, dead_rows, dead_cols,
                              name, device, periphery)  # fmt: skip
        if logger.isEnabledFor(logging.INFO):
            logger.info("synthesised %s", chip.summary())
        return chip
    defects: list[Defect] = []
    for a in range(arrays):
        dead_r = np.flatnonzero(rng.random(rows) < dead_rows)
        dead_c = np.flatnonzero(rng.random(cols) < dead_cols)
        u = rng.random((rows, cols))
        high = u < stuck_high
        stuck = u < stuck_high + stuck_low
        stuck[dead_r, :] = False
        stuck[:, dead_c] = False
        r_idx, c_idx = np.nonzero(stuck)
        is_high = high[r_idx, c_idx]
        defects += [Defect(a, r, None, STUCK_LOW) for r in dead_r.tolist()]
        defects += [Defect(a, None, c, STUCK_LOW) for c in dead_c.tolist()]
        defects += [
            Defect(a, r, c, STUCK_HIGH if h else STUCK_LOW)
            for r, c, h in zip(r_idx.tolist(), c_idx.tolist(), is_high.tolist(), strict=True)
        ]
    chip = Chip(
        arrays=tuple(Array(i, rows, cols) for i in range(arrays)),
        defects=tuple(defects),
        device=device,
        periphery=periphery,
        name=name,
        grid=True,
    )
    if logger.isEnabledFor(logging.INFO):
        logger.info("synthesised %s", chip.summary())
    return chip


def _synth_in_bulk(
    rng: np.random.Generator,
    arrays: int,
    rows: int,
    cols: int,
    stuck_high: float,
    stuck_low: float,
    dead_rows: float,
    dead_cols: float,
    name: str | None,
    device: DeviceModel,
    periphery: Periphery,
) -> Chip:
    """`synth_chip`'s chip from the same random draws, with the defects built in bulk."""
    positions, line_rows, line_cols, high_parts = [], [], [], []
    for a in range(arrays):
        # The same draws in the same order as the per-defect loop of synth_chip.
        dead_r = np.flatnonzero(rng.random(rows) < dead_rows)
        dead_c = np.flatnonzero(rng.random(cols) < dead_cols)
        u = rng.random((rows, cols))
        high = u < stuck_high
        stuck = u < stuck_high + stuck_low
        stuck[dead_r, :] = False
        stuck[:, dead_c] = False
        r_idx, c_idx = np.nonzero(stuck)
        lines = dead_r.size + dead_c.size
        positions.append(np.full(lines + r_idx.size, a, dtype=np.int64))
        line_rows += [dead_r, np.full(dead_c.size, -1), r_idx]
        line_cols += [np.full(dead_r.size, -1), dead_c, c_idx]
        high_parts += [np.zeros(lines, dtype=bool), high[r_idx, c_idx]]
    n = sum(p.size for p in positions)
    table = _DefectTable(
        pos=np.concatenate(positions),
        row=np.concatenate(line_rows).astype(np.int64),
        col=np.concatenate(line_cols).astype(np.int64),
        high=np.concatenate(high_parts),
        g_uS=np.full(n, np.nan),
    )
    grid = tuple(Array(i, rows, cols) for i in range(arrays))
    row_list: list[int | None] = table.row.tolist()
    col_list: list[int | None] = table.col.tolist()
    if (table.row < 0).any() or (table.col < 0).any():  # dead lines: -1 is None
        row_list = [None if r is None or r < 0 else r for r in row_list]
        col_list = [None if c is None or c < 0 else c for c in col_list]
    defects = tuple(
        _trusted_defects(table.pos.tolist(), row_list, col_list, table, [None] * n)
    )
    if (
        not isinstance(device, DeviceModel)
        or not isinstance(periphery, Periphery)
        or (name is not None and _name_problem(name, "name") is not None)
        or not _table_is_consistent(table, grid)  # always is, by construction
    ):
        # Let the constructor check (and name every problem) as it would have.
        return Chip(
            arrays=grid,
            defects=defects,
            device=device,
            periphery=periphery,
            name=name,
            grid=True,
        )
    return _trusted_chip(grid, defects, device, periphery, name, True, table)


# --------------------------------------------------------------------------
# Measured conductance maps

MapSource: TypeAlias = "str | os.PathLike[str] | tuple[str | os.PathLike[str], np.ndarray]"
"""A conductance map for `import_maps`: a text file, or (name, matrix in siemens)."""

_IMPLAUSIBLE_SIEMENS = 1e-2
"""A median reading above 10 mS is no memristor in siemens: the map is in other units."""


def _check_map(matrix: np.ndarray, label: str) -> np.ndarray:
    """`matrix` as a float64 conductance map in siemens, or a BadDataError saying what is wrong."""
    if matrix.dtype == object or not (
        np.issubdtype(matrix.dtype, np.integer) or np.issubdtype(matrix.dtype, np.floating)
    ):
        raise BadDataError(f"{label}: a conductance map must hold real numbers, not {matrix.dtype}")
    if matrix.ndim != 2:
        raise BadDataError(
            f"{label}: a conductance map must be 2-D (rows x columns), not of shape {matrix.shape}"
        )
    if matrix.size == 0:
        raise BadDataError(f"{label}: the conductance map is empty")
    if matrix.size > MAX_ARRAY_DEVICES:
        raise BadDataError(
            f"{label}: {matrix.shape[0]} x {matrix.shape[1]} is more devices than leac accepts "
            f"in one array ({MAX_ARRAY_DEVICES})"
        )
    matrix = matrix.astype(np.float64)
    bad = ~np.isfinite(matrix)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise BadDataError(
            f"{label}: {int(bad.sum())} readings are not finite numbers "
            f"(the first at row {r}, col {c}: {matrix[r, c]})"
        )
    median = float(np.median(np.abs(matrix)))
    if median > _IMPLAUSIBLE_SIEMENS:
        raise BadDataError(
            f"{label}: the median reading {median:g} S is not a plausible conductance in siemens "
            f"(is the map in microsiemens? leac expects siemens)"
        )
    return matrix


def load_conductance_map(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a measured conductance map: a whitespace-separated text matrix in siemens.

    One array row per line, like the seed paper's published kernel maps.
    Blank lines and `#` comments are skipped.

    Args:
        path: The text file.

    Returns:
        A float64 matrix (rows x columns) in siemens.

    Raises:
        InvalidInputError: the file cannot be read.
        BadDataError: the text is not a rectangular matrix of finite numbers.
    """
    source = os.fspath(path)
    text = _read_text(path, "conductance map")
    rows: list[np.ndarray] = []
    width = first_line = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        if not rows:
            width, first_line = len(tokens), lineno
        elif len(tokens) != width:
            raise BadDataError(
                f"{source}: line {lineno} has {len(tokens)} values but line {first_line} has "
                f"{width} (every row of a map needs the same number of columns)"
            )
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            for col, token in enumerate(tokens, start=1):
                try:
                    float(token)
                except ValueError:
                    hint = " (values must be separated by whitespace)" if "," in token else ""
                    raise BadDataError(
                        f"{source}: line {lineno}, value {col}: {token!r} is not a number{hint}"
                    ) from None
            raise  # pragma: no cover - numpy and float() disagree
        if not np.isfinite(values).all():
            col = int(np.flatnonzero(~np.isfinite(values))[0])
            raise BadDataError(
                f"{source}: line {lineno}, value {col + 1}: {tokens[col]!r} is not a finite number"
            )
        rows.append(values)
    if not rows:
        raise BadDataError(f"{source}: no values (an empty conductance map)")
    return _check_map(np.vstack(rows), source)


def _classify_map(
    array_id: int,
    g_uS: np.ndarray,
    high_above_uS: float,
    low_below_uS: float,
    dead_line_fraction: float,
) -> list[Defect]:
    """The defects of one measured map (in uS): dead lines first, then single devices."""
    high = g_uS > high_above_uS
    low = g_uS < low_below_uS
    dead_rows = np.flatnonzero((low.mean(axis=1) >= dead_line_fraction) & ~high.any(axis=1))
    dead_cols = np.flatnonzero((low.mean(axis=0) >= dead_line_fraction) & ~high.any(axis=0))

    def line_g(readings: np.ndarray, stuck: np.ndarray) -> float | None:
        positive = readings[stuck & (readings > 0)]
        return float(np.median(positive)) if positive.size else None

    defects = [
        Defect(array_id, r, None, STUCK_LOW, line_g(g_uS[r, :], low[r, :]))
        for r in dead_rows.tolist()
    ]
    defects += [
        Defect(array_id, None, c, STUCK_LOW, line_g(g_uS[:, c], low[:, c]))
        for c in dead_cols.tolist()
    ]
    single = high | low
    single[dead_rows, :] = False
    single[:, dead_cols] = False
    r_idx, c_idx = np.nonzero(single)
    for r, c, g, h in zip(
        r_idx.tolist(),
        c_idx.tolist(),
        g_uS[r_idx, c_idx].tolist(),
        high[r_idx, c_idx].tolist(),
        strict=True,
    ):
        if h:
            defects.append(Defect(array_id, r, c, STUCK_HIGH, g))
        else:
            defects.append(Defect(array_id, r, c, STUCK_LOW, g if g > 0 else None))
    return defects


def import_maps(
    maps: Sequence[MapSource],
    *,
    high_above_uS: float = 300.0,
    low_below_uS: float = 50.0,
    dead_line_fraction: float = 0.9,
    device: DeviceModel = DeviceModel(),  # noqa: B008 - frozen, so a shared default is safe
    name: str | None = None,
) -> Chip:
    """Build a chip from measured conductance maps, one array per map.

    A device reading above `high_above_uS` is stuck high, below
    `low_below_uS` stuck low; each keeps its measured conductance in `g_uS`
    (omitted for a reading <= 0, as the format needs positive conductances).
    A row or column with no stuck-high device in which at least
    `dead_line_fraction` of the devices are stuck low becomes one whole-line
    stuck-low defect whose `g_uS` is the median of its positive stuck-low
    readings (omitted if there are none); its devices are not listed again.

    Args:
        maps: Text files (see `load_conductance_map`) or (name, matrix in
            siemens) pairs; array ids are 0..n-1 in this order.
        high_above_uS: Stuck-high threshold; must be above the top device level.
        low_below_uS: Stuck-low threshold; must be below the bottom device level.
        dead_line_fraction: Share of stuck-low devices that makes a line dead, in (0, 1].
        device: The device model written into the chip.
        name: The chip's name.

    Returns:
        The chip; its arrays are a grid when every map has the same shape.

    Raises:
        UsageError: no maps, or thresholds that make no sense for the device levels.
        InvalidInputError: a map file cannot be read.
        BadDataError: a map is malformed.
    """
    problems = [
        _number_problem(high_above_uS, "high_above_uS"),
        _number_problem(low_below_uS, "low_below_uS", positive=False),
        _number_problem(dead_line_fraction, "dead_line_fraction"),
    ]
    found = [p for p in problems if p]
    if not found:
        top, bottom = device.levels_uS[-1], device.levels_uS[0]
        if high_above_uS <= top:
            found.append(
                f"high_above_uS: {high_above_uS} uS is not above the top device level ({top} uS)"
            )
        if low_below_uS >= bottom:
            found.append(
                f"low_below_uS: {low_below_uS} uS is not below the bottom device level "
                f"({bottom} uS)"
            )
        if dead_line_fraction > 1:
            found.append(f"dead_line_fraction: {dead_line_fraction} is more than 1")
    if isinstance(maps, (str, os.PathLike)):
        found.append("maps: give a list of maps, not one path")
    elif not maps:
        found.append("no conductance maps given")
    if found:
        raise UsageError("invalid map import options:\n" + "\n".join(f"  {p}" for p in found))
    loaded: list[tuple[str, np.ndarray]] = []
    for item in maps:
        if isinstance(item, tuple):
            label, matrix = os.fspath(item[0]), item[1]
            loaded.append((label, _check_map(np.asarray(matrix), label)))
        else:
            loaded.append((os.fspath(item), load_conductance_map(item)))
    arrays: list[Array] = []
    defects: list[Defect] = []
    for array_id, (label, matrix) in enumerate(loaded):
        found_defects = _classify_map(
            array_id, matrix * 1e6, high_above_uS, low_below_uS, dead_line_fraction
        )
        arrays.append(Array(array_id, matrix.shape[0], matrix.shape[1]))
        defects += found_defects
        logger.info("%s: array %d, %d defect entries", label, array_id, len(found_defects))
    return Chip(
        arrays=tuple(arrays),
        defects=tuple(defects),
        device=device,
        name=name,
        grid=_is_grid(arrays),
    )
