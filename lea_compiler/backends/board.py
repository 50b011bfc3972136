"""The board backend: a Program as the instruction stream a board controller executes.

A board controller (an FPGA driving DACs, ADCs and the crossbar arrays) needs
two things from leac: which device to program to which conductance, and what
to do at inference time. `emit_board` writes both, for one Program, as a
`leac-board` file (version 1, JSON Lines, UTF-8, ASCII only); `read_board`
turns the file back into typed records and `validate_board` lists the
problems of a file (streaming it; the first `MAX_PROBLEMS`, with a count).
The file is deterministic: the same Program, tolerance and pulse limit always
give the same bytes. docs/board-format.md is the reference for people; this
docstring is the same contract in brief.

Units: conductances `_uS` microsiemens, voltages `_V` volts; currents (what
an ADC returns) are in microamperes (V x uS = uA). Array, row and column
indices start at 0; an array's rows are word lines driven by DACs (inputs),
its columns are bit lines read by ADCs (outputs). Every range
`[start, stop)` includes start and excludes stop.

Line 1 is the header object (`format` "leac-board", `version` 1,
`leac_version`, `model` {name, file, sha256}, `program_leac_version`,
`compile_options`, `chip` {name, fingerprint}, `arrays` [{id, rows, cols}]
for every array the file touches, `levels_uS`, `periphery` (every periphery
value of the chip, which the schedule assumes), `tolerance_uS`,
`tolerance_rule`, `max_pulses`, `inputs` / `outputs` [{name, dtype, shape}]
of the graph, `counts` {op: number of records}, `records` (lines after the
header) and `skipped` {stuck_high, stuck_low}). Every later line is one record
whose `op` names its kind; its other keys are exactly the fields below.

Programming section (first; all devices of one array together, arrays by
ascending id, devices by row then column, so there is one `select_array` per
array used):

- `select_array` {array, devices}: make `array` the target of the following
  `write`/`skip` records; `devices` of them follow.
- `write` {array, row, col, level, target_uS, tolerance_uS, max_pulses}:
  write-verify one healthy device: pulse until a verify read is within
  +-tolerance_uS of target_uS (= levels_uS[level]) or max_pulses pulses were
  spent. The default tolerance is a quarter of the smallest gap between
  adjacent levels, so neighbouring levels' windows never touch.
- `skip` {array, row, col, state, g_uS, layer, block, copy, polarity,
  target_level}: a stuck device (the Program's level -1) that is not
  programmed; `state` "stuck_high"/"stuck_low" and its conductance `g_uS`
  come from the chip; layer/block/copy/polarity say which copy half it
  belongs to and `target_level` the level it should have had.

Inference schedule (in the Program graph's node order; repeated for every
input sample, and for a crossbar layer for every input vector, i.e. every
index of the input's dimensions between the first (batch) and the last):

- `digital` {node, op_type, domain, inputs, outputs, attrs, constants}: a
  non-crossbar node run in the digital periphery with ONNX semantics
  (`domain` "" is ONNX, "leac" is leac's own, e.g. `Patches` = im2col).
  `inputs` / `outputs` are value names (null: an omitted optional input);
  `attrs` are its attributes, JSON-safe: a numpy array is {"tensor": {dtype,
  shape, data}} with `data` flat in C order; a non-finite float is
  {"float": "nan" | "inf" | "-inf"}. `constants` maps each input that is a
  compile-time constant to its {dtype, shape, data}.
- `layer` {name, input, output, rows, cols, inputs, bias_row, bias, alpha,
  beta, encoding, scale_uS, blocks, row_blocks, col_blocks,
  vectors_per_sample}: a crossbar layer y = x @ W (+ b) on the vector
  axis (the last) of value `input`, result in value `output`. Its crossbar
  matrix has `rows` rows (`inputs` input elements, plus one row driven by the
  constant 1 when `bias_row`) and `cols` output columns; `bias` is "row",
  "digital" or "none". `scale_uS[j]` is column j's scale s_j: uS of
  conductance difference G+ - G- per weight unit (divided by the column's
  stuck-device compensation gain when the Program has one; its offset is
  then in the `bias` values, so a layer without a bias of its own can have
  bias "digital"). The matrix is cut into
  `blocks` blocks along `row_blocks` / `col_blocks` ([start, stop) matrix
  row / column ranges). `vectors_per_sample` is null when the shape is not
  known.
- `read` {layer, block, copy, polarity, array, row, col, rows, cols,
  x_start, x_stop, one_row}: one analog read of the region rows
  [row, row + rows) x columns [col, col + cols) of `array`, which holds one
  copy half (polarity "pos" = G+, "neg" = G-). Region row i is driven with
  the voltage of input element x[x_start + i] for i < x_stop - x_start; if
  `one_row` is not null, region row `one_row` is the bias row and is driven
  with the constant input 1. Input value u is driven as
  V = u * v_read_V / x_fs, quantised to dac_bits (signed, full scale
  +-v_read_V); x_fs: see `scale`. Column j then carries
  I_j = sum_i V_i G_ij (uA).
- `convert` {layer, block, copy, polarity, array, col_start, col_stop, adcs,
  rounds, full_scale_uA}: digitise the column currents (uA) of array columns
  [col_start, col_stop) just read, with `adcs` ADCs in `rounds` =
  ceil((col_stop - col_start) / adcs) conversion rounds, over +-full_scale_uA
  when the Program was calibrated at compile time (else null: the board's own
  ADC calibration).
- `combine` {layer, block, col_start, col_stop, copies, divisor}: for the
  block's output column j (layer column col_start + j),
  D_j = (1 / divisor) * sum over c in copies[j] of (I_pos[c, j] - I_neg[c, j]),
  with I the converted currents of copy c's two halves: differential
  subtraction, then the average of the beta selected copies (divisor = beta).
- `accumulate` {layer, cols, terms}: A = zeros(cols); for each [block,
  col_start, col_stop] in `terms`, A[col_start:col_stop] += D of that block
  (partial sums of the row blocks). Units: uA.
- `scale` {layer, scale_uS, v_read_V, x_fs_min, x_fs}: x_fs is the layer's
  calibrated input full scale when the Program has one (inputs clipped to it),
  else null and the per-vector rule below applies;
  y_j = A_j * x_fs / (v_read_V * scale_uS[j]), in weight units, where x_fs is
  this input vector's full scale: max(max_i |x_i| over the layer's whole
  input vector, x_fs_min); x_fs_min is 1 when the layer has a bias row (so
  the constant 1 fits in the DAC range) and 0 otherwise. If x_fs is 0 the
  input is all zeros: drive 0 V, and y = 0 before the bias.
- `bias` {layer, values, dtype}: y_j += values[j] in the digital periphery
  (only for a layer whose bias is "digital").

The layer's result (y after scale and bias) is the value `output`.

A Program compiled with `leac compile --calibrate` carries one calibrated
input full scale per layer and one ADC range per block: the `scale` records
give them as `x_fs` (inputs clip to it) and the `convert` records as
`full_scale_uA`, and the simulator uses the same numbers. Without calibration
both are null: x_fs follows the per-vector rule above (it never clips) and the
ADC range is the board's calibration, while the simulator calibrates both from
its data (docs/simulator.md); both use the same scaling formula.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import re
from array import array as PackedArray
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeAlias, TypeVar

import numpy as np

from lea_compiler import __version__
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.fileio import atomic_write_text, open_input, too_large
from lea_compiler.ir import Node, Value
from lea_compiler.ops import LEAC_DOMAIN
from lea_compiler.program import Layer, Program
from lea_compiler.program_checks import is_finite_json, program_problems

logger = logging.getLogger(__name__)

FORMAT = "leac-board"
"""The header's `format`."""
VERSION = 1
"""The newest `leac-board` version this leac writes and reads."""
DEFAULT_MAX_PULSES = 50
"""Write-verify pulses allowed per device unless the caller says otherwise."""
POLARITIES = ("pos", "neg")
STATES = ("stuck_high", "stuck_low")
BIAS_MODES = ("row", "digital", "none")
TOLERANCE_DEFAULT_RULE = "default: a quarter of the smallest gap between adjacent levels"
TOLERANCE_GIVEN_RULE = "given"
MAX_PROBLEMS = 200
"""Most problems kept and listed (in an InvalidInputError, `validate_board`, the --json report); the rest are
counted. A person fixes a file from its first problems; 30 MB of bad lines must not make 30 million strings."""
MAX_BOARD_BYTES = 4 * 2**30
"""Largest board file leac reads."""
MAX_LINE_BYTES = 256 * 2**20
"""Longest line of a board file leac decodes: a `digital` record carries its node's constants, and a model's
largest constant (`onnx_frontend.MAX_TENSOR_ELEMENTS` = 2**24 float32 numbers, ~15 characters each in JSON)
fits; decoding one line takes about four times its size in memory."""
MAX_VALUE_NAMES = 1_000_000
"""Most distinct value names the validator tracks (graph inputs and record outputs): a model has thousands;
past this the file is refused as a problem instead of growing the set without bound."""


# --------------------------------------------------------------------------
# Field checkers: convert a decoded JSON value to the record's field type, or
# raise _Bad saying what is wrong (the caller adds the line and the key).

Checker: TypeAlias = Callable[[Any], Any]


class _Bad(Exception):
    """A field value is wrong; `suffix` locates the bad item inside it (e.g. `[3]`)."""

    def __init__(self, text: str, suffix: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.suffix = suffix


def _show(value: object) -> str:
    """`value` as JSON, shortened for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:56] + " ..."


def _int_at_least(minimum: int) -> Checker:
    def check(value: Any) -> int:
        if type(value) is not int:  # JSON gives exactly int; this also refuses bools
            raise _Bad(f"{_show(value)} is not an integer")
        if value < minimum:
            raise _Bad(
                f"{_show(value)} is {'negative' if minimum == 0 else f'less than {minimum}'}"
            )
        return value

    return check


_index = _int_at_least(0)
_count = _int_at_least(1)


def _number(*, positive: bool = False) -> Checker:
    def check(value: Any) -> float:
        if type(value) is not float and type(value) is not int:  # refuses bools
            raise _Bad(f"{_show(value)} is not a number")
        if not math.isfinite(value):
            raise _Bad(f"{_show(value)} is not a finite number")
        if positive and value <= 0:
            raise _Bad(f"{_show(value)} is not positive")
        return float(value)

    return check


_real = _number()
_positive = _number(positive=True)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{_show(value)} is not a string")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"{_show(value)} is not true or false")
    return value


def _json_object(value: Any) -> dict[str, Any]:
    """A free-form JSON object (attributes, options); its numbers must still be finite."""
    if not isinstance(value, dict):
        raise _Bad(f"{_show(value)} is not an object")
    if not is_finite_json(value):
        raise _Bad(f"{_show(value)} holds a number that is not finite")
    return value


def _optional(check: Checker) -> Checker:
    def optional(value: Any) -> Any:
        return None if value is None else check(value)

    return optional


def _one_of(*choices: str) -> Checker:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _Bad(f"{_show(value)} is not one of {', '.join(map(repr, choices))}")
        return value

    return check


def _list_of(check: Checker, length: int | None = None) -> Checker:
    def check_list(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Bad(f"{_show(value)} is not a list")
        if length is not None and len(value) != length:
            raise _Bad(f"{_show(value)} has {len(value)} items, not {length}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(check(item))
            except _Bad as bad:
                raise _Bad(bad.text, f"[{i}]{bad.suffix}") from None
        return tuple(out)

    return check_list


def _range(value: Any) -> tuple[int, int]:
    start, stop = _list_of(_index, 2)(value)
    if stop < start:
        raise _Bad(f"{_show(value)} is not a [start, stop) range (stop < start)")
    return (start, stop)


def _term(value: Any) -> tuple[int, int, int]:
    block, start, stop = _list_of(_index, 3)(value)
    if stop <= start:
        raise _Bad(f"{_show(value)} is not [block, col_start, col_stop] with col_start < col_stop")
    return (block, start, stop)


def _object_of(schema: Mapping[str, Checker]) -> Checker:
    """An object with exactly the keys of `schema` (returned as a dict in schema order)."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"{_show(value)} is not an object")
        missing = [k for k in schema if k not in value]
        unknown = [k for k in value if k not in schema]
        if missing:
            raise _Bad(f"missing key {missing[0]!r}")
        if unknown:
            raise _Bad(f"unknown key {unknown[0]!r}")
        out = {}
        for key, field_check in schema.items():
            try:
                out[key] = field_check(value[key])
            except _Bad as bad:
                raise _Bad(bad.text, f".{key}{bad.suffix}") from None
        return out

    return check


# --------------------------------------------------------------------------
# Records. Each field names the checker that reads it from JSON (see `_field`),
# so a record's keys, their order and their types are declared once.


def _field(check: Checker) -> Any:
    """A record field read from JSON by `check` (a value check and conversion)."""
    return field(metadata={"check": check})


def _schema(kind: type) -> dict[str, Checker]:
    """A record class's keys in file order, each with its checker."""
    return {f.name: f.metadata["check"] for f in fields(kind)}


@dataclass(frozen=True, slots=True)
class SelectArray:
    """Make `array` the target of the next `devices` write/skip records."""

    op: ClassVar[str] = "select_array"
    array: int = _field(_index)
    devices: int = _field(_index)


@dataclass(frozen=True, slots=True)
class Write:
    """Write-verify one healthy device to `target_uS` (= levels_uS[level]) within +-tolerance_uS."""

    op: ClassVar[str] = "write"
    array: int = _field(_index)
    row: int = _field(_index)
    col: int = _field(_index)
    level: int = _field(_index)
    target_uS: float = _field(_positive)
    tolerance_uS: float = _field(_positive)
    max_pulses: int = _field(_count)


@dataclass(frozen=True, slots=True)
class Skip:
    """A stuck device, not programmed: its state, its conductance and the copy half it is in."""

    op: ClassVar[str] = "skip"
    array: int = _field(_index)
    row: int = _field(_index)
    col: int = _field(_index)
    state: str = _field(_one_of(*STATES))
    g_uS: float = _field(_positive)
    layer: str = _field(_text)
    block: int = _field(_index)
    copy: int = _field(_index)
    polarity: str = _field(_one_of(*POLARITIES))
    target_level: int = _field(_index)


@dataclass(frozen=True, slots=True)
class Digital:
    """A non-crossbar graph node run in the digital periphery (ONNX semantics)."""

    op: ClassVar[str] = "digital"
    node: str = _field(_text)
    op_type: str = _field(_text)
    domain: str = _field(_text)
    inputs: tuple[str | None, ...] = _field(_list_of(_optional(_text)))
    outputs: tuple[str, ...] = _field(_list_of(_text))
    attrs: dict[str, Any] = _field(_json_object)
    constants: dict[str, Any] = _field(_json_object)


@dataclass(frozen=True, slots=True)
class LayerStart:
    """The start of one crossbar layer's schedule: its matrix, copies, scales and blocks."""

    op: ClassVar[str] = "layer"
    name: str = _field(_text)
    input: str = _field(_text)
    output: str = _field(_text)
    rows: int = _field(_count)
    cols: int = _field(_count)
    inputs: int = _field(_index)
    bias_row: bool = _field(_flag)
    bias: str = _field(_one_of(*BIAS_MODES))
    alpha: int = _field(_count)
    beta: int = _field(_count)
    encoding: str = _field(_text)
    scale_uS: tuple[float, ...] = _field(_list_of(_positive))
    blocks: int = _field(_count)
    row_blocks: tuple[tuple[int, int], ...] = _field(_list_of(_range))
    col_blocks: tuple[tuple[int, int], ...] = _field(_list_of(_range))
    vectors_per_sample: int | None = _field(_optional(_count))


@dataclass(frozen=True, slots=True)
class Read:
    """One analog read of one copy half's region, with the input slice driven on its rows."""

    op: ClassVar[str] = "read"
    layer: str = _field(_text)
    block: int = _field(_index)
    copy: int = _field(_index)
    polarity: str = _field(_one_of(*POLARITIES))
    array: int = _field(_index)
    row: int = _field(_index)
    col: int = _field(_index)
    rows: int = _field(_count)
    cols: int = _field(_count)
    x_start: int = _field(_index)
    x_stop: int = _field(_index)
    one_row: int | None = _field(_optional(_index))


@dataclass(frozen=True, slots=True)
class Convert:
    """Digitise array columns [col_start, col_stop) of the read before, `adcs` at a time."""

    op: ClassVar[str] = "convert"
    layer: str = _field(_text)
    block: int = _field(_index)
    copy: int = _field(_index)
    polarity: str = _field(_one_of(*POLARITIES))
    array: int = _field(_index)
    col_start: int = _field(_index)
    col_stop: int = _field(_index)
    adcs: int = _field(_count)
    rounds: int = _field(_count)
    full_scale_uA: float | None = _field(_optional(_positive))


@dataclass(frozen=True, slots=True)
class Combine:
    """G+ minus G- per copy, then the average of each output column's selected copies."""

    op: ClassVar[str] = "combine"
    layer: str = _field(_text)
    block: int = _field(_index)
    col_start: int = _field(_index)
    col_stop: int = _field(_index)
    copies: tuple[tuple[int, ...], ...] = _field(_list_of(_list_of(_index)))
    divisor: int = _field(_count)


@dataclass(frozen=True, slots=True)
class Accumulate:
    """Sum the row blocks' combined partial results into the layer's columns."""

    op: ClassVar[str] = "accumulate"
    layer: str = _field(_text)
    cols: int = _field(_count)
    terms: tuple[tuple[int, int, int], ...] = _field(_list_of(_term))


@dataclass(frozen=True, slots=True)
class Scale:
    """Currents to weight units: y_j = A_j * x_fs / (v_read_V * scale_uS[j])."""

    op: ClassVar[str] = "scale"
    layer: str = _field(_text)
    scale_uS: tuple[float, ...] = _field(_list_of(_positive))
    v_read_V: float = _field(_positive)
    x_fs_min: float = _field(_real)
    x_fs: float | None = _field(_optional(_positive))


@dataclass(frozen=True, slots=True)
class Bias:
    """Add the layer's bias digitally: y_j += values[j]."""

    op: ClassVar[str] = "bias"
    layer: str = _field(_text)
    values: tuple[float, ...] = _field(_list_of(_real))
    dtype: str = _field(_text)


Record: TypeAlias = (
    SelectArray
    | Write
    | Skip
    | Digital
    | LayerStart
    | Read
    | Convert
    | Combine
    | Accumulate
    | Scale
    | Bias
)

RECORD_TYPES: dict[str, type[Record]] = {
    "select_array": SelectArray,
    "write": Write,
    "skip": Skip,
    "digital": Digital,
    "layer": LayerStart,
    "read": Read,
    "convert": Convert,
    "combine": Combine,
    "accumulate": Accumulate,
    "scale": Scale,
    "bias": Bias,
}
"""Every record kind by its `op`, in the order the header's `counts` lists them."""

_PROGRAMMING_OPS = frozenset({"select_array", "write", "skip"})

R = TypeVar("R")


@dataclass(frozen=True)
class BoardArray:
    """One array the file touches, with its size (for coordinate checks)."""

    id: int
    rows: int
    cols: int


def _levels(value: Any) -> tuple[float, ...]:
    levels = _list_of(_positive)(value)
    if len(levels) < 2 or any(b <= a for a, b in zip(levels[:-1], levels[1:], strict=True)):
        raise _Bad(f"{_show(value)} is not a strictly ascending list of at least 2 levels")
    return levels


def _dim(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Bad(f"{_show(value)} is not a dimension (an integer, a name or null)")
    return value


def _board_array(value: Any) -> BoardArray:
    return BoardArray(**_object_of({"id": _index, "rows": _count, "cols": _count})(value))


_PERIPHERY_KEYS: dict[str, Checker] = {
    "v_read_V": _positive,
    "dac_bits": _count,
    "adc_bits": _count,
    "adcs_per_array": _count,
    "clock_MHz": _positive,
    "t_mvm_ns": _positive,
    "t_adc_ns": _positive,
    "t_write_pulse_ns": _positive,
    "e_device_read_pJ": _positive,
    "e_adc_pJ": _positive,
    "e_dac_pJ": _positive,
    "e_write_pulse_pJ": _positive,
}
_GRAPH_VALUES = _list_of(
    _object_of({"name": _text, "dtype": _text, "shape": _optional(_list_of(_optional(_dim)))})
)


@dataclass(frozen=True)
class BoardHeader:
    """Line 1 of a board file: what the stream is for and what it holds (module docstring)."""

    format: str = _field(_text)
    version: int = _field(_index)
    leac_version: str = _field(_text)
    model: dict[str, Any] = _field(
        _object_of({"name": _text, "file": _optional(_text), "sha256": _optional(_text)})
    )
    program_leac_version: str = _field(_text)
    compile_options: dict[str, Any] = _field(_json_object)
    chip: dict[str, Any] = _field(_object_of({"name": _optional(_text), "fingerprint": _text}))
    arrays: tuple[BoardArray, ...] = _field(_list_of(_board_array))
    levels_uS: tuple[float, ...] = _field(_levels)
    periphery: dict[str, Any] = _field(_object_of(_PERIPHERY_KEYS))
    tolerance_uS: float = _field(_positive)
    tolerance_rule: str = _field(_text)
    max_pulses: int = _field(_count)
    inputs: tuple[dict[str, Any], ...] = _field(_GRAPH_VALUES)
    outputs: tuple[dict[str, Any], ...] = _field(_GRAPH_VALUES)
    counts: dict[str, int] = _field(_object_of(dict.fromkeys(RECORD_TYPES, _index)))
    records: int = _field(_index)
    skipped: dict[str, int] = _field(_object_of(dict.fromkeys(STATES, _index)))

    def to_json(self) -> dict[str, Any]:
        """The header as the JSON object of line 1 (keys in field order)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["arrays"] = [{"id": a.id, "rows": a.rows, "cols": a.cols} for a in self.arrays]
        return out


_SCHEMAS: dict[str, dict[str, Checker]] = {op: _schema(kind) for op, kind in RECORD_TYPES.items()}
_HEADER_SCHEMA = _schema(BoardHeader)


@dataclass(frozen=True)
class BoardStream:
    """A whole board file: the header and every record after it, in file order."""

    header: BoardHeader
    records: tuple[Record, ...]

    def of(self, kind: type[R]) -> list[R]:
        """The records of one kind, in file order."""
        return [r for r in self.records if isinstance(r, kind)]

    def to_text(self) -> str:
        """The file's text: the same bytes `emit_board` writes for this stream."""
        lines = [_dumps(self.header.to_json())]
        lines += [record_line(r) for r in self.records]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BoardSummary:
    """What `emit_board` wrote: record counts, the file size and the write-verify settings."""

    writes: int
    skips: int
    arrays: int
    reads: int
    records: int
    bytes: int
    tolerance_uS: float
    max_pulses: int


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _dumps(obj: object) -> str:
    return _ENCODER.encode(obj)


def record_line(record: Record) -> str:
    """One record as its line of JSON (no newline): `op` first, then the fields in order."""
    if type(record) is Write:
        # Nearly every line of a file is a write: format it directly, 3x faster than the
        # encoder and the same bytes (json writes ints and finite floats with their repr).
        return (
            f'{{"op":"write","array":{record.array},"row":{record.row},"col":{record.col},'
            f'"level":{record.level},"target_uS":{record.target_uS!r},'
            f'"tolerance_uS":{record.tolerance_uS!r},"max_pulses":{record.max_pulses}}}'
        )
    out: dict[str, Any] = {"op": record.op}
    for key in _SCHEMAS[record.op]:
        out[key] = getattr(record, key)
    return _dumps(out)


# --------------------------------------------------------------------------
# Emitting


def default_tolerance_uS(levels_uS: Sequence[float]) -> float:
    """A quarter of the smallest gap between adjacent levels.

    Why a quarter: the verify windows of two neighbouring levels are then at
    least half a gap apart, so a device accepted for one level can never read
    as its neighbour, with margin for read noise.
    """
    levels = np.asarray(levels_uS, dtype=np.float64)
    return float(np.min(np.diff(levels))) / 4.0


def emit_board(
    program: Program,
    path: str | os.PathLike[str],
    *,
    tolerance_uS: float | None = None,
    max_pulses: int = DEFAULT_MAX_PULSES,
) -> BoardSummary:
    """Write the Program as a `leac-board` instruction stream, atomically.

    Args:
        program: The compiled Program.
        path: The file to write (replaced atomically; never half-written).
        tolerance_uS: Write-verify acceptance half-width in uS; None takes
            `default_tolerance_uS` of the chip's levels.
        max_pulses: Programming pulses allowed per device.

    Returns:
        The counts of what was written and the file size.

    Raises:
        UsageError: tolerance or max_pulses out of range.
        InvalidInputError: the Program contradicts its own chip (a damaged or
            hand-edited Program); every problem is listed.
    """
    header, lines = _emit_lines(program, tolerance_uS, max_pulses)
    text = "\n".join([_dumps(header.to_json()), *lines]) + "\n"
    data_bytes = len(text.encode("ascii"))
    atomic_write_text(path, text)
    counts = header.counts
    summary = BoardSummary(
        writes=counts["write"],
        skips=counts["skip"],
        arrays=counts["select_array"],
        reads=counts["read"],
        records=header.records,
        bytes=data_bytes,
        tolerance_uS=header.tolerance_uS,
        max_pulses=header.max_pulses,
    )
    logger.info("wrote %s: %s", os.fspath(path), summary)
    return summary


def board_stream(
    program: Program, *, tolerance_uS: float | None = None, max_pulses: int = DEFAULT_MAX_PULSES
) -> BoardStream:
    """The stream `emit_board` would write, as records in memory (for tools and tests)."""
    tolerance, rule = _tolerance(program, tolerance_uS, max_pulses)
    records = tuple(_records(program, tolerance, max_pulses))
    counts = Counter(r.op for r in records)
    skipped = Counter(r.state for r in records if isinstance(r, Skip))
    return BoardStream(_header(program, tolerance, rule, max_pulses, counts, skipped), records)


def _emit_lines(
    program: Program, tolerance_uS: float | None, max_pulses: int
) -> tuple[BoardHeader, list[str]]:
    tolerance, rule = _tolerance(program, tolerance_uS, max_pulses)
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    lines = []
    for record in _records(program, tolerance, max_pulses):
        counts[record.op] += 1
        if isinstance(record, Skip):
            skipped[record.state] += 1
        lines.append(record_line(record))
    return _header(program, tolerance, rule, max_pulses, counts, skipped), lines


def _tolerance(program: Program, tolerance_uS: float | None, max_pulses: int) -> tuple[float, str]:
    problems = []
    if (
        isinstance(max_pulses, bool)
        or not isinstance(max_pulses, (int, np.integer))
        or max_pulses < 1
    ):
        problems.append(f"max_pulses must be an integer >= 1, got {max_pulses!r}")
    levels = program.chip.device.levels_uS
    if tolerance_uS is None:
        tolerance, rule = default_tolerance_uS(levels), TOLERANCE_DEFAULT_RULE
    else:
        tolerance, rule = tolerance_uS, TOLERANCE_GIVEN_RULE
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, (int, float))
            or not (math.isfinite(tolerance) and tolerance > 0)
        ):
            problems.append(f"tolerance_uS must be a positive number, got {tolerance_uS!r}")
    if problems:
        raise UsageError("; ".join(problems))
    half_gap = 2 * default_tolerance_uS(levels)
    if tolerance >= half_gap:
        logger.warning(
            "tolerance %g uS is at least half the smallest level gap (%g uS): neighbouring levels' "
            "verify windows overlap",
            tolerance,
            half_gap,
        )
    return float(tolerance), rule


def _header(
    program: Program,
    tolerance: float,
    rule: str,
    max_pulses: int,
    counts: Mapping[str, int],
    skipped: Mapping[str, int],
) -> BoardHeader:
    chip = program.chip
    arrays = tuple(
        BoardArray(a, chip.array(a).rows, chip.array(a).cols) for a in program.arrays_used
    )
    periphery = {key: getattr(chip.periphery, key) for key in _PERIPHERY_KEYS}
    model = program.model
    return BoardHeader(
        format=FORMAT,
        version=VERSION,
        leac_version=__version__,
        model={"name": model.get("name"), "file": model.get("file"), "sha256": model.get("sha256")},
        program_leac_version=program.leac_version,
        compile_options=dict(program.options),
        chip={"name": chip.display_name, "fingerprint": program.chip_fingerprint},
        arrays=arrays,
        levels_uS=tuple(chip.device.levels_uS),
        periphery=periphery,
        tolerance_uS=tolerance,
        tolerance_rule=rule,
        max_pulses=int(max_pulses),
        inputs=tuple(_value_info(v) for v in program.graph.inputs),
        outputs=tuple(_value_info(v) for v in program.graph.outputs),
        counts={op: int(counts.get(op, 0)) for op in RECORD_TYPES},
        records=int(sum(counts.values())),
        skipped={state: int(skipped.get(state, 0)) for state in STATES},
    )


def _value_info(value: Value) -> dict[str, Any]:
    return {
        "name": value.name,
        "dtype": _dtype_name(value.dtype),
        "shape": None if value.shape is None else tuple(value.shape),
    }


def _dtype_name(dtype: np.dtype[Any]) -> str:
    return "string" if dtype == np.dtype(object) else str(dtype)


def _records(program: Program, tolerance: float, max_pulses: int) -> Iterator[Record]:
    """Every record after the header: programming first, then the inference schedule.

    The Program is checked against its chip before the first record comes out.
    """
    halves = _halves(program)
    owners = _check_program(program, halves)
    yield from _programming(program, halves, owners, tolerance, max_pulses)
    yield from _schedule(program)


@dataclass(frozen=True, eq=False)
class _Half:
    """One copy half (G+ or G-) of one block as the programming section sees it."""

    layer: str
    block: int
    copy: int
    polarity: str
    array: int
    row: int
    col: int
    levels: np.ndarray  # (rows, cols) level index; -1: stuck, not programmed
    targets: np.ndarray  # (rows, cols) the block's target level index


def _halves(program: Program) -> list[_Half]:
    halves = []
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for polarity, half, target in (
                    ("pos", copy.pos, block.target_pos),
                    ("neg", copy.neg, block.target_neg),
                ):
                    region = half.region
                    halves.append(
                        _Half(
                            layer.name,
                            block.index,
                            copy.copy,
                            polarity,
                            region.array,
                            region.row,
                            region.col,
                            np.asarray(half.levels),
                            np.asarray(target),
                        )
                    )
    return halves


def _check_program(program: Program, halves: Sequence[_Half]) -> dict[int, np.ndarray]:
    """Check that the Program agrees with itself, its chip and its graph; return each used array's owner map.

    The owner map of an array holds, per device, the index in `halves` of the
    copy half occupying it (-1: unused). A Program written by `leac compile`
    always passes; a damaged or hand-edited one gets every problem listed
    (`lea_compiler.program.program_problems`, which `Program.load` runs too).

    Raises:
        InvalidInputError: the Program contradicts itself, its chip or its graph.
    """
    problems = program_problems(program)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        lines = "\n".join(f"  {p}" for p in shown) + (f"\n  ... and {more} more" if more else "")
        raise InvalidInputError(f"the Program does not agree with its chip or graph:\n{lines}")
    owners: dict[int, np.ndarray] = {}
    for index, half in enumerate(halves):
        if half.array not in owners:
            arr = program.chip.array(half.array)
            owners[half.array] = np.full((arr.rows, arr.cols), -1, dtype=np.int64)
        rows, cols = half.levels.shape
        owners[half.array][half.row:half.row + rows, half.col:half.col + cols] = index
    return owners


def _is_crossbar(node: Node) -> bool:
    return node.op_type == "MVM" and node.domain == LEAC_DOMAIN


def _programming(
    program: Program,
    halves: Sequence[_Half],
    owners: Mapping[int, np.ndarray],
    tolerance: float,
    max_pulses: int,
) -> Iterator[Record]:
    """select_array, then write/skip for each of its devices by row then column; arrays by id."""
    chip = program.chip
    levels = tuple(chip.device.levels_uS)
    for array_id in sorted(owners):
        owner = owners[array_id]
        level_map = np.full(owner.shape, -2, dtype=np.int64)
        for index in np.unique(owner[owner >= 0]).tolist():
            half = halves[index]
            rows, cols = half.levels.shape
            level_map[half.row : half.row + rows, half.col : half.col + cols] = half.levels
        used = np.flatnonzero(owner.ravel() >= 0)  # row-major: by row, then column
        yield SelectArray(array_id, int(used.size))
        state, g_uS = chip.stuck_map(array_id)
        width = owner.shape[1]
        for flat, level in zip(used.tolist(), level_map.ravel()[used].tolist(), strict=True):
            row, col = divmod(flat, width)
            if level >= 0:
                yield Write(array_id, row, col, level, levels[level], tolerance, max_pulses)
                continue
            half = halves[int(owner[row, col])]
            yield Skip(
                array_id,
                row,
                col,
                STATES[0] if state[row, col] > 0 else STATES[1],
                float(g_uS[row, col]),
                half.layer,
                half.block,
                half.copy,
                half.polarity,
                int(half.targets[row - half.row, col - half.col]),
            )


def _schedule(program: Program) -> Iterator[Record]:
    """The inference schedule, in graph node order."""
    layers = {layer.name: layer for layer in program.layers}
    for node in program.graph.nodes:
        if _is_crossbar(node):
            yield from _layer_schedule(program, node, layers[node.name])
        else:
            yield _digital(node)


def _vectors_per_sample(value: Value | None) -> int | None:
    """Vectors the layer multiplies per sample: the dimensions between the batch and the last."""
    if value is None or value.shape is None:
        return None
    dims = value.shape[1:-1]
    if not all(isinstance(d, int) for d in dims):
        return None
    count = int(np.prod([int(d) for d in dims], dtype=np.int64)) if dims else 1  # type: ignore[arg-type]
    return count if count >= 1 else None


def _column_scale_and_bias(node: Node, layer: Layer) -> tuple[tuple[float, ...], np.ndarray | None]:
    """The scale the periphery divides by and the digital bias it adds, with the stuck-device
    compensation folded in: scale_j / gain_j, and bias_j + offset_j."""
    scale = np.ravel(np.asarray(layer.scale, dtype=np.float64))
    bias = node.input(2)
    values = None if layer.bias_row or bias is None else np.ravel(np.asarray(bias.const, dtype=np.float64))
    if layer.column_gain is not None:
        scale = scale / np.asarray(layer.column_gain, dtype=np.float64)
    if layer.column_offset is not None and np.any(np.asarray(layer.column_offset) != 0):
        values = (values if values is not None else 0.0) + np.asarray(layer.column_offset, dtype=np.float64)
    return tuple(float(v) for v in scale), values


def _layer_schedule(program: Program, node: Node, layer: Layer) -> Iterator[Record]:
    """layer, then per block read+convert per copy half and combine; accumulate, scale, bias."""
    x, bias = node.input(0), node.input(2)
    inputs = layer.rows - int(layer.bias_row)
    scale_uS, bias_values = _column_scale_and_bias(node, layer)
    mode = "row" if layer.bias_row else ("digital" if bias_values is not None else "none")
    adcs = program.chip.periphery.adcs_per_array
    yield LayerStart(
        name=layer.name,
        input=x.name if x is not None else "",
        output=node.outputs[0].name,
        rows=layer.rows,
        cols=layer.cols,
        inputs=inputs,
        bias_row=layer.bias_row,
        bias=mode,
        alpha=layer.alpha,
        beta=layer.beta,
        encoding=layer.encoding,
        scale_uS=scale_uS,
        blocks=len(layer.blocks),
        row_blocks=tuple(layer.row_bounds),
        col_blocks=tuple(layer.col_bounds),
        vectors_per_sample=_vectors_per_sample(x),
    )
    for block in layer.blocks:
        rows, cols = block.shape
        x_start, x_stop = min(block.row_start, inputs), min(block.row_stop, inputs)
        one_row = (
            layer.rows - 1 - block.row_start
            if layer.bias_row and block.row_stop == layer.rows
            else None
        )
        for copy in block.copies:
            for polarity, half in (("pos", copy.pos), ("neg", copy.neg)):
                region = half.region
                yield Read(
                    layer.name,
                    block.index,
                    copy.copy,
                    polarity,
                    region.array,
                    region.row,
                    region.col,
                    rows,
                    cols,
                    x_start,
                    x_stop,
                    one_row,
                )
                yield Convert(
                    layer.name,
                    block.index,
                    copy.copy,
                    polarity,
                    region.array,
                    region.col,
                    region.col + cols,
                    adcs,
                    -(-cols // adcs),
                    block.adc_full_scale_uA,
                )
        ids = [copy.copy for copy in block.copies]
        selection = np.asarray(block.selection, dtype=bool)
        chosen = tuple(
            tuple(ids[i] for i in np.flatnonzero(selection[:, j]).tolist()) for j in range(cols)
        )
        yield Combine(layer.name, block.index, block.col_start, block.col_stop, chosen, layer.beta)
    yield Accumulate(
        layer.name, layer.cols, tuple((b.index, b.col_start, b.col_stop) for b in layer.blocks)
    )
    yield Scale(
        layer.name,
        scale_uS,
        program.chip.periphery.v_read_V,
        1.0 if layer.bias_row else 0.0,
        layer.input_full_scale,
    )
    if mode == "digital":
        assert bias_values is not None
        dtype = bias.const.dtype if bias is not None and bias.const is not None else np.dtype(np.float32)
        yield Bias(layer.name, tuple(float(v) for v in bias_values.tolist()), _dtype_name(dtype))


def _digital(node: Node) -> Digital:
    constants = {}
    for value in node.inputs:
        if value is not None and value.const is not None and value.name not in constants:
            constants[value.name] = _tensor_json(value.const, node, value.name)
    attrs = {key: _json_safe(node.attrs[key], node, key) for key in sorted(node.attrs)}
    return Digital(
        node=node.name,
        op_type=node.op_type,
        domain=node.domain,
        inputs=tuple(None if v is None else v.name for v in node.inputs),
        outputs=tuple(v.name for v in node.outputs),
        attrs=attrs,
        constants=constants,
    )


def _float_json(value: float) -> float | dict[str, str]:
    if math.isfinite(value):
        return value
    return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _tensor_json(array: np.ndarray, node: Node, what: str) -> dict[str, Any]:
    """{dtype, shape, data}: `data` flat in C order (strings for a string tensor)."""
    array = np.asarray(array)
    if array.dtype == np.dtype(object) or array.dtype.kind in "US":
        data: list[Any] = [
            v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)
            for v in array.ravel().tolist()
        ]
    elif array.dtype.kind in "biu":
        data = array.ravel().tolist()
    elif array.dtype.kind == "f":
        data = [_float_json(v) for v in array.ravel().tolist()]
    else:
        raise InvalidInputError(
            f"{node.describe()}: {what} is a {array.dtype} tensor, which a board file cannot carry"
        )
    return {"dtype": _dtype_name(array.dtype), "shape": list(array.shape), "data": data}


def _json_safe(value: Any, node: Node, key: str) -> Any:
    """An attribute value as plain JSON (module docstring: tensors and non-finite floats)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _float_json(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, np.ndarray):
        return {"tensor": _tensor_json(value, node, f"attribute {key!r}")}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, node, key) for v in value]
    raise InvalidInputError(
        f"{node.describe()}: attribute {key!r} holds a {type(value).__name__}, which a "
        "board file cannot carry"
    )


# --------------------------------------------------------------------------
# Reading and validating


def read_board(path: str | os.PathLike[str]) -> BoardStream:
    """Read a `leac-board` file back into its header and typed records.

    Raises:
        InvalidInputError: the file cannot be read, or breaks the format; the
            message lists the first `MAX_PROBLEMS` problems in file order, each
            with its line number and field, and counts the rest.
    """
    check = _check_board(path, keep_records=True)
    check.raise_if_invalid()
    assert check.stream is not None
    return check.stream


@dataclass(frozen=True)
class BoardCheck:
    """What `check_board` found: the header (None if line 1 is not a valid header), the first `MAX_PROBLEMS`
    problems in file order, and how many there are in all."""

    path: str
    header: BoardHeader | None
    problems: tuple[str, ...]
    total: int
    stream: BoardStream | None = None  # the records too, when read with `read_board`

    @property
    def more(self) -> int:
        """How many problems are not listed."""
        return self.total - len(self.problems)

    @property
    def listing(self) -> list[str]:
        """The problems listed, then "... and N more problems" if some are not."""
        return [*self.problems, *([f"... and {self.more} more problems"] if self.more else [])]

    def raise_if_invalid(self) -> None:
        """Raise InvalidInputError listing the problems (nothing if the file is valid)."""
        if not self.total:
            return
        noun = "problem" if self.total == 1 else "problems"
        more = f"\n  ... and {self.more} more" if self.more else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        raise InvalidInputError(f"{self.path}: invalid board file ({self.total} {noun}):\n{lines}{more}")


def check_board(path: str | os.PathLike[str]) -> BoardCheck:
    """Check a `leac-board` file (see `validate_board`), streaming it: memory stays bounded whatever its size
    (up to `MAX_BOARD_BYTES`), and only the first `MAX_PROBLEMS` problems are kept, with a count of the rest.

    Raises:
        InvalidInputError: the file cannot be read at all.
    """
    return _check_board(path, keep_records=False)


def validate_board(path: str | os.PathLike[str]) -> list[str]:
    """The problems of a `leac-board` file ("line N: op.field: what"), in file order; empty if it is valid.
    At most `MAX_PROBLEMS` are listed, then one "... and N more problems" (`check_board` gives the count).

    Checks: the header comes first with the known format and version; every
    record's op is known and its keys and types are right; coordinates lie
    inside the header's arrays; no device appears twice; write targets equal
    the level they name; each array's writes follow its `select_array`; the
    schedule reads every copy half of every layer and refers to values that
    exist; the counts in the header match the records.

    Raises:
        InvalidInputError: the file cannot be read at all.
    """
    return check_board(path).listing


def _reject_constant(text: str) -> float:
    raise ValueError(f"{text} is not a finite number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice")
            seen.add(key)
    return out


# NaN and Infinity are refused here; a number too large for a float (1e999)
# decodes to inf and is refused by the field checks.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def _decode_line(raw: bytes) -> Any:
    """A line's JSON value. Raises ValueError (also for UTF-8 errors and nesting deeper than Python's
    recursion limit, which the decoder reports as a RecursionError)."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


_BOM = b"\xef\xbb\xbf"
_CHUNK = 2**20
_NEWLINES = re.compile(rb"\n+")


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line without its newline, count) for the lines of the file, streamed a MiB at a time:
    the line is None when longer than `MAX_LINE_BYTES` (skipped unkept), and count > 1 for a run of empty
    lines (yielded once, so that 30 MB of them cost no more than a few records)."""
    source = os.fspath(path)
    with open_input(source, MAX_BOARD_BYTES, "board file") as handle:
        total = lineno = size = 0
        parts: list[bytes] = []  # the pieces of the current line so far (none kept once it is too long)
        try:
            while chunk := handle.read(_CHUNK):
                total += len(chunk)
                if total > MAX_BOARD_BYTES:
                    raise too_large(source, MAX_BOARD_BYTES, "board file")
                start = 0
                while start < len(chunk):
                    if not size and (run := _NEWLINES.match(chunk, start)):  # empty lines
                        count = run.end() - start
                        yield lineno + 1, b"", count
                        lineno, start = lineno + count, run.end()
                        continue
                    end = chunk.find(b"\n", start)
                    piece = chunk[start:] if end < 0 else chunk[start:end]
                    size += len(piece)
                    if size <= MAX_LINE_BYTES:
                        parts.append(piece)
                    else:
                        parts = []
                    if end < 0:
                        break
                    lineno += 1
                    yield lineno, None if size > MAX_LINE_BYTES else b"".join(parts), 1
                    parts, size, start = [], 0, end + 1
        except OSError as exc:
            raise InvalidInputError(f"{source}: cannot read the board file ({exc.strerror or exc})") from None
        if size:
            yield lineno + 1, None if size > MAX_LINE_BYTES else b"".join(parts), 1


class _Problems:
    """The first `MAX_PROBLEMS` problems in file order ("line N: ..."), and how many were found in all.

    Problems arrive nearly in line order (the end-of-layer and end-of-file checks name earlier lines), so
    the kept ones are a bounded heap of the smallest (line, arrival) keys."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, str]] = []  # (-line, -arrival, text): the largest key on top
        self.total = 0

    def extend(self, problems: list[str]) -> None:
        for text in problems:
            self.total += 1
            item = (-int(text.split(maxsplit=2)[1].rstrip(":")), -self.total, text)
            if len(self.heap) < MAX_PROBLEMS:
                heapq.heappush(self.heap, item)
            elif item > self.heap[0]:
                heapq.heapreplace(self.heap, item)

    def add_run(self, line: int, repeats: int) -> None:
        """`repeats` lines identical to `line` (a line that is not a record) follow it: one problem for them."""
        self.extend([f"line {line + 1}: the {repeats} lines {line + 1}..{line + repeats} are the same as line "
                     f"{line}, with the same problem"])

    def first(self) -> tuple[str, ...]:
        return tuple(text for _, _, text in sorted(self.heap, reverse=True))


def _parse_fields(
    obj: dict[str, Any], schema: Mapping[str, Checker], where: str
) -> tuple[dict[str, Any], list[str]]:
    """Check `obj` against `schema`: missing and unknown keys, then each value's type."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    missing = 0
    for key, check in schema.items():
        try:
            values[key] = check(obj[key])
        except KeyError:
            missing += 1
            problems.append(f"{where}: missing key {key!r}")
        except _Bad as bad:
            problems.append(f"{where}.{key}{bad.suffix}: {bad.text}")
    if len(obj) - ("op" in obj) != len(schema) - missing:  # some key is not in the schema
        problems += [
            f"{where}: unknown key {key!r}" for key in obj if key not in schema and key != "op"
        ]
    return values, problems


def _parse_header(raw: bytes) -> tuple[BoardHeader | None, list[str], bool]:
    """The header, its problems, and whether reading the rest makes sense (a board file at all)."""
    try:
        obj = _decode_line(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"line 1: the header is not valid JSON ({exc})"], False
    if not isinstance(obj, dict):
        return None, ["line 1: the header is not a JSON object"], False
    if obj.get("format") != FORMAT:
        shown = _show(obj["format"]) if "format" in obj else "missing"
        return (
            None,
            [f"line 1: header.format: {shown}, not {FORMAT!r}: not a leac board file"],
            False,
        )
    version = obj.get("version")
    if version != VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
        why = "newer than this leac reads" if newer else "not a version leac knows"
        return (
            None,
            [f"line 1: header.version: {_show(version)} is {why} (it reads version {VERSION})"],
            False,
        )
    values, problems = _parse_fields(obj, _HEADER_SCHEMA, "line 1: header")
    if problems:
        return None, problems, True
    return BoardHeader(**values), [], True


def _parse_record(raw: bytes, lineno: int) -> tuple[Record | None, list[str]]:
    where = f"line {lineno}"
    if not raw.strip():
        return None, [f"{where}: empty line (every line after the header is one record)"]
    try:
        obj = _decode_line(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"{where}: not valid JSON ({exc})"]
    if not isinstance(obj, dict):
        return None, [f"{where}: not a JSON object"]
    if "op" not in obj:
        return None, [f"{where}: missing key 'op'"]
    op = obj["op"]
    kind = RECORD_TYPES.get(op) if isinstance(op, str) else None
    if kind is None:
        return None, [
            f"{where}: op: {_show(op)} is not a known record kind ({', '.join(RECORD_TYPES)})"
        ]
    values, problems = _parse_fields(obj, _SCHEMAS[op], f"{where}: {op}")
    if problems:
        return None, problems
    return kind(**values), []


def _check_board(path: str | os.PathLike[str], *, keep_records: bool) -> BoardCheck:
    source = os.fspath(path)
    problems = _Problems()
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        problems.extend(["line 1: the file is empty (expected the leac-board header)"])
        return BoardCheck(source, None, problems.first(), problems.total)
    raw = first[1]
    if raw is None:
        problems.extend([f"line 1: longer than {MAX_LINE_BYTES} bytes: not a leac board file"])
        return BoardCheck(source, None, problems.first(), problems.total)
    if raw.startswith(_BOM):
        # the format is ASCII only; Python's json and many firmware parsers refuse a BOM, so a file that
        # has one is not what the board reads: say so, and check the rest as if it were removed
        problems.extend(["line 1: the file starts with a UTF-8 byte order mark (bytes EF BB BF), which a "
                         "leac-board file (ASCII only) never has: remove those three bytes"])
        raw = raw[len(_BOM):]
    header, found, go_on = _parse_header(raw)
    problems.extend(found)
    if not go_on:
        return BoardCheck(source, None, problems.first(), problems.total)
    checker = _Validator(header)
    records: list[Record] = []
    bad: bytes | None = None  # the last line that is not a record, and how many identical lines follow it
    bad_line = repeats = 0
    for lineno, raw, count in lines:
        if raw is not None and raw == bad:  # 30 MB of empty lines: one problem per run, not per line
            repeats += count
            continue
        if repeats:
            problems.add_run(bad_line, repeats)
            repeats = 0
        if raw is None:
            problems.extend([f"line {lineno}: longer than {MAX_LINE_BYTES} bytes, more than leac reads"])
            continue
        record, found = _parse_record(raw, lineno)
        problems.extend(found)
        bad, bad_line = (raw, lineno) if record is None else (None, 0)
        repeats = count - 1  # more empty lines (never a record)
        if record is not None:
            if keep_records:
                records.append(record)
            problems.extend(checker.check(record, lineno))
    if repeats:
        problems.add_run(bad_line, repeats)
    problems.extend(checker.finish())
    duplicates, count = checker.devices.duplicates(MAX_PROBLEMS)
    problems.extend(duplicates)
    problems.total += count - len(duplicates)
    stream = BoardStream(header, tuple(records)) if keep_records and header and not problems.total else None
    return BoardCheck(source, header, problems.first(), problems.total, stream)


class _Devices:
    """The (array, row, col) of every write and skip record with its line, 17 bytes each (a dict took ~150):
    duplicates are found once, at the end, by sorting. Coordinates too large to pack into 64 bits (no real
    chip has them) go to a dict."""

    def __init__(self) -> None:
        self.keys = PackedArray("Q")  # array << 44 | row << 22 | col: 2**20 > chip.MAX_ARRAYS, 4M rows, cols
        self.lines = PackedArray("q")
        self.skips = PackedArray("b")
        self.other: dict[tuple[int, int, int], int] = {}
        self.other_duplicates: list[tuple[int, str, int, int, int, int]] = []

    def add(self, record: Write | Skip, lineno: int) -> None:
        a, r, c = record.array, record.row, record.col
        if a < 2**20 and r < 2**22 and c < 2**22:
            self.keys.append(a << 44 | r << 22 | c)
            self.lines.append(lineno)
            self.skips.append(isinstance(record, Skip))
        elif (a, r, c) in self.other:
            self.other_duplicates.append((lineno, record.op, a, r, c, self.other[(a, r, c)]))
        else:
            self.other[(a, r, c)] = lineno

    def duplicates(self, most: int) -> tuple[list[str], int]:
        """The first `most` (by line) "line N: write: device (...) already appears on line M" problems, and
        how many repeated devices there are in all."""
        found = list(self.other_duplicates)
        keys = np.frombuffer(self.keys, dtype=np.uint64)
        total = len(found)
        if keys.size > 1:
            order = np.argsort(keys, kind="stable")  # by device, then by line (records come in line order)
            ordered = keys[order]
            repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
            total += repeat.size
            first = np.searchsorted(ordered, ordered[repeat])  # each repeated device's first occurrence
            shown = np.argsort(order[repeat], kind="stable")[:most]  # the earliest repeats
            lines = np.frombuffer(self.lines, dtype=np.int64)
            skips = np.frombuffer(self.skips, dtype=np.int8)
            for at, base in zip(order[repeat][shown], order[first][shown], strict=True):
                key = int(keys[at])
                found.append((int(lines[at]), "skip" if skips[at] else "write", key >> 44,
                              (key >> 22) & (2**22 - 1), key & (2**22 - 1), int(lines[base])))
        found.sort()
        texts = [f"line {line}: {op}: device (array {a}, row {r}, col {c}) already appears on line {base}"
                 for line, op, a, r, c, base in found[:most]]
        return texts, total


class _Validator:
    """The checks that span records: order, coordinates, duplicates, references and counts.

    Each record that parsed is fed to `check` in file order; `finish` runs the
    end-of-file checks. Without a valid header the checks that need it
    (array sizes, levels, counts) are skipped; the header's own problems are
    already reported.
    """

    def __init__(self, header: BoardHeader | None) -> None:
        self.header = header
        self.arrays = {a.id: a for a in header.arrays} if header else None
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.devices = _Devices()
        self.selected: tuple[SelectArray, int] | None = None
        self.selected_seen = 0
        self.orphans: list[int] = []  # line and count of devices with no array selected
        self.schedule_line: int | None = None
        self.defined: set[str] = {v["name"] for v in header.inputs} if header else set()
        self.too_many_names = False
        self.layer: tuple[LayerStart, int] | None = None
        self.layer_reads: set[tuple[int, int, str]] = set()
        self.layer_steps: Counter[str] = Counter()
        self.combined: set[int] = set()
        self.previous: Record | None = None

    def check(self, record: Record, lineno: int) -> list[str]:
        where = f"line {lineno}: {record.op}"
        self.counts[record.op] += 1
        problems: list[str] = []
        if record.op in _PROGRAMMING_OPS:
            if self.schedule_line is not None:
                problems.append(
                    f"{where}: programming records must all come before the inference "
                    f"schedule (it began on line {self.schedule_line})"
                )
        elif self.schedule_line is None:
            self.schedule_line = lineno
            problems += self._close_selection()
        if isinstance(record, SelectArray):
            problems += self._close_selection()
            problems += self._array_known(record.array, f"{where}.array")
            self.selected, self.selected_seen = (record, lineno), 0
        elif isinstance(record, (Write, Skip)):
            problems += self._device(record, where, lineno)
        elif isinstance(record, (Digital, LayerStart)):
            problems += self._close_layer()
            problems += self._values(record, where, lineno)
        else:
            problems += self._layer_step(record, where)
        self.previous = record
        return problems

    def finish(self) -> list[str]:
        problems = self._close_selection() + self._close_layer()
        header = self.header
        if header is None:
            return problems
        for op in RECORD_TYPES:
            if header.counts[op] != self.counts[op]:
                problems.append(
                    f"line 1: header.counts.{op}: {header.counts[op]}, but the file has "
                    f"{self.counts[op]} {op} records"
                )
        total = sum(self.counts.values())
        if header.records != total:
            problems.append(
                f"line 1: header.records: {header.records}, but the file has {total} records"
            )
        for state in STATES:
            if header.skipped[state] != self.skipped[state]:
                problems.append(
                    f"line 1: header.skipped.{state}: {header.skipped[state]}, but the file "
                    f"skips {self.skipped[state]} {state} devices"
                )
        for value in header.outputs:
            if value["name"] not in self.defined and not self.too_many_names:
                problems.append(
                    f"line 1: header.outputs: {value['name']!r} is not produced by any record"
                )
        return problems

    # ---------------------------------------------------------------- programming
    def _array_known(self, array: int, where: str) -> list[str]:
        if self.arrays is not None and array not in self.arrays:
            return [f"{where}: {array} is not one of the header's arrays ({sorted(self.arrays)})"]
        return []

    def _close_selection(self) -> list[str]:
        if self.orphans:  # one problem for a run of devices with no array selected
            first, count = self.orphans
            self.orphans = []
            more = f" (nor before the {count - 1} write/skip records after it)" if count > 1 else ""
            return [f"line {first}: no select_array before this write/skip{more}"]
        if self.selected is None:
            return []
        record, lineno = self.selected
        self.selected = None
        if record.devices != self.selected_seen:
            return [
                f"line {lineno}: select_array.devices: {record.devices}, but {self.selected_seen} "
                "write/skip records follow it"
            ]
        return []

    def _device(self, record: Write | Skip, where: str, lineno: int) -> list[str]:
        problems: list[str] = []
        if isinstance(record, Skip):
            self.skipped[record.state] += 1
        if self.selected is None:
            self.orphans = [self.orphans[0], self.orphans[1] + 1] if self.orphans else [lineno, 1]
        elif self.selected[0].array != record.array:
            problems.append(
                f"{where}.array: {record.array} is not the selected array "
                f"{self.selected[0].array} (select_array on line {self.selected[1]})"
            )
        else:
            self.selected_seen += 1
        arr = self.arrays.get(record.array) if self.arrays is not None else None
        if self.arrays is not None and arr is None:
            problems += self._array_known(record.array, f"{where}.array")
        if arr is not None:
            if record.row >= arr.rows:
                problems.append(
                    f"{where}.row: {record.row} is outside array {arr.id} ({arr.rows} rows)"
                )
            if record.col >= arr.cols:
                problems.append(
                    f"{where}.col: {record.col} is outside array {arr.id} ({arr.cols} columns)"
                )
        self.devices.add(record, lineno)
        header = self.header
        if isinstance(record, Write) and header is not None:
            levels = header.levels_uS
            if record.level >= len(levels):
                problems.append(
                    f"{where}.level: {record.level} is not a level index (the header has "
                    f"{len(levels)} levels)"
                )
            elif record.target_uS != levels[record.level]:
                problems.append(
                    f"{where}.target_uS: {record.target_uS} is not levels_uS[{record.level}] = "
                    f"{levels[record.level]}"
                )
            if record.tolerance_uS != header.tolerance_uS:
                problems.append(
                    f"{where}.tolerance_uS: {record.tolerance_uS} is not the header's "
                    f"{header.tolerance_uS}"
                )
            if record.max_pulses != header.max_pulses:
                problems.append(
                    f"{where}.max_pulses: {record.max_pulses} is not the header's "
                    f"{header.max_pulses}"
                )
        return problems

    # ------------------------------------------------------------------- schedule
    def _values(self, record: Digital | LayerStart, where: str, lineno: int) -> list[str]:
        problems: list[str] = []
        if isinstance(record, Digital):
            for i, name in enumerate(record.inputs):
                if name is not None and name not in self.defined and name not in record.constants \
                        and not self.too_many_names:
                    problems.append(
                        f"{where}.inputs[{i}]: {name!r} is not a graph input, a constant or an "
                        "earlier record's output"
                    )
            problems += self._define(record.outputs, where)
            return problems
        if record.input not in self.defined and not self.too_many_names:
            problems.append(
                f"{where}.input: {record.input!r} is not a graph input or an earlier "
                "record's output"
            )
        problems += self._define([record.output], where)
        if record.rows != record.inputs + int(record.bias_row):
            problems.append(
                f"{where}.rows: {record.rows} is not inputs ({record.inputs}) "
                f"+ {int(record.bias_row)} bias row"
            )
        if (record.bias == "row") != record.bias_row:
            problems.append(
                f"{where}.bias: {record.bias!r} disagrees with bias_row = {_show(record.bias_row)}"
            )
        if len(record.scale_uS) != record.cols:
            problems.append(
                f"{where}.scale_uS: {len(record.scale_uS)} scales for {record.cols} columns"
            )
        if record.beta > record.alpha:
            problems.append(f"{where}.beta: {record.beta} is more than alpha = {record.alpha}")
        for key, bounds, size in (
            ("row_blocks", record.row_blocks, record.rows),
            ("col_blocks", record.col_blocks, record.cols),
        ):
            if any(stop > size for _, stop in bounds):
                problems.append(f"{where}.{key}: a range ends beyond {size}")
        self.layer = (record, lineno)
        self.layer_reads, self.layer_steps, self.combined = set(), Counter(), set()
        return problems

    def _define(self, names: Sequence[str], where: str) -> list[str]:
        """Record value names as defined; past `MAX_VALUE_NAMES` one problem, and no more names kept."""
        if self.too_many_names:
            return []
        self.defined.update(names)
        if len(self.defined) <= MAX_VALUE_NAMES:
            return []
        self.too_many_names = True
        return [f"{where}: more than {MAX_VALUE_NAMES} distinct value names, more than leac checks"]

    def _close_layer(self) -> list[str]:
        if self.layer is None:
            return []
        layer, lineno = self.layer
        self.layer = None
        where = f"line {lineno}: layer {layer.name!r}"
        missing = [
            (b, c, p)
            for b in range(layer.blocks)
            for c in range(layer.alpha)
            for p in POLARITIES
            if (b, c, p) not in self.layer_reads
        ]
        problems = []
        if missing:
            b, c, p = missing[0]
            problems.append(
                f"{where}: {len(missing)} copy halves are never read (the first: block {b} copy "
                f"{c} {p})"
            )
        uncombined = sorted(set(range(layer.blocks)) - self.combined)
        if uncombined:
            problems.append(f"{where}: blocks {uncombined} are never combined")
        expected = {"accumulate": 1, "scale": 1, "bias": int(layer.bias == "digital")}
        for op, count in expected.items():
            if self.layer_steps[op] != count:
                problems.append(
                    f"{where}: has {self.layer_steps[op]} {op} records, expected {count}"
                )
        return problems

    def _layer_step(self, record: Record, where: str) -> list[str]:
        if self.layer is None:
            return [f"{where}: not inside a layer (no layer record before it)"]
        layer = self.layer[0]
        name = getattr(record, "layer", None)
        if name != layer.name:
            return [f"{where}.layer: {_show(name)} is not the current layer {layer.name!r}"]
        self.layer_steps[record.op] += 1
        problems: list[str] = []
        if isinstance(record, (Read, Convert, Combine)):
            if record.block >= layer.blocks:
                problems.append(
                    f"{where}.block: {record.block} is not below the layer's {layer.blocks} blocks"
                )
        if isinstance(record, (Read, Convert)) and record.copy >= layer.alpha:
            problems.append(f"{where}.copy: {record.copy} is not below alpha = {layer.alpha}")
        if isinstance(record, Read):
            problems += self._read(record, layer, where)
        elif isinstance(record, Convert):
            problems += self._convert(record, where)
        elif isinstance(record, Combine):
            problems += self._combine(record, layer, where)
        elif isinstance(record, Accumulate):
            if record.cols != layer.cols:
                problems.append(f"{where}.cols: {record.cols} is not the layer's {layer.cols}")
            for i, (block, _, stop) in enumerate(record.terms):
                if block >= layer.blocks or stop > layer.cols:
                    problems.append(
                        f"{where}.terms[{i}]: {list(record.terms[i])} is outside the layer"
                    )
        elif isinstance(record, Scale):
            if len(record.scale_uS) != layer.cols:
                problems.append(
                    f"{where}.scale_uS: {len(record.scale_uS)} scales for {layer.cols} columns"
                )
            if record.x_fs_min < 0:
                problems.append(f"{where}.x_fs_min: {record.x_fs_min} is negative")
        elif isinstance(record, Bias):
            if layer.bias != "digital":
                problems.append(f"{where}: the layer's bias is {layer.bias!r}, not 'digital'")
            if len(record.values) != layer.cols:
                problems.append(
                    f"{where}.values: {len(record.values)} values for {layer.cols} columns"
                )
        return problems

    def _read(self, record: Read, layer: LayerStart, where: str) -> list[str]:
        problems = self._array_known(record.array, f"{where}.array")
        arr = self.arrays.get(record.array) if self.arrays is not None else None
        if arr is not None and (
            record.row + record.rows > arr.rows or record.col + record.cols > arr.cols
        ):
            problems.append(
                f"{where}: region rows {record.row}..{record.row + record.rows - 1}, cols "
                f"{record.col}..{record.col + record.cols - 1} is outside array {arr.id} "
                f"({arr.rows} x {arr.cols})"
            )
        driven = record.x_stop - record.x_start + (record.one_row is not None)
        if record.x_start > record.x_stop or record.x_stop > layer.inputs:
            problems.append(
                f"{where}: x_start..x_stop {record.x_start}..{record.x_stop} is not a slice of the "
                f"layer's {layer.inputs} inputs"
            )
        elif driven != record.rows:
            problems.append(f"{where}: drives {driven} rows but the region has {record.rows}")
        if record.one_row is not None and (not layer.bias_row or record.one_row >= record.rows):
            problems.append(f"{where}.one_row: {record.one_row} is not a bias row of this region")
        key = (record.block, record.copy, record.polarity)
        if key in self.layer_reads:
            problems.append(f"{where}: block {key[0]} copy {key[1]} {key[2]} is read twice")
        self.layer_reads.add(key)
        return problems

    def _convert(self, record: Convert, where: str) -> list[str]:
        read = self.previous
        if not isinstance(read, Read) or (read.block, read.copy, read.polarity, read.array) != (
            record.block,
            record.copy,
            record.polarity,
            record.array,
        ):
            return [
                f"{where}: does not follow the read of the same block, copy, polarity and array"
            ]
        problems = []
        if (record.col_start, record.col_stop) != (read.col, read.col + read.cols):
            problems.append(
                f"{where}: columns {record.col_start}..{record.col_stop} are not the columns read "
                f"({read.col}..{read.col + read.cols})"
            )
        header = self.header
        if header is not None and record.adcs != header.periphery["adcs_per_array"]:
            problems.append(
                f"{where}.adcs: {record.adcs} is not the header's adcs_per_array "
                f"({header.periphery['adcs_per_array']})"
            )
        width = max(record.col_stop - record.col_start, 0)
        if record.rounds != -(-width // record.adcs):
            problems.append(f"{where}.rounds: {record.rounds} is not ceil({width} / {record.adcs})")
        return problems

    def _combine(self, record: Combine, layer: LayerStart, where: str) -> list[str]:
        problems = []
        self.combined.add(record.block)
        if record.col_stop > layer.cols or record.col_stop - record.col_start != len(record.copies):
            problems.append(
                f"{where}: columns {record.col_start}..{record.col_stop} do not match the "
                f"{len(record.copies)} copy lists within the layer's {layer.cols} columns"
            )
        if record.divisor > layer.alpha:
            problems.append(f"{where}.divisor: {record.divisor} is more than alpha = {layer.alpha}")
        for j, chosen in enumerate(record.copies):
            if (
                len(chosen) != record.divisor
                or any(c >= layer.alpha for c in chosen)
                or list(chosen) != sorted(set(chosen))
            ):
                problems.append(
                    f"{where}.copies[{j}]: {list(chosen)} is not {record.divisor} distinct "
                    f"ascending copy indices below alpha = {layer.alpha}"
                )
                break
        return problems
