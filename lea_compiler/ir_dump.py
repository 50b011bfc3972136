"""The IR in full as text, the same on every machine: for golden tests and for reading a compile pass by pass.

`str(graph)` (`lea_compiler.ir.format_graph`) is the short form that `leac inspect` and `--dump-ir` print:
one line per fact, its own `describe()`. `dump_graph` prints everything a pass can change instead: every
field of every fact on every node and on the graph, the graph's metadata, and a summary of every constant.
What floating point computes may differ in its last bits between CPUs and BLAS builds, so the text never
shows those bits:

- a float prints with `SIGNIFICANT` (6) significant digits, and as 0 when its magnitude is below `NOISE`
  (1e-9): rounding noise at the scales leac works in (weights near 1, conductances in uS, currents in uA);
- a float array prints its values when it has at most `SHOWN_FLOATS` elements (an integer or boolean one, at
  most `SHOWN_INTS`); a larger one prints its dtype, shape, range and a short hash of its values: integers
  exactly, floats rounded to `SIGNIFICANT` digits of the array's largest magnitude (`array_digest`);
- a field named in `VOLATILE` (a wall-clock time) prints as `...`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lea_compiler.ir import Graph, Value, graph_heading, node_signature
from lea_compiler.tables import printable

SIGNIFICANT = 6
"""Significant digits of a printed float."""
NOISE = 1e-9
"""Floats smaller than this in magnitude print as 0."""
SHOWN_FLOATS = 16
"""Float arrays of at most this many elements print their values; larger ones a summary."""
SHOWN_INTS = 32
"""Integer and boolean arrays of at most this many elements print their values; larger ones a summary."""
VOLATILE = frozenset({"seconds"})
"""Fact fields that hold wall-clock times, printed as `...`."""
INLINE = 120
"""A dataclass value prints on one line when that line is at most this long."""


def format_float(value: float) -> str:
    """A float with `SIGNIFICANT` significant digits; 0 below `NOISE`; nan and inf by name."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) < NOISE:
        return "0"
    return f"{value:.{SIGNIFICANT}g}"


def _rounded(array: np.ndarray) -> tuple[np.ndarray, int]:
    """A float array as integers in units of 10^exponent, `SIGNIFICANT` digits of its largest magnitude."""
    values = np.where(np.abs(array) < NOISE, 0.0, np.nan_to_num(array.astype(np.float64), nan=0.0))
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return np.zeros(values.shape, dtype="<i8"), 0
    exponent = math.floor(math.log10(largest)) - (SIGNIFICANT - 1)
    return np.rint(values / 10.0**exponent).astype("<i8"), exponent


def array_digest(array: np.ndarray) -> str:
    """12 hex digits of the sha256 of an array's shape and values: integers and booleans exactly, floats rounded
    to `SIGNIFICANT` digits of the largest magnitude (non-finite values counted apart)."""
    digest = hashlib.sha256(repr(array.shape).encode())
    if array.dtype.kind == "f":
        units, exponent = _rounded(array)
        digest.update(f"e{exponent}".encode())
        digest.update(units.tobytes())
        digest.update(np.packbits(~np.isfinite(array)).tobytes())
        digest.update(np.packbits(np.isposinf(array)).tobytes())
    elif array.dtype.kind in "biu":
        digest.update(array.astype("<i8").tobytes())
    else:
        digest.update(repr(array.tolist()).encode())
    return digest.hexdigest()[:12]


def format_array(array: np.ndarray) -> str:
    """An array's values (small arrays), else `dtype[shape] min..max #digest`."""
    array = np.asarray(array)
    dtype = "string" if array.dtype == np.dtype(object) else str(array.dtype)
    limit = SHOWN_FLOATS if array.dtype.kind in "fc" else SHOWN_INTS
    if array.size <= limit:
        return f"{dtype}{list(array.shape)} {_nested(array.tolist())}"
    summary = f"{dtype}{list(array.shape)}"
    if array.dtype.kind in "fbiu" and array.size:
        finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
        if finite.size:
            summary += f" {format_value(finite.min())}..{format_value(finite.max())}"
    return f"{summary} #{array_digest(array)}"


def _nested(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    return format_value(value)


def format_value(value: Any) -> str:
    """A value on one line: floats rounded, arrays as `format_array`, dataclasses as `Name(field=value, ...)`.

    Raises:
        TypeError: a value of a kind this printer does not know (it would not print the same on every run).
    """
    if value is None or isinstance(value, (bool, np.bool_)):
        return str(bool(value)) if value is not None else "None"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(float(value))
    if isinstance(value, str):
        return repr(printable(value))
    if isinstance(value, np.ndarray):
        return format_array(value)
    if isinstance(value, (tuple, list)):
        inner = ", ".join(format_value(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(f"{name}={text}" for name, text in _fields(value))
        return f"{type(value).__name__}({fields})"
    raise TypeError(f"dump_graph cannot print a {type(value).__name__}")


def _fields(value: Any) -> list[tuple[str, str]]:
    return [(f.name, "..." if f.name in VOLATILE else format_value(getattr(value, f.name)))
            for f in dataclasses.fields(value)]


def format_fact(fact: object, indent: str, prefix: str = "") -> list[str]:
    """A fact's lines: its class, then one line per field, indented; a tuple of dataclasses too long for one
    line gets one line per item."""
    name = f"{indent}{prefix}{type(fact).__name__}"
    if not dataclasses.is_dataclass(fact) or isinstance(fact, type):
        return [f"{name}: {format_value(fact)}"]
    lines = [name]
    for f in dataclasses.fields(fact):
        value = getattr(fact, f.name)
        text = "..." if f.name in VOLATILE else format_value(value)
        items = isinstance(value, tuple) and value and all(dataclasses.is_dataclass(v) for v in value)
        if items and len(indent) + len(f.name) + len(text) + 5 > INLINE:
            lines.append(f"{indent}  {f.name} = {len(value)} items")
            for item in value:
                line = f"{indent}    - {format_value(item)}"
                if len(line) <= INLINE:
                    lines.append(line)
                else:
                    lines.append(f"{indent}    - {type(item).__name__}")
                    lines += [f"{indent}        {name} = {text}" for name, text in _fields(item)]
        else:
            lines.append(f"{indent}  {f.name} = {text}")
    return lines


def _const(value: Value) -> str:
    assert value.const is not None
    return f"  const  %{printable(value.name)}: {value.type_str()} = {format_array(value.const)}"


def dump_graph(graph: Graph) -> str:
    """The graph in full as text (see the module docstring): heading, metadata, graph facts, inputs, constants,
    nodes with every field of their facts, outputs."""
    lines = [graph_heading(graph)]
    lines += [f"  metadata {format_value(k)} = {format_value(v)}" for k, v in sorted(graph.metadata.items())]
    for fact in graph.facts:
        lines += format_fact(fact, "  ", "fact ")
    lines += [f"  input  %{printable(v.name)}: {v.type_str()}" for v in graph.inputs]
    lines += [_const(v) for v in graph.initializers.values()]
    for node in graph.nodes:
        lines.append("  " + node_signature(node))
        for fact in node.facts:
            lines += format_fact(fact, "      ")
    lines += [f"  output %{printable(v.name)}: {v.type_str()}" for v in graph.outputs]
    return "\n".join(lines)
