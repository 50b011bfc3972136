"""Data sets for simulation and calibration: .npz files with `x` and `y`, read without pickle."""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lea_compiler import interpreter
from lea_compiler.errors import BadDataError, UsageError
from lea_compiler.ir import Graph

MAX_DATA_BYTES = 2 * 2**30
"""Largest data file read, and most bytes its arrays may hold once uncompressed (checked from the .npz
entries' declared sizes and the .npy headers before anything is read); larger test sets must be split."""

_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class Dataset:
    """A test set: inputs `x` (batch first) and integer labels `y`."""

    name: str
    x: np.ndarray
    y: np.ndarray


def _too_large(source: Path, what: str) -> BadDataError:
    return BadDataError(f"{source}: {what}, more than leac reads at once ({MAX_DATA_BYTES} bytes, "
                        f"{MAX_DATA_BYTES / 2**30:g} GiB); split the data into several files")


def _check_sizes(source: Path) -> None:
    """Refuse an .npz whose x and y would not fit `MAX_DATA_BYTES`, reading only the zip directory and the
    .npy headers: a small compressed file can declare a huge array, and numpy allocates it before reading.

    Raises:
        BadDataError: not a zip, no x or y, an unreadable or object (pickle) header, more bytes declared than
            the limit, or an array larger than the bytes its entry holds.
    """
    with zipfile.ZipFile(source) as archive:
        members = {}
        for info in archive.infolist():  # named as numpy names them: x.npy -> x
            members[info.filename.removesuffix(".npy")] = info
        if not {"x", "y"} <= set(members):
            raise BadDataError(f"{source}: needs arrays 'x' and 'y', has {sorted(members)}")
        declared = members["x"].file_size + members["y"].file_size
        if declared > MAX_DATA_BYTES:
            raise _too_large(source, f"x and y hold {declared} bytes uncompressed")
        total = 0
        for key in ("x", "y"):
            with archive.open(members[key]) as handle:
                version = np.lib.format.read_magic(handle)
                if version not in _NPY_HEADERS:
                    raise BadDataError(f"{source}: {key} is a .npy version {version}, which leac does not read")
                shape, _, dtype = _NPY_HEADERS[version](handle)
            if dtype.hasobject:
                raise BadDataError(f"{source}: {key} holds Python objects, which leac does not read (no pickle)")
            if any(d < 0 for d in shape):
                raise BadDataError(f"{source}: {key} declares a negative dimension {list(shape)}")
            size = math.prod(shape) * dtype.itemsize
            total += size
            if total > MAX_DATA_BYTES:
                raise _too_large(source, f"{key} declares {list(shape)} {dtype}: x and y would take {total} bytes")
            if size > members[key].file_size:
                raise BadDataError(f"{source}: {key} declares {list(shape)} {dtype} ({size} bytes) but its entry "
                                   f"holds {members[key].file_size} bytes")


def load_data(path: str | os.PathLike[str], graph: Graph) -> Dataset:
    """Read an .npz with `x` and `y` for `graph`'s single input, without pickle: `fit_data(read_data(path))`.

    Raises:
        BadDataError: missing keys, wrong shapes or dtypes, no samples, or a file too large.
    """
    return fit_data(read_data(path), graph, str(Path(path)))


def read_data(path: str | os.PathLike[str]) -> Dataset:
    """Read an .npz with `x` and `y`, without pickle, checking all that does not depend on a model.

    Sizes are checked before anything is read (`MAX_DATA_BYTES`: the file, the
    entries' declared sizes and the arrays' declared shapes). A batch reads each
    data file once and fits it to every Program's model (`fit_data`).

    Raises:
        BadDataError: missing keys, wrong dtypes, x and y of different lengths, no samples, or a file too large.
    """
    source = Path(path)
    if not source.is_file():
        raise BadDataError(f"{source}: no such data file")
    size = source.stat().st_size
    if size > MAX_DATA_BYTES:
        raise _too_large(source, f"the file has {size} bytes")
    try:
        _check_sizes(source)
        with np.load(source, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except BadDataError:
        raise
    except Exception as exc:  # zipfile / zlib / numpy raise many kinds for a damaged file
        raise BadDataError(f"{source}: not a readable .npz data file ({type(exc).__name__}: {exc})") from None
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise BadDataError(f"{source}: x and y must be .npy arrays")
    if x.dtype.kind not in "fiu":
        raise BadDataError(f"{source}: x must be numeric, got {x.dtype}")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise BadDataError(f"{source}: y must be a 1-D array of integer labels, got {y.dtype} {list(y.shape)}")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise BadDataError(f"{source}: x has {x.shape[0] if x.ndim else 0} samples and y {y.shape[0]}")
    if len(y) == 0:
        raise BadDataError(f"{source}: no samples (x and y are empty)")
    return Dataset(source.name, x, y.astype(np.int64))


def fit_data(data: Dataset, graph: Graph, source: str | None = None) -> Dataset:
    """`data` for `graph`'s single input: its shape checked and x cast within its dtype kind.

    `source` names the data in messages (default: `data.name`).

    Raises:
        BadDataError: the model has several inputs, x does not fit its input, or x holds NaN or infinity
            (checked after the cast: float64 data can overflow a float32 input).
    """
    source = data.name if source is None else source
    if len(graph.inputs) != 1:
        raise BadDataError(f"the model has {len(graph.inputs)} inputs; data files feed models with one input")
    value = graph.inputs[0]
    try:
        x = interpreter.check_feeds(graph, {value.name: data.x})[value.name]
    except BadDataError as exc:
        raise BadDataError(f"{source}: {exc}") from None
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise BadDataError(f"{source}: x contains NaN or infinity")
    return data if x is data.x else Dataset(data.name, x, data.y)


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


