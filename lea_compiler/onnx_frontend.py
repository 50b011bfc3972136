"""ONNX front end: turns a model file into leac's Graph IR, or says clearly why it cannot.

Steps: read the file (external data resolved relative to the model's folder),
run the ONNX checker, convert models older than opset 13 to opset 13 with
onnx's version converter (leac's op semantics are those of opset 13 and
later), run ONNX shape inference (strict, with data propagation so Reshape
targets computed in the graph still get shapes), refuse every unsupported op
at once, then build the IR and verify it. Nothing after this module looks at
protobufs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.external_data_helper
import onnx.numpy_helper
import onnx.shape_inference
import onnx.version_converter

from lea_compiler.arguments import check_path
from lea_compiler.errors import InvalidModelError
from lea_compiler.fileio import MAX_MODEL_BYTES
from lea_compiler.ir import Graph, Value
from lea_compiler.op_rules import range_count
from lea_compiler.ops import LEAC_DOMAIN, ML_DOMAIN, OPS, infer_node, onnx_dtype, supported_ops_text
from lea_compiler.shapes import Dim, Shape, ShapeError

log = logging.getLogger(__name__)

MIN_OPSET = 13
"""Models below this ai.onnx opset are converted up to it."""

MAX_TENSOR_ELEMENTS = 2**24
"""Most elements any tensor of a model may hold per sample (symbolic batch dimensions count as 1): 16.7M,
64 MiB as float32, five times VGG-16's largest activation at 224 x 224 (3.2M). Bigger intermediates come
from broken or hostile models (pads of 20,000, doubling Concats) and would exhaust memory in simulation."""

_DEFAULT_DOMAINS = ("", "ai.onnx")

ZIPMAP_ADVICE = (
    "ZipMap (skl2onnx's default classifier output: a {class: probability} dictionary per sample) is not a "
    "tensor; re-export without it: convert_sklearn(..., options={id(clf): {'zipmap': False}}) with clf the "
    "classifier (in a Pipeline, its last step), or options={MLPClassifier: {'zipmap': False}} with the "
    "classifier's type. "
)
"""Said when a model has a ZipMap node, before the list of supported ops."""


def load_model(path: str | os.PathLike[str]) -> Graph:
    """Read an ONNX file and return its verified IR.

    Raises:
        UsageError: `path` is not a file path (str or os.PathLike).
        InvalidModelError: the file is missing, not ONNX, fails the checker or
            shape inference, or uses ops leac does not support (all listed).
    """
    check_path(path, "path")
    model, _ = read_model(path)
    return import_model(model, source=str(path))


def read_model(path: str | os.PathLike[str]) -> tuple[onnx.ModelProto, bytes]:
    """Read an ONNX file once: the model with its external data loaded (confined to the model's folder), and
    self-contained bytes of it to embed in a Program: the file's own bytes, or, when it names external data,
    the model serialized with that data inline (so no later reader ever resolves a path).

    Raises:
        InvalidModelError: the file is missing, empty, too big, not ONNX, or its external data is bad.
    """
    source = Path(path)
    if not source.exists():
        raise InvalidModelError(f"{source}: no such file")
    if not source.is_file():
        raise InvalidModelError(f"{source}: not a file")
    size = source.stat().st_size
    if size == 0:
        raise InvalidModelError(f"{source}: the file is empty, not an ONNX model")
    if size > MAX_MODEL_BYTES:
        raise InvalidModelError(f"{source}: {size} bytes is larger than ONNX's 2 GiB protobuf limit")
    data = source.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # onnx raises DecodeError, ValueError... for a bad file
        raise InvalidModelError(f"{source}: not a readable ONNX model ({_first_line(exc)})") from None
    if names_external_data(model):
        _load_external_data(model, source)
        data = model.SerializeToString()
    return model, data


def names_external_data(model: onnx.ModelProto) -> bool:
    """Whether any tensor of the model (initializers, node attributes, subgraphs) keeps its data in another file."""
    return any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in _all_tensors(model.graph))


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers, and tensor attributes of nodes and of their subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _load_external_data(model: onnx.ModelProto, source: Path) -> None:
    """Check every external tensor's file, then load it: the file must lie inside the model's folder
    (no absolute path, no `..`, no symlink out of it), exist, and hold the bytes the tensor declares.

    Raises:
        InvalidModelError: naming the tensor and its location, before anything is read.
    """
    folder = source.resolve().parent
    problems = []
    total = source.stat().st_size
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"tensor {tensor.name!r}: external data {location!r}"
        if not location:
            problems.append(f"tensor {tensor.name!r}: external data without a location")
            continue
        if "\x00" in location:
            problems.append(f"tensor {tensor.name!r}: external data location {location!r} holds a NUL byte")
            continue
        if Path(location).is_absolute() or location.startswith(("/", "\\")) or ":" in location:
            problems.append(f"{where} is an absolute path; it must be relative to the model's folder")
            continue
        if ".." in Path(location.replace("\\", "/")).parts:
            problems.append(f"{where} leaves the model's folder")
            continue
        path = Path(os.path.realpath(folder / location))  # Path.resolve raises on a symlink loop
        if not path.is_relative_to(folder):
            problems.append(f"{where} leaves the model's folder (through a link)")
            continue
        if not path.is_file():
            problems.append(f"{where}: no such file next to the model")
            continue
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else None
        except ValueError:
            problems.append(f"{where}: offset or length is not an integer")
            continue
        size = path.stat().st_size
        if offset < 0 or (length is not None and length < 0):
            problems.append(f"{where}: negative offset or length")
        elif offset + (length or 0) > size or offset > size:
            problems.append(f"{where}: declares bytes {offset}..{offset + (length or 0)} but the file has {size}")
        else:
            total += size - offset if length is None else length
    if total > MAX_MODEL_BYTES:
        problems.append(f"the model and its external data hold {total} bytes, more than leac reads for a model "
                        f"({MAX_MODEL_BYTES}, ONNX's 2 GiB protobuf limit: a Program embeds the model whole)")
    if problems:
        raise InvalidModelError(f"{source}: " + "; ".join(problems))
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as exc:
        raise InvalidModelError(f"{source}: cannot read its external data ({_first_line(exc)})") from None


def _undecodable_strings(message: Any, path: str = "model") -> Iterator[str]:
    """Paths of string fields that hold bytes: ONNX's proto2 strings come back as bytes when not UTF-8."""
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if field.type == field.TYPE_STRING:
            if any(isinstance(v, bytes) for v in (value if repeated else [value])):
                yield where
        elif field.type == field.TYPE_MESSAGE:
            for index, item in enumerate(value if repeated else [value]):
                yield from _undecodable_strings(item, f"{where}[{index}]" if repeated else where)


def import_model(model: onnx.ModelProto, source: str = "<model>") -> Graph:
    """Convert an in-memory ONNX model to the IR (see `load_model`)."""
    broken = list(_undecodable_strings(model))
    if broken:
        raise InvalidModelError(f"{source}: not valid UTF-8 text in {', '.join(broken[:5])}"
                                + (f" and {len(broken) - 5} more fields" if len(broken) > 5 else ""))
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, or C++ errors surfacing as others
        raise InvalidModelError(f"{source}: the ONNX checker refuses the model: {_first_line(exc)}") from None
    if not model.graph.output:
        raise InvalidModelError(f"{source}: the graph has no outputs, so there is nothing to compute")
    model = _convert_opset(model, source)
    _refuse_unsupported(model, source)
    _refuse_huge_ranges(model, source)
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise InvalidModelError(f"{source}: ONNX shape inference fails: {_first_line(exc)}") from None
    _refuse_huge_values(model, source)
    graph = _build(model, source)
    problems = graph.problems()
    if problems:
        raise InvalidModelError(f"{source}: the model is inconsistent:\n  " + "\n  ".join(problems))
    return graph


def _refuse_huge_values(model: onnx.ModelProto, source: str) -> None:
    """Refuse a model whose inferred tensors exceed `MAX_TENSOR_ELEMENTS` per sample (symbolic and unknown
    dimensions count as 1): a 1 KB model with pads of 20,000 or 30 doubling Concats would otherwise be
    compiled and then exhaust memory in the simulator and the reference."""
    g = model.graph
    for info in [*g.input, *g.value_info, *g.output]:
        dims = info.type.tensor_type.shape.dim if info.type.HasField("tensor_type") else []
        elements = math.prod(d.dim_value for d in dims if d.HasField("dim_value") and d.dim_value > 0)
        if elements > MAX_TENSOR_ELEMENTS:
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            raise InvalidModelError(
                f"{source}: value {info.name!r} has shape {shape}: {elements} elements per sample, more than "
                f"leac handles ({MAX_TENSOR_ELEMENTS}); check the model's pads, kernel and concatenations")


def _refuse_huge_ranges(model: onnx.ModelProto, source: str) -> None:
    """Refuse a Range of constant inputs with more than `MAX_TENSOR_ELEMENTS` elements (or none finite) before
    ONNX's shape inference, whose data propagation would build it: Range(0, 1e9, 1) is a 200-byte model."""
    constants = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Range" or node.domain not in _DEFAULT_DOMAINS or len(node.input) != 3:
            continue
        if not all(name in constants for name in node.input):
            continue
        where = f"node '{node.name or f'#{index}'}' (Range)"
        try:
            start, limit, delta = (_tensor(constants[name], where).reshape(-1)[0] for name in node.input)
            count = range_count(start, limit, delta)
        except (ShapeError, IndexError) as exc:
            raise InvalidModelError(f"{source}: {where}: {exc or 'an input is empty'}") from None
        if count > MAX_TENSOR_ELEMENTS:
            raise InvalidModelError(f"{source}: {where} makes {count} elements, more than leac handles "
                                    f"({MAX_TENSOR_ELEMENTS})")


def _first_line(exc: BaseException) -> str:
    """The exception's message on one line (the ONNX checker adds "==> Context: ..." lines), at most 400 chars."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _default_opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return int(entry.version)
    return None


def _convert_opset(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    version = _default_opset(model)
    newest = onnx.defs.onnx_opset_version()
    if version is None:
        return model
    if version > newest:
        raise InvalidModelError(
            f"{source}: opset {version} is newer than the installed onnx package knows ({newest}); "
            "upgrade onnx or export with an older opset"
        )
    if version >= MIN_OPSET:
        return model
    try:
        converted = onnx.version_converter.convert_version(model, MIN_OPSET)
        _list_new_initializers(converted)
        onnx.checker.check_model(converted)
    except Exception as exc:
        raise InvalidModelError(
            f"{source}: opset {version} is older than {MIN_OPSET} and onnx's version converter "
            f"cannot convert it ({_first_line(exc)}); re-export the model with opset >= {MIN_OPSET}"
        ) from None
    log.info("%s: converted from opset %d to %d", source, version, MIN_OPSET)
    return converted


def _list_new_initializers(model: onnx.ModelProto) -> None:
    """IR version 3 lists every initializer among the graph inputs; onnx's version converter adds initializers
    (Pad's pads, Reshape's shape...) without listing them, which the checker then refuses. List them."""
    if model.ir_version >= 4:
        return
    listed = {value.name for value in model.graph.input}
    for init in model.graph.initializer:
        if init.name not in listed:
            model.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, init.dims))


def _refuse_unsupported(model: onnx.ModelProto, source: str) -> None:
    bad: list[str] = []
    for index, node in enumerate(model.graph.node):
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        if (domain, node.op_type) not in OPS or domain == LEAC_DOMAIN:
            op = f"{domain}.{node.op_type}" if domain else node.op_type
            bad.append(f"node '{node.name or f'#{index}'}' ({op})")
    if model.graph.sparse_initializer:
        bad.append("sparse initializers")
    if bad:
        zipmap = any(n.op_type == "ZipMap" and n.domain == ML_DOMAIN for n in model.graph.node)
        raise InvalidModelError(
            f"{source}: unsupported: {', '.join(bad)}. {ZIPMAP_ADVICE if zipmap else ''}"
            f"leac supports: {supported_ops_text()}"
        )


def _shape_of(type_proto: onnx.TypeProto) -> Shape:
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def _attribute(attr: onnx.AttributeProto, where: str) -> Any:
    kind = attr.type
    if kind in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        raise InvalidModelError(f"{where}: attribute {attr.name} holds a subgraph, which leac does not support")
    if kind in (onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS):
        raise InvalidModelError(f"{where}: attribute {attr.name} holds a sparse tensor, which leac does not support")
    if kind == onnx.AttributeProto.TENSOR:
        return _tensor(attr.t, where)
    if kind == onnx.AttributeProto.TENSORS:
        return [_tensor(t, where) for t in attr.tensors]
    value = onnx.helper.get_attribute_value(attr)
    if kind == onnx.AttributeProto.STRING:
        return value.decode("utf-8", errors="replace")
    if kind == onnx.AttributeProto.STRINGS:
        return [v.decode("utf-8", errors="replace") for v in value]
    if kind == onnx.AttributeProto.FLOAT:
        return float(value)
    if kind == onnx.AttributeProto.INT:
        return int(value)
    if kind in (onnx.AttributeProto.FLOATS, onnx.AttributeProto.INTS):
        return list(value)
    raise InvalidModelError(f"{where}: attribute {attr.name} has a type leac does not support")


def _tensor(tensor: onnx.TensorProto, where: str) -> np.ndarray[Any, Any]:
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except Exception as exc:
        name = tensor.name or "(unnamed)"
        raise InvalidModelError(f"{where}: tensor {name} is unreadable: {_first_line(exc)}") from None
    if array.dtype.kind in "SUO":  # string tensors: leac keeps them as object arrays of str
        decoded = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in array.ravel()]
        array = np.array(decoded, dtype=object).reshape(array.shape)
    return array


def _build(model: onnx.ModelProto, source: str) -> Graph:
    g = model.graph
    opset = {("" if e.domain in _DEFAULT_DOMAINS else e.domain): int(e.version) for e in model.opset_import}
    graph = Graph(name=g.name or Path(source).stem, opset=opset)
    if model.producer_name:
        graph.metadata["producer"] = f"{model.producer_name} {model.producer_version}".strip()
    graph.metadata["source"] = source

    values: dict[str, Value] = {}
    types: dict[str, onnx.TypeProto] = {}
    for info in [*g.input, *g.value_info, *g.output]:
        types[info.name] = info.type

    for init in g.initializer:
        values[init.name] = graph.add_initializer(init.name, _tensor(init, f"initializer {init.name}"))
    for inp in g.input:
        if inp.name in values:
            continue  # IR < 4 lists initializers as inputs too; they are constants here
        if not inp.type.HasField("tensor_type"):
            raise InvalidModelError(
                f"{source}: graph input {inp.name} is not a tensor (sequences and maps are not supported)"
            )
        values[inp.name] = graph.add_input(inp.name, onnx_dtype(inp.type.tensor_type.elem_type), _shape_of(inp.type))

    for index, proto in enumerate(g.node):
        domain = "" if proto.domain in _DEFAULT_DOMAINS else proto.domain
        where = f"node '{proto.name or f'#{index}'}' ({proto.op_type})"
        attrs = {a.name: _attribute(a, where) for a in proto.attribute}
        inputs = [values[name] if name else None for name in proto.input]
        while inputs and inputs[-1] is None:
            inputs.pop()
        outputs: list[tuple[str, np.dtype[Any], Shape]] = []
        for name in proto.output:
            if not name:
                raise InvalidModelError(f"{source}: {where} has an omitted output, which leac does not support")
            t = types.get(name)
            if t is not None and t.HasField("tensor_type") and t.tensor_type.elem_type:
                outputs.append((name, onnx_dtype(t.tensor_type.elem_type), _shape_of(t)))
            else:
                outputs.append((name, np.dtype(np.float32), None))
        node = graph.add_node(
            proto.op_type,
            inputs,
            outputs,
            name=proto.name or f"{proto.op_type.lower()}_{index}",
            domain=domain,
            attrs=attrs,
        )
        problems = infer_node(node, check=True) or infer_node(node, check=False)
        if problems:
            raise InvalidModelError(f"{source}: " + "; ".join(problems))
        for out in node.outputs:
            values[out.name] = out

    for out in g.output:
        if out.name not in values:
            raise InvalidModelError(f"{source}: graph output {out.name} is never computed")
        graph.outputs.append(values[out.name])
    return graph
