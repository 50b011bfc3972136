"""Data sets for simulation and calibration: .npz files with `x` and `y`, read without pickle."""

from __future__ import annotations

import logging
import math
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lea_compiler import interpreter
from lea_compiler.arguments import check_kind, check_path, shown
from lea_compiler.dtypes import convert
from lea_compiler.errors import BadDataError, UsageError
from lea_compiler.fileio import input_kind
from lea_compiler.ir import Graph, Value

MAX_DATA_BYTES = 2 * 2**30
"""Largest data file read, and most bytes its arrays may hold once uncompressed (checked from the .npz
entries' declared sizes and the .npy headers before anything is read); larger test sets must be split."""

log = logging.getLogger(__name__)

_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class Dataset:
    """A test set: inputs `x` (batch first) and integer labels `y`.

    `load_data` and `from_arrays` build checked ones; one built directly is
    checked (and converted) when it is given to `leac.simulate`.
    """

    name: str
    x: np.ndarray
    y: np.ndarray


def _too_large(source: Path, what: str) -> BadDataError:
    return BadDataError(f"{source}: {what}, more than leac reads at once ({MAX_DATA_BYTES} bytes, "
                        f"{MAX_DATA_BYTES / 2**30:g} GiB); split the data into several files")


def _read_arrays(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """`x` and `y` of an .npz, checked against `MAX_DATA_BYTES` from the zip directory and the .npy headers
    before any array is allocated (a small compressed file can declare a huge array), then read from exactly
    the entries that were checked.

    Raises:
        BadDataError: not a zip, no x or y, two entries for one name (`x` and `x.npy`), an unreadable or
            object (pickle) header, more bytes declared than the limit, or an array larger than its entry.
    """
    with zipfile.ZipFile(source) as archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():  # named as numpy names them: x.npy -> x
            key = info.filename.removesuffix(".npy")
            if key in members:
                raise BadDataError(f"{source}: holds two entries for {key!r} ({members[key].filename!r} and "
                                   f"{info.filename!r}); which one is meant is ambiguous")
            members[key] = info
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
        arrays = []
        for key in ("x", "y"):
            with archive.open(members[key]) as handle:
                arrays.append(np.lib.format.read_array(handle, allow_pickle=False))
    return arrays[0], arrays[1]


def load_data(path: str | os.PathLike[str], graph: Graph) -> Dataset:
    """Read an .npz with `x` and `y` for `graph`'s single input, without pickle: `fit_data(read_data(path))`.

    Raises:
        UsageError: `path` is not a file path (str or os.PathLike), or `graph` not a Graph.
        BadDataError: missing keys, wrong shapes or dtypes, no samples, or a file too large.
    """
    check_path(path, "path")
    check_kind(graph, "graph", Graph, "the model's Graph (a Program's .graph, or leac.load_model's)")
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
    kind = input_kind(source)
    if kind is not None:
        raise BadDataError(f"{source}: no such data file" if kind == "no such file" else f"{source}: {kind}, "
                           "not a data file")
    size = source.stat().st_size
    if size > MAX_DATA_BYTES:
        raise _too_large(source, f"the file has {size} bytes")
    try:
        x, y = _read_arrays(source)
    except BadDataError:
        raise
    except Exception as exc:  # zipfile / zlib / numpy raise many kinds for a damaged file
        raise BadDataError(f"{source}: not a readable .npz data file ({type(exc).__name__}: {exc})") from None
    return _dataset(x, y, source.name, str(source))


def _dataset(x: Any, y: Any, name: str, where: str) -> Dataset:
    """x and y as a Dataset after the checks that need no model: arrays, y 1-D whole-number labels (as int64
    by `lea_compiler.dtypes`), as many samples in x as labels, and at least one."""
    try:
        x, y = np.asarray(x), np.asarray(y)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise BadDataError(f"{where}: x and y must be arrays ({exc})") from None
    if y.ndim != 1:
        raise BadDataError(f"{where}: y must be a 1-D array of integer labels, got {y.dtype} {list(y.shape)}")
    y = convert(y, np.int64, f"{where}: y")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise BadDataError(f"{where}: x has {x.shape[0] if x.ndim else 0} samples and y {y.shape[0]}")
    if len(y) == 0:
        raise BadDataError(f"{where}: no samples (x and y are empty)")
    return Dataset(name, x, y)


def fit_data(data: Dataset, graph: Graph, where: str | None = None) -> Dataset:
    """`data` for `graph`'s single input: x converted to the input's dtype by the rule of
    `lea_compiler.dtypes` (integer and floating-point data whose values fit) and its shape checked.

    `where` names the data in messages (default: `data.name`).

    Raises:
        BadDataError: the model has several inputs, x does not fit its input, or x holds NaN or infinity.
    """
    where = data.name if where is None else where
    if len(graph.inputs) != 1:
        raise BadDataError(f"the model has {len(graph.inputs)} inputs; data sets feed models with one input")
    value = graph.inputs[0]
    try:
        x = interpreter.check_feeds(graph, {value.name: data.x})[value.name]
    except BadDataError as exc:
        raise BadDataError(f"{where}: {exc}") from None
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise BadDataError(f"{where}: x contains NaN or infinity")
    return data if x is data.x else Dataset(data.name, x, data.y)


def from_arrays(x: Any, y: Any, graph: Graph, *, name: str = "data", where: str | None = None) -> Dataset:
    """A Dataset for `graph`'s single input from in-memory arrays, checked and converted as a data file is.

    `x` is converted to the model's input dtype and `y` to int64 by the rule of
    `lea_compiler.dtypes` (integer and floating-point data whose values fit;
    labels must be whole numbers); `x` must match the input's rank and known
    dimensions, hold no NaN or infinity, and have as many samples as `y`.
    Whether the labels are classes the model outputs is checked by the
    simulator (`check_labels`), which knows which output the top-1 comes from.

    Args:
        x: The inputs, batch first.
        y: The labels, one per sample (1-D).
        graph: The model (or a Program's graph) the data is for.
        name: How reports name the data set.
        where: How error messages name it (default `name`; a file's path for `load_data`).

    Raises:
        BadDataError: the arrays do not fit the model, or hold values that do not convert.
    """
    where = where or name
    if len(graph.inputs) != 1:
        raise BadDataError(f"the model has {len(graph.inputs)} inputs; data sets feed models with one input")
    return fit_data(_dataset(x, y, name, where), graph, where)


DataLike = str | os.PathLike[str] | Dataset | tuple[Any, Any] | Mapping[str, Any]
"""One data set as the Python API takes it: an .npz path, a Dataset, a pair (x, y), or a dict with x and y."""


def _is_pair(item: object) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and not any(
        isinstance(part, (str, os.PathLike, Dataset, Mapping, tuple)) for part in item)


def data_items(data: DataLike | Sequence[DataLike]) -> tuple[list[Any], list[str]]:
    """The data sets `data` gives (one data set, or an iterable of them: see `as_datasets`), not yet loaded, and
    the names reports give the in-memory ones (`data`, or `data[i]` in a list); an iterable is read once.

    Raises:
        UsageError: `data` is empty, a single array, or neither a data set nor an iterable of them.
    """
    if isinstance(data, np.ndarray):
        raise UsageError("data is a single array; give the inputs and labels together, as a tuple (x, y)")
    single = isinstance(data, (str, os.PathLike, Dataset, Mapping)) or _is_pair(data)
    if not single and not isinstance(data, Iterable):
        raise UsageError(_not_a_data_set("data", data))
    items: list[Any] = [data] if single else list(data)  # type: ignore[arg-type]
    if not items:
        raise UsageError("no data sets given")
    return items, ["data"] if single else [f"data[{i}]" for i in range(len(items))]


def as_datasets(data: DataLike | Sequence[DataLike], graph: Graph) -> list[Dataset]:
    """The data sets in `data`, each checked against `graph` as a data file is (`from_arrays`).

    `data` is one data set or a list of them. One data set is an .npz path (read
    by `load_data`), a `Dataset`, a tuple `(x, y)` of arrays, or a dict with keys
    `x`, `y` and optionally `name` (a loaded `np.load(...)` file works too).
    In-memory data sets are named `data` in reports, or `data[i]` in a list,
    unless a Dataset or dict gives a name. A list of two arrays is not a pair:
    x and y go together in a tuple.

    Raises:
        UsageError: `data` is empty, or an item is none of these.
        BadDataError: a data set does not fit the model.
    """
    return datasets_of(*data_items(data), graph)


def datasets_of(items: Sequence[Any], names: Sequence[str], graph: Graph) -> list[Dataset]:
    """`as_datasets` of the data sets `data_items` found: each loaded or checked against `graph`, an in-memory
    one named as `names` says unless it names itself.

    Raises:
        UsageError: an item is no data set.
        BadDataError: a data set does not fit the model.
    """
    loaded = []
    for item, name in zip(items, names, strict=True):
        if isinstance(item, (str, os.PathLike)):
            loaded.append(load_data(item, graph))
        elif isinstance(item, Dataset):
            loaded.append(from_arrays(item.x, item.y, graph, name=item.name))
        elif isinstance(item, Mapping):
            keys = set(item)
            if not {"x", "y"} <= keys or not keys <= {"x", "y", "name"}:
                raise BadDataError(f"{name}: a data set dict needs keys 'x' and 'y' (and may have 'name'), "
                                   f"has {sorted(map(str, keys))}")
            loaded.append(from_arrays(item["x"], item["y"], graph, name=str(item.get("name", name))))
        elif _is_pair(item):
            loaded.append(from_arrays(item[0], item[1], graph, name=name))
        else:
            raise UsageError(_not_a_data_set(name, item))
    return loaded


def _not_a_data_set(name: str, item: object) -> str:
    """The message for an item of `as_datasets` that is no data set."""
    return (f"{name} is {shown(item)}, not a data set: give an .npz path, a Dataset, a tuple (x, y) or a dict "
            "with 'x' and 'y'")


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




_PASS_THROUGH = frozenset({"Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
"""Ops between a label output and where its labels come from that keep the label values."""


@dataclass(frozen=True)
class ModelLabels:
    """The labels a model's top-1 can take: what the simulator checks data labels against.

    Attributes:
        output: The model output the top-1 comes from.
        labels: Every label it can give, sorted (0 .. classes - 1 for an argmax), or None when the graph does
            not say (a dimension that is not a number, or an integer output leac cannot trace).
        argmax: The top-1 is an argmax, so it is never negative even when `labels` is None.
    """

    output: str
    labels: np.ndarray | None
    argmax: bool


def _per_sample(value: Value) -> int | None:
    """Elements per sample of an output (its dimensions after the batch), None when not all are known."""
    if value.shape is None or len(value.shape) < 1 or not all(isinstance(d, int) for d in value.shape[1:]):
        return None
    return math.prod(value.shape[1:])  # type: ignore[arg-type]


def _traced_labels(value: Value) -> tuple[np.ndarray | None, bool]:
    """The labels an integer output can hold, traced back through value-preserving ops to an ArgMax
    (labels 0 .. C-1, C the size of the reduced axis) or to a constant table it indexes (skl2onnx's
    ArrayFeatureExtractor of the classes, or Gather): (labels or None, whether it is an argmax)."""
    node = value.producer
    while node is not None and node.domain == "" and node.op_type in _PASS_THROUGH:
        node = node.input(0).producer  # type: ignore[union-attr]
    if node is None:
        return None, False
    if node.op_type == "ArgMax" and node.domain == "":
        source = node.input(0)
        shape = source.shape if source is not None else None
        axis = int(node.attrs.get("axis", 0))
        classes = shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None
        return (np.arange(classes, dtype=np.int64) if isinstance(classes, int) else None), True
    if node.op_type in ("ArrayFeatureExtractor", "Gather"):
        table = node.input(0)
        if table is not None and table.const is not None and table.const.dtype.kind in "iu":
            return np.unique(table.const.astype(np.int64)), False
    return None, False


def model_labels(graph: Graph, output: str | None = None) -> ModelLabels:
    """Which labels the top-1 of `graph` can give, chosen as `top1` chooses at run time.

    The top-1 output is `output`, else the first integer output with one value
    per sample, else the first float output. Of a float output the top-1 is the
    argmax over its values per sample, so its classes are 0 .. C - 1 with C
    those values' count. An integer output's labels are traced back to the
    ArgMax or constant class table that produces them (`_traced_labels`).
    `labels` is None when the graph does not tell: then only an argmax's
    labels are checked, for being non-negative.

    Raises:
        UsageError: the model has no output named `output`.
    """
    outputs = {value.name: value for value in graph.outputs}
    if output is not None:
        if output not in outputs:
            raise UsageError(f"the model has no output {output!r}; it has {', '.join(outputs)}")
        chosen = outputs[output]
    else:
        integers = [v for v in graph.outputs if v.dtype.kind in "iu"]
        if any(_per_sample(v) is None for v in integers):  # top1 may or may not take it at run time
            return ModelLabels(integers[0].name, None, False)
        labelled = [v for v in integers if _per_sample(v) == 1]
        floats = [v for v in graph.outputs if v.dtype.kind == "f"]
        if not labelled and not floats:
            return ModelLabels("", None, False)  # top1 refuses the model when it runs
        chosen = (labelled or floats)[0]
    if chosen.dtype.kind == "f":
        count = _per_sample(chosen)
        return ModelLabels(chosen.name, None if count is None else np.arange(count, dtype=np.int64), True)
    if chosen.dtype.kind in "iu":
        labels, argmax = _traced_labels(chosen)
        return ModelLabels(chosen.name, labels, argmax)
    return ModelLabels(chosen.name, None, False)


def _span(labels: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in labels[:10])
    return f"{shown}, ... ({len(labels)} labels)" if len(labels) > 10 else shown


def check_labels(data: Dataset, model: ModelLabels) -> None:
    """Refuse a data set whose labels the model can never predict: its accuracy would be meaningless.

    Raises:
        BadDataError: a label outside `model.labels`, or a negative label for an argmax top-1; the
            message gives the labels found and the classes the model outputs.
    """
    y = data.y
    if len(y) == 0:
        return
    low, high = int(y.min()), int(y.max())
    found = f"{data.name}: y holds labels {low} to {high}" if low != high else f"{data.name}: y holds label {low}"
    if model.labels is not None:
        outside = ~np.isin(y, model.labels)
        if not outside.any():
            return
        labels = model.labels
        if model.argmax or np.array_equal(labels, np.arange(len(labels))):
            classes = f"{len(labels)} classes (labels 0 to {len(labels) - 1})"
        else:
            classes = f"only the labels {_span(labels)}"
        raise BadDataError(f"{found}, but the model's output {model.output!r} gives {classes}: "
                           f"{int(outside.sum())} of {len(y)} samples have a label it never predicts")
    if model.argmax and low < 0:
        raise BadDataError(f"{found}, but the model's top-1 (the argmax of output {model.output!r}) is never "
                           f"negative: {int((y < 0).sum())} of {len(y)} samples have a label it never predicts")
    if model.output:
        log.warning("the model's graph does not say which labels output %r gives; the labels of %s are %s",
                    model.output, data.name, "checked for being non-negative only" if model.argmax else "not checked")
