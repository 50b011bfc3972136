"""The schedule's records: what a chip does to run a Program, as typed values.

Programming records (`select_array`, `write`, `skip`) say which device gets which conductance; inference
records (`digital`, `layer`, `read`, `convert`, `combine`, `accumulate`, `scale`, `bias`) say what the periphery
does per input vector. `lea_compiler.schedule.lower` makes them from a Program; the board backend writes them
as JSON lines and reads them back; the simulator executes them (`lea_compiler.schedule.execute`). Each field
names the checker that reads it from JSON, so a record's keys, their order and their types are declared once,
here (the semantics: docs/board-format.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, ClassVar, TypeAlias, TypeVar

from lea_compiler.geometry import POLARITIES
from lea_compiler.program.checks import MAX_READS, is_finite_json, reads_problem

STATES = ("stuck_high", "stuck_low")
BIAS_MODES = ("row", "digital", "none")
MAX_PROBLEMS = 200
"""Most problems kept and listed (in an InvalidInputError, `validate_board`, the --json report); the rest are
counted. A person fixes a file from its first problems; 30 MB of bad lines must not make 30 million strings."""


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


def _reads(value: Any) -> int:
    """A read's count of reads: an integer from 1 to `MAX_READS`."""
    if reads_problem(value) is not None:  # the one rule, also the Program's and the option's
        raise _Bad(f"{_show(value)} is not an integer from 1 to {MAX_READS}")
    return value


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


def _object_of(schema: Mapping[str, Checker], optional: frozenset[str] = frozenset()) -> Checker:
    """An object with exactly the keys of `schema`, those in `optional` perhaps left out (returned as a dict in
    schema order, without the optional keys it lacks)."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"{_show(value)} is not an object")
        missing = [k for k in schema if k not in value and k not in optional]
        unknown = [k for k in value if k not in schema]
        if missing:
            raise _Bad(f"missing key {missing[0]!r}")
        if unknown:
            raise _Bad(f"unknown key {unknown[0]!r}")
        out = {}
        for key, field_check in schema.items():
            if key not in value:
                continue  # an optional key left out
            try:
                out[key] = field_check(value[key])
            except _Bad as bad:
                raise _Bad(bad.text, f".{key}{bad.suffix}") from None
        return out

    return check


# --------------------------------------------------------------------------
# Records. Each field names the checker that reads it from JSON (see `_field`),
# so a record's keys, their order and their types are declared once.


def _field(check: Checker, *, since: int = 1, default: Any = None) -> Any:
    """A record field read from JSON by `check` (a value check and conversion); a field that board files have
    only from version `since` on takes `default` in an earlier version's file."""
    if since == 1:
        return field(metadata={"check": check, "since": since})
    return field(default=default, metadata={"check": check, "since": since})


def _schema(kind: type, version: int | None = None) -> dict[str, Checker]:
    """A record class's keys in file order, each with its checker: in a file of `version` (None: the newest),
    without the fields of later versions."""
    return {f.name: f.metadata["check"] for f in fields(kind) if version is None or f.metadata["since"] <= version}


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
    """The start of one crossbar layer's schedule: its matrix, copies, scales and blocks.

    `groups` = G > 1 (board-format version 3, a grouped or depthwise Conv): the layer's input vectors come in
    runs of G, vector v of group g = v mod G, and column o belongs to group o // (cols / G); a vector is read
    only on the blocks holding its group's columns and converts only those, so each column is computed once per
    run, from its own group's vector. A version-1 or 2 file has no such key: every vector reads every block."""

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
    groups: int = _field(_count, since=3, default=1)


READ_FIELDS = ("array", "row", "col", "rows", "cols", "block", "copy", "x_start", "x_stop", "one_row", "reads",
               "polarity")
"""The columns of a crossbar layer's table of its reads' fields (`plan.LayerPlan.read_table`): a `Read`'s fields,
one_row -1 for none, polarity 0 for G+ and 1 for G-."""
READ_COLUMN = {name: column for column, name in enumerate(READ_FIELDS)}
"""Each of `READ_FIELDS`' column."""


@dataclass(frozen=True, slots=True)
class Read:
    """`reads` analog reads of one copy half's region, with the input slice driven on its rows (their digitised
    currents averaged; board-format version 2, which has the field; a version-1 file reads each region once)."""

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
    reads: int = _field(_reads, since=2, default=1)


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

_Record = TypeVar("_Record")


def builder(kind: type[_Record]) -> Callable[..., _Record]:
    """A faster constructor of record kind `kind`: `builder(Read)(*values)`, every field given positionally, is
    `Read(*values)`, the same frozen object, made in a quarter of the time.

    A frozen dataclass's `__init__` sets each field with a call to `object.__setattr__` (to get past the frozen
    `__setattr__`); lowering makes two records per copy half, thousands on small arrays, and those calls were
    most of its time. The builder is a mutable twin of the class with the same slots, whose `__init__` stores
    the fields directly and then makes the object an instance of `kind` (Python checks that the two lay their
    instances out alike; `tests/test_schedule_layout.py` checks that the objects are equal)."""

    if hasattr(kind, "__post_init__"):  # the twin would skip it: a record kind that checks its fields
        raise TypeError(f"{kind.__name__} has a __post_init__, which builder() would skip")

    def become(record: Any) -> None:
        record.__class__ = kind

    return make_dataclass(f"_{kind.__name__}Builder", [(f.name, Any) for f in fields(kind)],  # type: ignore[arg-type]
                          namespace={"__post_init__": become}, slots=True, eq=False, repr=False)
