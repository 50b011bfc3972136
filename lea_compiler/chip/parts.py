"""What a chip is made of: the device and periphery models, its arrays and its defects.

Small frozen value types. The device and periphery models check themselves
when constructed (fields.py holds the rules); an `Array` or a `Defect` only
normalises its numbers (numpy integers to int, integers to float where a
float is meant), because whether it is valid depends on the chip it is part
of, which `Chip` checks (validate.py).

Orientation everywhere: an array's rows are word lines (inputs), its columns
are bit lines (outputs); indices start at 0.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lea_compiler.chip.fields import (
    DEVICE_KINDS,
    GAUSSIAN,
    LINE_KEYS,
    PERIPHERY_KINDS,
    fields_of,
    lines_problems,
    model_problems,
    programming_problems,
)
from lea_compiler.chip.variability import VARIABILITY_KEYS, DriftModel, NoiseModel, level_table_problems
from lea_compiler.errors import InvalidChipError


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
class ProgrammingModel:
    """How one write-verify programming leaves a device (`device.programming`; docs/chip-format.md).

    "gaussian" (the default, the seed paper's model): the board's own
    write-verify leaves each device at its target plus N(0, write_noise_uS),
    measured on the chip; one draw per write. "pulse": write-verify simulated
    pulse by pulse, each pulse moving the conductance towards the target by
    max(N(step_uS, step_sigma_uS), 0); `write_noise_uS` is then not used.
    `lea_compiler.programming.devices` implements both.

    Attributes:
        model: "gaussian" or "pulse".
        step_uS: Pulse model: mean conductance change of one pulse (> 0; required for "pulse", None otherwise).
        step_sigma_uS: Pulse model: standard deviation of one pulse's change (>= 0; 0 for "gaussian").
        readback_reads: Reads averaged into one verify read-back (1 to `MAX_READBACK_READS`).
    """

    model: str = GAUSSIAN
    step_uS: float | None = None
    step_sigma_uS: float = 0.0
    readback_reads: int = 1

    def __post_init__(self) -> None:
        _coerce(self, ("step_uS", "step_sigma_uS"), _as_float)
        _coerce(self, ("readback_reads",), _as_int)
        values = {k: v for k, v in fields_of(self).items() if v is not None}  # None: step_uS not given
        problems = programming_problems(values, "device.programming")
        if problems:
            raise InvalidChipError("programming model", problems)

    @property
    def is_default(self) -> bool:
        """True for the default model, which a chip file leaves out (so its text and fingerprint are unchanged)."""
        return self == _DEFAULT_PROGRAMMING

    def to_json(self) -> dict[str, Any]:
        """The `device.programming` object of a chip file: the pulse parameters only for "pulse"."""
        if self.model == GAUSSIAN:
            return {"model": self.model, "readback_reads": self.readback_reads}
        return fields_of(self)


_DEFAULT_PROGRAMMING = ProgrammingModel()


@dataclass(frozen=True)
class DeviceModel:
    """The memristor device model; defaults are the seed paper's measured 1T1R ReRAM.

    Attributes:
        levels_uS: Programmable conductance states in uS, strictly ascending.
        stuck_high_uS: Conductance of a stuck-high device when its defect gives none.
        stuck_low_uS: Conductance of a stuck-low device when its defect gives none.
        write_noise_uS: Standard deviation of a healthy device's programmed conductance (the "gaussian"
            programming model's write error).
        read_noise_uS: Half-width of the uniform noise added at every read.
        programming: How a write-verify leaves a device and how a read-back measures it.
        write_noise_model: The write error's standard deviation as a function of the target conductance,
            replacing `write_noise_uS` (None: the constant; `lea_compiler.chip.variability`).
        read_noise_model: The standard deviation of a read's Gaussian noise as a function of the conductance,
            replacing the uniform +-`read_noise_uS` (None: the uniform noise).
        drift: Retention drift after programming (None: none).
    """

    levels_uS: tuple[float, ...] = (133.0, 167.0, 200.0, 233.0)
    stuck_high_uS: float = 500.0
    stuck_low_uS: float = 10.0
    write_noise_uS: float = 16.66
    read_noise_uS: float = 10.0
    programming: ProgrammingModel = _DEFAULT_PROGRAMMING
    write_noise_model: NoiseModel | None = None
    read_noise_model: NoiseModel | None = None
    drift: DriftModel | None = None

    def __post_init__(self) -> None:
        levels = self.levels_uS
        if isinstance(levels, (list, tuple, np.ndarray)):
            object.__setattr__(self, "levels_uS", tuple(_as_float(v) for v in levels))
        _coerce(self, [f for f, kind in DEVICE_KINDS.items() if kind in ("positive", "non_negative")], _as_float)
        values = fields_of(self)
        programming = values.pop("programming")
        variability = {key: values.pop(key) for key in VARIABILITY_KEYS}
        problems = model_problems(values, DEVICE_KINDS, "device")
        if not isinstance(programming, ProgrammingModel):
            problems.append(f"device.programming: {programming!r} is not a ProgrammingModel")
        for key, value in variability.items():
            kind = DriftModel if key == "drift" else NoiseModel
            if value is not None and not isinstance(value, kind):
                problems.append(f"device.{key}: {value!r} is not a {kind.__name__}")
        if not problems:
            problems += level_table_problems(variability, len(self.levels_uS), "device")
        if self.write_noise_model is not None and programming.model != GAUSSIAN:
            problems.append(f'device.write_noise_model: given, but the "{programming.model}" programming model '
                            'makes its own write error (leave it out, or use "gaussian")')
        if problems:
            raise InvalidChipError("device model", problems)


@dataclass(frozen=True)
class LineModel:
    """The resistance of an array's word and bit lines (`periphery.lines`; docs/chip-format.md, "Line resistance").

    All zero (the default, which a chip file leaves out) is an ideal interconnect: no IR drop, the simulator's
    model before the section existed. `lea_compiler.irdrop` solves the resistive network these values make.

    Attributes:
        word_line_segment_ohm: Resistance of a word line (row) between two adjacent devices, and between the
            row's driver and the device in column 0.
        bit_line_segment_ohm: Resistance of a bit line (column) between two adjacent devices, and between the
            device in the array's last row and the column's sense amplifier.
        driver_ohm: Output resistance of a row's DAC driver, in series with the word line.
        sense_ohm: Input resistance of a column's sense amplifier (a virtual ground), in series with the bit line.
    """

    word_line_segment_ohm: float = 0.0
    bit_line_segment_ohm: float = 0.0
    driver_ohm: float = 0.0
    sense_ohm: float = 0.0

    def __post_init__(self) -> None:
        _coerce(self, LINE_KEYS, _as_float)
        problems = lines_problems(fields_of(self), "periphery.lines")
        if problems:
            raise InvalidChipError("line model", problems)

    @property
    def is_default(self) -> bool:
        """True for an ideal interconnect (every resistance 0), which a chip file leaves out."""
        return self == _NO_LINES

    def to_json(self) -> dict[str, Any]:
        """The `periphery.lines` object of a chip file: every key, in `LINE_KEYS` order."""
        return fields_of(self)


_NO_LINES = LineModel()


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
    e_digital_op_pJ: float = 0.9  # a 32-bit float add at 45 nm (Horowitz, ISSCC 2014; docs/chip-format.md)
    t_dac_ns: float = 85.0  # settling of a DAC's output before a read (DAC08 datasheet; docs/chip-format.md)
    digital_lanes: int = 1  # digital ops per clock (one: the serial digital unit; docs/chip-format.md)
    # Static (bias and leakage) power while powered, per component (none by default; docs/chip-format.md).
    p_static_adc_uW: float = 0.0  # per ADC
    p_static_dac_uW: float = 0.0  # per row DAC
    p_static_array_uW: float = 0.0  # per array (its sense amplifiers, sample-and-holds, bias)
    p_static_digital_uW: float = 0.0  # per digital lane
    lines: LineModel = _NO_LINES  # no line resistance: no IR drop (docs/chip-format.md, "Line resistance")

    def __post_init__(self) -> None:
        for name, kind in PERIPHERY_KINDS.items():
            if kind == "lines":
                continue
            convert = _as_int if kind in ("count", "bits") else _as_float
            object.__setattr__(self, name, convert(getattr(self, name)))
        values = fields_of(self)
        lines = values.pop("lines")
        problems = model_problems(values, PERIPHERY_KINDS, "periphery")
        if not isinstance(lines, LineModel):
            problems.append(f"periphery.lines: {lines!r} is not a LineModel")
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


_new_object = object.__new__
_set_attribute = object.__setattr__


def trusted_defect(array: int, row: int | None, col: int | None, state: str, g_uS: float | None) -> Defect:
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
