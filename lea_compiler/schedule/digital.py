"""Lowering's digital nodes: a graph node that runs in the periphery as its `digital` record, its attributes and
constant inputs as plain JSON (docs/board-format.md). Split from `schedule.lower`, which uses it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lea_compiler.errors import InvalidInputError
from lea_compiler.ir import Node
from lea_compiler.schedule.records import Digital


def dtype_name(dtype: np.dtype[Any]) -> str:
    """A dtype's name in a board file ("string" for numpy's object strings)."""
    return "string" if dtype == np.dtype(object) else str(dtype)


def digital_record(node: Node) -> Digital:
    """A non-crossbar node as its `digital` record: attributes and constant inputs as plain JSON."""
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
        raise InvalidInputError(f"{node.describe()}: {what} is a {array.dtype} tensor, which a board file cannot carry")
    return {"dtype": dtype_name(array.dtype), "shape": list(array.shape), "data": data}


def _json_safe(value: Any, node: Node, key: str) -> Any:
    """An attribute value as plain JSON (tensors and non-finite floats: docs/board-format.md)."""
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
    raise InvalidInputError(f"{node.describe()}: attribute {key!r} holds a {type(value).__name__}, which a "
                            "board file cannot carry")
