"""Data sets for simulation and calibration: .npz files with `x` and `y`, read without pickle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lea_compiler import interpreter
from lea_compiler.errors import BadDataError, UsageError
from lea_compiler.ir import Graph

MAX_DATA_BYTES = 2 * 2**30
"""Largest data file read; larger test sets must be split into several files."""


@dataclass(frozen=True)
class Dataset:
    """A test set: inputs `x` (batch first) and integer labels `y`."""

    name: str
    x: np.ndarray
    y: np.ndarray


def load_data(path: str | os.PathLike[str], graph: Graph) -> Dataset:
    """Read an .npz with `x` and `y` for `graph`'s single input, without pickle.

    Raises:
        BadDataError: missing keys, wrong shapes or dtypes, or a file too large.
    """
    source = Path(path)
    if not source.is_file():
        raise BadDataError(f"{source}: no such data file")
    size = source.stat().st_size
    if size > MAX_DATA_BYTES:
        raise BadDataError(f"{source}: {size} bytes is more than leac reads at once ({MAX_DATA_BYTES}); split it")
    try:
        with np.load(source, allow_pickle=False) as data:
            keys = set(data.files)
            if not {"x", "y"} <= keys:
                raise BadDataError(f"{source}: needs arrays 'x' and 'y', has {sorted(keys)}")
            x, y = data["x"], data["y"]
    except BadDataError:
        raise
    except Exception as exc:  # zipfile / numpy raise many kinds for a damaged file
        raise BadDataError(f"{source}: not a readable .npz data file ({exc})") from None
    if len(graph.inputs) != 1:
        raise BadDataError(f"the model has {len(graph.inputs)} inputs; data files feed models with one input")
    if x.dtype.kind not in "fiu":
        raise BadDataError(f"{source}: x must be numeric, got {x.dtype}")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise BadDataError(f"{source}: y must be a 1-D array of integer labels, got {y.dtype} {list(y.shape)}")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise BadDataError(f"{source}: x has {x.shape[0] if x.ndim else 0} samples and y {y.shape[0]}")
    value = graph.inputs[0]
    try:
        x = interpreter.check_feeds(graph, {value.name: x})[value.name]
    except BadDataError as exc:
        raise BadDataError(f"{source}: {exc}") from None
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise BadDataError(f"{source}: x contains NaN or infinity")
    return Dataset(source.name, x, y.astype(np.int64))


def top1(outputs: Mapping[str, np.ndarray], output: str | None = None) -> np.ndarray:
    """Predicted class per sample: an integer label output if there is one, else argmax of the first float one."""
    if output is not None:
        if output not in outputs:
            raise UsageError(f"the model has no output {output!r}; it has {', '.join(outputs)}")
        chosen = outputs[output]
        return chosen.reshape(len(chosen), -1).argmax(axis=1) if chosen.dtype.kind == "f" else chosen.reshape(-1)
    for values in outputs.values():
        if values.dtype.kind in "iu" and values.size == len(values) and values.ndim >= 1:
            return values.reshape(-1).astype(np.int64)
    for values in outputs.values():
        if values.dtype.kind == "f":
            return values.reshape(len(values), -1).argmax(axis=1)
    raise BadDataError("the model has no integer label output and no float output to take the argmax of")


