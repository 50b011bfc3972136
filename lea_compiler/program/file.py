"""The `.leac` file: how a Program is written and read (`Program.save` / `Program.load` call these).

File format (`.leac`, version 2): a zip archive with `program.json` (all
structure, arrays referenced by name), `chip.json` (the chip file),
`model.onnx` (the source model, when compiled from a file) and one
`arrays/NAME.npy` per array. The graph's constants and each layer's scale
(and compensation gain and offset) are one array each; a layer's per-block
and per-copy-half matrices are packed, so that a Program has a fixed number
of arrays per layer however many copy halves it has (a 25 x 25-array chip
gives thousands of them, and reading a zip member costs far more than its
bytes):

- `layerI.levels`: every copy half's levels (integers, -1 for a skipped
  stuck device), one after the other in the order `program.json` lists
  them (block by block, copy by copy, G+ then G-), each row by row: a flat
  vector of 2 x alpha x rows x cols values per block;
- `layerI.targets`: every block's `target_pos` then `target_neg`, row by
  row, block after block;
- `layerI.selection`: every block's (alpha, cols) selection mask, row by
  row, block after block;
- `layerI.programmed_uS`, in an as-programmed Program (`leac program`) only:
  what each device of each copy half holds (float64), laid out as `levels`.

Each piece's place and shape follow from the blocks' `rows` and `cols`
ranges and alpha in `program.json` (a half is its block's shape), so the
file stores no offsets; a packed array that is shorter or longer than the
layer's blocks need is refused before it is read. An as-programmed Program
also has `extra.programming` (docs/programming.md). Entries are written in a
fixed order with fixed timestamps, so the same inputs and seed give a
byte-identical file; `program.json` records the model's size
(`model_bytes`).

Version 1 (leac before the packed arrays) had one array per copy half
(`layerI.bB.cC.pos`, `.neg`, each with `.programmed` once programmed) and per
block (`layerI.bB.target_pos`, `.target_neg`, `.selection`), named by the
halves and blocks in `program.json`; leac still reads it, and writes it
when asked (`program_bytes(program, version=1)`: for an older leac).

Loading never unpickles, refuses an archive whose entries declare more than
`MAX_PROGRAM_BYTES` before reading them, reads every member with a bound
derived from what the Program declares and checks every array reference and
`.npy` header before allocating (lea_compiler/program/archive.py), and
refuses NaN and infinity in a crossbar layer's numbers; `Program.load` then
checks the whole Program against itself, its chip and its graph
(lea_compiler/program/checks.py).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from lea_compiler.chip import MAX_FILE_BYTES as MAX_CHIP_FILE_BYTES
from lea_compiler.chip import chip_to_text, parse_chip_text
from lea_compiler.errors import CompileError, InvalidInputError, IRVerificationError, UsageError
from lea_compiler.fileio import open_input
from lea_compiler.geometry import Region
from lea_compiler.ir import Graph, Value
from lea_compiler.program.archive import (
    MAX_PROGRAM_JSON_BYTES,
    array_specs,
    check_graph_arrays,
    member_sha256,
    model_bound,
    read_array,
    read_member,
)
from lea_compiler.program.checks import listing
from lea_compiler.program.types import BlockCopy, CopyHalf, Layer, LevelsPack, ProgramBlock

if TYPE_CHECKING:  # core.py imports this module: the Program type is for the annotations only
    from lea_compiler.program.core import Program

FORMAT = "leac-program"
VERSION = 2
"""The version leac writes."""
VERSIONS = (1, 2)
"""The versions leac reads."""
MAX_PROGRAM_BYTES = 4 * 2**30
"""Largest Program file leac reads, and most bytes its entries may hold once uncompressed."""

_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, KeyError, ValueError,
                   UnicodeDecodeError, NotImplementedError, RuntimeError)
"""What zipfile, zlib and json raise for a damaged archive (NotImplementedError: an unknown compression
method; RuntimeError: an entry flagged as encrypted)."""

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def program_bytes(program: Program, *, version: int = VERSION) -> bytes:
    """The bytes of `program`'s `.leac` file (byte-identical for identical Programs), of format `version`
    (`VERSIONS`; version 1 for a leac that predates version 2).

    Raises:
        UsageError: a version leac does not write.
        CompileError: a layer whose copy halves do not fit the packed arrays of version 2 (a half not of its
            block's shape; some halves programmed and others not): `program_problems` refuses such a Program.
    """
    if version not in VERSIONS:
        raise UsageError(f"leac writes Program versions {VERSIONS}, not {version!r}")
    arrays: dict[str, np.ndarray] = {}
    header = {
        "format": FORMAT,
        "version": version,
        "leac_version": program.leac_version,
        "model": program.model,
        "chip": {"name": program.chip.name, "fingerprint": program.chip_fingerprint, "file": program.chip.file_name},
        "options": program.options,
        "placement": program.placement,
        "extra": program.extra,
        "graph": _graph_to_json(program.graph, arrays),
        "layers": [_layer_to_json(i, layer, arrays, version) for i, layer in enumerate(program.layers)],
        # the bound leac reads model.onnx with (archive.py); absent in Programs before issue 13
        "model_bytes": None if program.source_model is None else len(program.source_model),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _write_entry(archive, "program.json", json.dumps(header, indent=1, sort_keys=False).encode())
        _write_entry(archive, "chip.json", chip_to_text(program.chip).encode())
        if program.source_model is not None:
            _write_entry(archive, "model.onnx", program.source_model)
        for name, array in arrays.items():
            data = io.BytesIO()
            np.save(data, np.ascontiguousarray(array), allow_pickle=False)
            _write_entry(archive, f"arrays/{name}.npy", data.getvalue())
    return buffer.getvalue()


def read_program_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fields of the Program in the `.leac` file at `path` (see `read_program`), read in place: the file
    is never held whole."""
    source = os.fspath(path)
    with open_input(source, MAX_PROGRAM_BYTES, "Program") as handle:
        return read_program(handle, source)


def read_program(file: IO[bytes], source: str) -> dict[str, Any]:
    """The fields of the Program (keyword arguments of `Program`) in a seekable `.leac` file object. Every
    member is read with a bound derived from what the Program declares, and every array reference is
    checked before any array is read (archive.py); whether the Program is consistent is the caller's check.

    Raises:
        InvalidInputError: not a leac Program, a newer version, or damaged.
    """
    try:
        archive = zipfile.ZipFile(file)
        declared = sum(info.file_size for info in archive.infolist())
        if declared > MAX_PROGRAM_BYTES:
            raise InvalidInputError(
                f"{source}: its entries declare {declared} bytes uncompressed, more than leac reads "
                f"({MAX_PROGRAM_BYTES})")
        header = json.loads(read_member(archive, "program.json", MAX_PROGRAM_JSON_BYTES, source))
    except _ARCHIVE_ERRORS as exc:
        raise InvalidInputError(f"{source}: not a leac Program file ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidInputError(f"{source}: not a leac Program file (format is not {FORMAT!r})")
    version = header.get("version")
    if type(version) is not int or version not in VERSIONS:
        raise InvalidInputError(
            f"{source}: Program version {version!r}; this leac reads versions "
            f"{', '.join(map(str, VERSIONS))}")
    try:
        chip_text = read_member(archive, "chip.json", MAX_CHIP_FILE_BYTES, source).decode("utf-8")
        source_model = None
        if "model.onnx" in archive.namelist():
            bound = model_bound(header, source)
            model_info = header.get("model")
            digest = model_info.get("sha256") if isinstance(model_info, dict) else None
            if digest is not None and member_sha256(archive, "model.onnx", bound, source) != digest:
                raise InvalidInputError(f"{source}: the embedded model.onnx does not match its sha256")
            source_model = read_member(archive, "model.onnx", bound, source)
            if header.get("model_bytes") is not None and len(source_model) != bound:
                raise InvalidInputError(f"{source}: damaged Program: model.onnx has {len(source_model)} bytes, "
                                        f"not the {bound} it records")
    except _ARCHIVE_ERRORS as exc:
        raise InvalidInputError(f"{source}: not a leac Program file ({type(exc).__name__}: {exc})") from None
    if source_model is not None:
        _check_embedded_model(source_model, source)

    try:
        chip = parse_chip_text(chip_text, f"{source}:chip.json")
        if chip.fingerprint() != header["chip"]["fingerprint"]:
            raise InvalidInputError(f"{source}: the embedded chip does not match its fingerprint")
        file_name = header["chip"].get("file")  # the chip file compiled for (absent before issue 12)
        chip = chip.with_file_name(file_name if isinstance(file_name, str) else None)
        specs = array_specs(header, chip, set(archive.namelist()), source, version=version)
        check_graph_arrays(archive, specs, header, source)

        def array(name: str) -> np.ndarray:
            return read_array(archive, name, specs[name], source)

        graph = _graph_from_json(header["graph"], array)
        layers = tuple(_layer_from_json(item, array, version) for item in header["layers"])
        return {
            "graph": graph,
            "layers": layers,
            "chip": chip,
            "model": header["model"],
            "options": header["options"],
            "placement": header["placement"],
            "leac_version": header["leac_version"],
            "extra": header.get("extra", {}),
            "source_model": source_model,
        }
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise InvalidInputError(f"{source}: damaged Program ({type(exc).__name__}: {exc})") from None
    except IRVerificationError as exc:
        raise InvalidInputError(f"{source}: damaged Program: its graph is inconsistent:\n"
                                + listing(exc.problems)) from None


def embedded_model_digest(path: str | os.PathLike[str]) -> str | None:
    """`Program.model_digest` of a .leac file, reading only its model entry (None if it has none or the
    file cannot be read): to group Programs by model before loading them, which checks them in full."""
    try:
        with zipfile.ZipFile(path) as archive:
            header = json.loads(read_member(archive, "program.json", MAX_PROGRAM_JSON_BYTES, os.fspath(path)))
            bound = model_bound(header, os.fspath(path)) if isinstance(header, dict) else 0
            return member_sha256(archive, "model.onnx", bound, os.fspath(path))
    except (*_ARCHIVE_ERRORS, InvalidInputError):
        return None


# ------------------------------------------------------------- serialization
def _check_embedded_model(data: bytes, source: str) -> None:
    """An embedded model must parse and hold all its data: a Program is self-contained, and a model naming
    external data would make onnxruntime read files from wherever the Program is simulated."""
    import onnx  # here, not at the top: reading a Program's arrays needs no ONNX

    from lea_compiler.onnx_frontend import names_external_data

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # DecodeError and friends
        raise InvalidInputError(f"{source}: the embedded model.onnx is not a readable ONNX model ({exc})") from None
    if names_external_data(model):
        raise InvalidInputError(f"{source}: the embedded model.onnx names external data files; a Program's model "
                                "must hold all its data (leac never reads files a Program points at)")


def _write_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _put(arrays: dict[str, np.ndarray], name: str, array: np.ndarray) -> str:
    key = name
    if key in arrays:
        raise ValueError(f"array name {key} used twice")
    arrays[key] = np.asarray(array)
    return key


def _dtype_name(dtype: np.dtype[Any]) -> str:
    return "string" if dtype == np.dtype(object) else str(dtype)


def _dtype_from(name: str) -> np.dtype[Any]:
    return np.dtype(object) if name == "string" else np.dtype(name)


def _tensor_to_json(array: np.ndarray, arrays: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    if array.dtype == np.dtype(object):
        return {"dtype": "string", "shape": list(array.shape), "strings": [str(v) for v in array.ravel()]}
    return {"array": _put(arrays, name, array)}


def _tensor_from_json(item: dict[str, Any], array: Any) -> np.ndarray:
    if "strings" in item:
        return np.array(item["strings"], dtype=object).reshape(item["shape"])
    return array(item["array"])


def _value_json(value: Value) -> dict[str, Any]:
    return {"name": value.name, "dtype": _dtype_name(value.dtype),
            "shape": None if value.shape is None else list(value.shape)}


def _graph_to_json(graph: Graph, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    nodes = []
    for i, node in enumerate(graph.nodes):
        attrs = {}
        for key in sorted(node.attrs):
            value = node.attrs[key]
            if isinstance(value, np.ndarray):
                attrs[key] = {"tensor": _tensor_to_json(value, arrays, f"graph.node{i}.{key}")}
            elif isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value):
                raise CompileError(f"{node.describe()}: attribute {key} holds a list of tensors; cannot save it")
            else:
                attrs[key] = value
        nodes.append({
            "op": node.op_type, "domain": node.domain, "name": node.name,
            "inputs": [None if v is None else v.name for v in node.inputs],
            "outputs": [_value_json(v) for v in node.outputs], "attrs": attrs,
        })
    return {
        "name": graph.name,
        "opset": graph.opset,
        "metadata": graph.metadata,
        "inputs": [_value_json(v) for v in graph.inputs],
        "initializers": [
            {"name": v.name, **_tensor_to_json(v.const, arrays, f"graph.init{i}")}  # type: ignore[arg-type]
            for i, v in enumerate(graph.initializers.values())
        ],
        "nodes": nodes,
        "outputs": [v.name for v in graph.outputs],
    }


def _graph_from_json(item: dict[str, Any], array: Any) -> Graph:
    graph = Graph(item["name"], opset={k: int(v) for k, v in item["opset"].items()})
    graph.metadata.update(item["metadata"])
    values: dict[str, Value] = {}

    def shape(raw: list[Any] | None) -> tuple[Any, ...] | None:
        return None if raw is None else tuple(raw)

    for v in item["inputs"]:
        values[v["name"]] = graph.add_input(v["name"], _dtype_from(v["dtype"]), shape(v["shape"]))
    for v in item["initializers"]:
        values[v["name"]] = graph.add_initializer(v["name"], _tensor_from_json(v, array))
    for n in item["nodes"]:
        attrs = {k: (_tensor_from_json(a["tensor"], array) if isinstance(a, dict) and "tensor" in a else a)
                 for k, a in n["attrs"].items()}
        node = graph.add_node(
            n["op"], [None if name is None else values[name] for name in n["inputs"]],
            [(o["name"], _dtype_from(o["dtype"]), shape(o["shape"])) for o in n["outputs"]],
            name=n["name"], domain=n["domain"], attrs=attrs,
        )
        for out in node.outputs:
            values[out.name] = out
    graph.outputs = [values[name] for name in item["outputs"]]
    graph.verify()
    return graph


def _region_json(region: Region) -> list[int]:
    return [region.array, region.row, region.col]


def _layer_to_json(index: int, layer: Layer, arrays: dict[str, np.ndarray], version: int) -> dict[str, Any]:
    prefix = f"layer{index}"
    blocks = []
    for b in layer.blocks:
        bp = f"{prefix}.b{b.index}"
        copies = []
        for c in b.copies:
            copies.append({
                "copy": c.copy,
                "pos": _half_json(arrays, f"{bp}.c{c.copy}.pos", c.pos, version),
                "neg": _half_json(arrays, f"{bp}.c{c.copy}.neg", c.neg, version),
            })
        blocks.append({
            "index": b.index, "row_block": b.row_block, "col_block": b.col_block,
            "rows": [b.row_start, b.row_stop], "cols": [b.col_start, b.col_stop],
            **({} if version > 1 else {
                "target_pos": _put(arrays, f"{bp}.target_pos", b.target_pos),
                "target_neg": _put(arrays, f"{bp}.target_neg", b.target_neg),
                "selection": _put(arrays, f"{bp}.selection", b.selection)}),
            "adc_full_scale_uA": b.adc_full_scale_uA,
            "copies": copies,
        })
    return {
        "name": layer.name, "rows": layer.rows, "cols": layer.cols, "bias_row": layer.bias_row,
        "encoding": layer.encoding, "levels_uS": list(layer.levels_uS),
        "scale": _put(arrays, f"{prefix}.scale", layer.scale), "alpha": layer.alpha, "beta": layer.beta,
        "quantization": layer.quantization, "mapping_error_uS": layer.mapping_error_uS,
        "effective_error_uS": layer.effective_error_uS, "input_full_scale": layer.input_full_scale,
        **({} if layer.column_gain is None or layer.column_offset is None else {
            "column_gain": _put(arrays, f"{prefix}.column_gain", layer.column_gain),
            "column_offset": _put(arrays, f"{prefix}.column_offset", layer.column_offset)}),
        **({} if version == 1 else _packs_to_json(prefix, layer, arrays)),
        "blocks": blocks,
    }


def _packs_to_json(prefix: str, layer: Layer, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """A version-2 layer's packed arrays (the module docstring): their references, the arrays put in `arrays`.

    Raises:
        CompileError: a copy half is not of its block's shape, or some halves are programmed and others not.
    """
    halves = [(b, half) for b in layer.blocks for c in b.copies for half in (c.pos, c.neg)]
    if any(np.shape(half.levels) != b.shape for b, half in halves):
        raise CompileError(f"layer {layer.name!r}: a copy half's levels are not of its block's shape; cannot save "
                           "the Program")
    packs = {
        "levels": _put(arrays, f"{prefix}.levels", _packed([half.levels for _, half in halves])),
        "targets": _put(arrays, f"{prefix}.targets",
                        _packed([t for b in layer.blocks for t in (b.target_pos, b.target_neg)])),
        "selection": _put(arrays, f"{prefix}.selection", _packed([b.selection for b in layer.blocks])),
    }
    programmed = [half.programmed_uS for _, half in halves]
    if any(p is not None for p in programmed):
        if any(p is None or np.shape(p) != b.shape for p, (b, _) in zip(programmed, halves, strict=True)):
            raise CompileError(f"layer {layer.name!r}: some copy halves have programmed conductances of their "
                               "block's shape and others not; cannot save the Program")
        packs["programmed_uS"] = _put(arrays, f"{prefix}.programmed_uS", _packed(programmed))
    return packs


def _packed(parts: list[Any]) -> np.ndarray:
    """Arrays laid end to end, each row by row (C order), as one flat vector."""
    return np.concatenate([np.asarray(part).ravel() for part in parts])


class _Unpacker:
    """The arrays of a version-2 packed array, taken in the order they were laid end to end."""

    def __init__(self, pack: np.ndarray, name: str) -> None:
        self.pack, self.name, self.at = pack, name, 0

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next array of `shape`: a view of the pack.

        Raises:
            ValueError: the pack has fewer values left."""
        size = math.prod(shape)
        if self.at + size > self.pack.size:
            raise ValueError(f"array {self.name} ends before its {' x '.join(map(str, shape))} part at {self.at}")
        part = self.pack[self.at:self.at + size].reshape(shape)
        self.at += size
        return part

    def finish(self) -> None:
        """Refuse a pack with values no part took (`array_specs` sized it; this is the same count again).

        Raises:
            ValueError: values are left over."""
        if self.at != self.pack.size:
            raise ValueError(f"array {self.name} holds {self.pack.size} values, its parts {self.at}")


def _half_json(arrays: dict[str, np.ndarray], name: str, half: CopyHalf, version: int) -> dict[str, Any]:
    """A copy half's entry; in version 1 its arrays' references too (`programmed_uS` only in an as-programmed
    Program, `leac program`)."""
    item: dict[str, Any] = {"region": _region_json(half.region), "cost_uS": half.cost_uS}
    if version == 1:
        item["levels"] = _put(arrays, name, half.levels)
        if half.programmed_uS is not None:
            item["programmed_uS"] = _put(arrays, f"{name}.programmed", half.programmed_uS)
    return item


def _layer_from_json(item: dict[str, Any], array: Any, version: int) -> Layer:
    levels_pack = None
    if version == 1:
        blocks = [_block_from_json(b, array(b["target_pos"]), array(b["target_neg"]), array(b["selection"]),
                                   lambda c: _half_from_json(c, array(c["levels"]), array(c["programmed_uS"])
                                                             if "programmed_uS" in c else None))
                  for b in item["blocks"]]
    else:
        levels, targets, selection = (_Unpacker(array(item[key]), item[key])
                                      for key in ("levels", "targets", "selection"))
        programmed = _Unpacker(array(item["programmed_uS"]), item["programmed_uS"]) \
            if "programmed_uS" in item else None
        blocks = []
        for b in item["blocks"]:
            shape = (b["rows"][1] - b["rows"][0], b["cols"][1] - b["cols"][0])
            target_pos, target_neg = targets.take(shape), targets.take(shape)
            mask = selection.take((len(b["copies"]), shape[1]))
            # the block's halves, G+ and G- of copy 0, then of copy 1, ...: one view each of one (halves, rows,
            # cols) view of the pack, not a slice and reshape each
            halves = (2 * len(b["copies"]), *shape)
            own = iter(levels.take(halves))
            held = iter(programmed.take(halves)) if programmed is not None else None

            def half(c: dict[str, Any], own: Iterator[np.ndarray] = own,
                     held: Iterator[np.ndarray] | None = held) -> CopyHalf:
                return _half_from_json(c, next(own), None if held is None else next(held))

            blocks.append(_block_from_json(b, target_pos, target_neg, mask, half))
        for unpacker in (levels, targets, selection, programmed):
            if unpacker is not None:
                unpacker.finish()
        # the halves' levels are the views of the pack just taken, in order: lowering takes the pack whole
        shapes = np.array([block.shape for block in blocks], dtype=np.int64).reshape(-1, 2)
        levels_pack = LevelsPack(levels.pack, tuple(half.levels for block in blocks for copy in block.copies
                                                    for half in (copy.pos, copy.neg)),
                                 np.repeat(shapes, [2 * len(block.copies) for block in blocks], axis=0))
    return Layer(
        name=item["name"], rows=item["rows"], cols=item["cols"], bias_row=item["bias_row"],
        encoding=item["encoding"], levels_uS=tuple(item["levels_uS"]), scale=array(item["scale"]),
        alpha=item["alpha"], beta=item["beta"], blocks=tuple(blocks), quantization=item["quantization"],
        mapping_error_uS=float(item["mapping_error_uS"]), effective_error_uS=float(item["effective_error_uS"]),
        input_full_scale=_optional_float(item.get("input_full_scale")),
        column_gain=array(item["column_gain"]) if "column_gain" in item else None,
        column_offset=array(item["column_offset"]) if "column_offset" in item else None,
        levels_pack=levels_pack,
    )


def _block_from_json(b: dict[str, Any], target_pos: np.ndarray, target_neg: np.ndarray, selection: np.ndarray,
                     half: Any) -> ProgramBlock:
    """A block from its entry and its arrays; `half(entry)` makes each copy half from its entry, G+ before G-
    (a version-2 layer's halves are taken from its packed arrays in that order)."""
    copies = tuple(BlockCopy(c["copy"], half(c["pos"]), half(c["neg"])) for c in b["copies"])
    return ProgramBlock(
        index=b["index"], row_block=b["row_block"], col_block=b["col_block"],
        row_start=b["rows"][0], row_stop=b["rows"][1], col_start=b["cols"][0], col_stop=b["cols"][1],
        target_pos=target_pos, target_neg=target_neg, copies=copies, selection=selection,
        adc_full_scale_uA=_optional_float(b.get("adc_full_scale_uA")),
    )


def _half_from_json(item: dict[str, Any], levels: np.ndarray, programmed: np.ndarray | None) -> CopyHalf:
    return CopyHalf(Region(*item["region"]), levels, float(item["cost_uS"]), programmed)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
