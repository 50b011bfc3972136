"""The `leac-board` format's own vocabulary: its constants, the header, the stream, and the JSON encoding of the
schedule's records (`lea_compiler.schedule.records`, re-exported here).

Every other module of the board backend speaks in these types: the writer serialises the records the schedule
lowering makes, the reader decodes lines into them, the validator checks them against each other (the format
itself: the package docstring, docs/board-format.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from lea_compiler.chip.fields import OPTIONAL_PERIPHERY, PERIPHERY_KINDS, model_problems
from lea_compiler.schedule.records import (
    _PROGRAMMING_OPS,
    BIAS_MODES,
    MAX_PROBLEMS,
    POLARITIES,
    RECORD_TYPES,
    STATES,
    Accumulate,
    Bias,
    Checker,
    Combine,
    Convert,
    Digital,
    LayerStart,
    Read,
    Record,
    Scale,
    SelectArray,
    Skip,
    Write,
    _Bad,
    _count,
    _field,
    _index,
    _json_object,
    _list_of,
    _object_of,
    _optional,
    _positive,
    _real,
    _schema,
    _show,
    _text,
)

__all__ = ["BIAS_MODES", "FORMAT", "MAX_PROBLEMS", "POLARITIES", "RECORD_TYPES", "STATES", "VERSION", "VERSIONS",
           "Accumulate", "Bias", "BoardArray", "BoardHeader", "BoardStream", "Checker", "Combine", "Convert",
           "Digital", "LayerStart", "Read", "Record", "Scale", "SelectArray", "Skip", "Write", "_PROGRAMMING_OPS",
           "_Bad", "board_version", "record_line"]

FORMAT = "leac-board"
"""The header's `format`."""
VERSION = 3
"""The newest `leac-board` version this leac writes and reads."""
VERSIONS = (1, 2, 3)
"""The `leac-board` versions this leac reads. leac writes the oldest that holds a file's records
(`board_version`): version 2 added `read.reads`, version 3 `layer.groups`, so a file that reads every region
once and has no grouped layer is version 1, as before."""

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


def _non_negative(value: Any) -> float:
    number = _real(value)
    if number < 0:
        raise _Bad(f"{_show(value)} is negative")
    return number


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
    "e_digital_op_pJ": _positive,
    "t_dac_ns": _positive,
    "digital_lanes": _count,
    "p_static_adc_uW": _non_negative,
    "p_static_dac_uW": _non_negative,
    "p_static_array_uW": _non_negative,
    "p_static_digital_uW": _non_negative,
}
OPTIONAL_PERIPHERY_KEYS = frozenset(OPTIONAL_PERIPHERY)
"""Header periphery keys written only when not at their defaults (as in a chip file), so board files keep the
bytes they had before the keys existed; a file without one means the default (`chip.Periphery`)."""
_PERIPHERY_OBJECT = _object_of(_PERIPHERY_KEYS, OPTIONAL_PERIPHERY_KEYS)


def _periphery(value: Any) -> dict[str, Any]:
    """The header's periphery: its keys' types, then the chip file's ranges (`chip_limits`, chip-format.md), so
    a header no chip file could state (e.g. `digital_lanes` 1e300) is refused like that chip file."""
    periphery = _PERIPHERY_OBJECT(value)
    problems = model_problems(periphery, {k: PERIPHERY_KINDS[k] for k in periphery if k in PERIPHERY_KINDS}, "")
    if problems:
        raise _Bad("; ".join(problems))
    return periphery
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
    periphery: dict[str, Any] = _field(_periphery)
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
"""Each record kind's keys in the newest version."""
_VERSION_SCHEMAS: dict[int, dict[str, dict[str, Checker]]] = {
    version: {op: _schema(kind, version) for op, kind in RECORD_TYPES.items()} for version in VERSIONS}
"""Each record kind's keys in a file of each version."""
_SINCE: dict[str, dict[str, int]] = {op: {f.name: f.metadata["since"] for f in fields(kind)}
                                     for op, kind in RECORD_TYPES.items()}
"""The version each record field first appears in (for the message about a field too new for its file)."""
_HEADER_SCHEMA = _schema(BoardHeader)


def board_version(records: Iterable[Record]) -> int:
    """The oldest `leac-board` version that holds `records`: 3 when a layer is grouped (`layer.groups`), else 2
    when a read reads its region more than once (the field `read.reads`), else 1, so that a file without either
    stays what leac wrote before."""
    records = list(records)
    if any(isinstance(r, LayerStart) and r.groups != 1 for r in records):
        return 3
    return 2 if any(isinstance(r, Read) and r.reads != 1 for r in records) else 1


@dataclass(frozen=True)
class BoardStream:
    """A whole board file: the header and every record after it, in file order."""

    header: BoardHeader
    records: tuple[Record, ...]

    def of(self, kind: type[R]) -> list[R]:
        """The records of one kind, in file order."""
        return [r for r in self.records if isinstance(r, kind)]

    def to_text(self) -> str:
        """The file's text: the same bytes `emit_board` writes for this stream (in its header's version)."""
        lines = [_dumps(self.header.to_json())]
        lines += [record_line(r, self.header.version) for r in self.records]
        return "\n".join(lines) + "\n"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _dumps(obj: object) -> str:
    return _ENCODER.encode(obj)


def record_line(record: Record, version: int = VERSION) -> str:
    """One record as its line of JSON (no newline) in a file of `version`: `op` first, then the fields that
    version has, in order.

    Raises:
        ValueError: the record has a field `version` lacks that is not at its default (`board_version` gives
            the version a stream needs).
    """
    if type(record) is Write:
        # Nearly every line of a file is a write: format it directly, 3x faster than the
        # encoder and the same bytes (json writes ints and finite floats with their repr).
        return (
            f'{{"op":"write","array":{record.array},"row":{record.row},"col":{record.col},'
            f'"level":{record.level},"target_uS":{record.target_uS!r},'
            f'"tolerance_uS":{record.tolerance_uS!r},"max_pulses":{record.max_pulses}}}'
        )
    out: dict[str, Any] = {"op": record.op}
    schema = _VERSION_SCHEMAS[version][record.op]
    for key in schema:
        out[key] = getattr(record, key)
    if len(schema) != len(_SCHEMAS[record.op]):
        newer = [f for f in fields(record) if f.name not in schema and getattr(record, f.name) != f.default]
        if newer:
            raise ValueError(f"a {record.op} record with {newer[0].name} = {getattr(record, newer[0].name)!r} "
                             f"needs leac-board version {_SINCE[record.op][newer[0].name]}, not {version}")
    return _dumps(out)
