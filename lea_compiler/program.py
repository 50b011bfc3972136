"""The Program: what `leac compile` produces and every backend reads.

A Program holds, for one model on one chip:

- the digital graph: the canonicalized IR, where each crossbar product is a
  `leac.MVM` node whose name is the name of its `Layer` (the node keeps its
  float weights as the digital reference the simulator compares against);
- per crossbar layer: its matrix size, levels, encoding and per-column scale,
  the blocks it is cut into (row blocks are partial sums added digitally),
  each block's target levels, the alpha copies of each block half with their
  region on the chip and the levels actually programmed (-1 where the
  device is stuck and is skipped), and the (alpha, cols) mask of the beta
  copies each output column averages;
- the chip it was compiled for (embedded whole, plus its fingerprint and the
  name of the chip file it was read from, for reports on an unnamed chip), the
  compile options and the placement solver's status;
- the original ONNX file, so reports can quote onnxruntime's accuracy.

File format (`.leac`, version 1): a zip archive with `program.json` (all
structure, arrays referenced by name), `chip.json` (the chip file),
`model.onnx` (the source model, when compiled from a file) and one
`arrays/NAME.npy` per array. Entries are written in a fixed order with fixed
timestamps, so the same inputs and seed give a byte-identical file;
`program.json` records the model's size (`model_bytes`). Loading never
unpickles, refuses an archive whose entries declare more than
`MAX_PROGRAM_BYTES` before reading them, reads every member with a bound
derived from what the Program declares and checks every array reference and
`.npy` header before allocating (lea_compiler/program_archive.py), refuses
NaN and infinity in a crossbar layer's numbers, and checks the whole Program against
itself, its chip and its graph (`program_problems`): a damaged or hand-edited
file is an `InvalidInputError` listing what is wrong, never a crash in a backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from lea_compiler import __version__
from lea_compiler.chip import MAX_FILE_BYTES as MAX_CHIP_FILE_BYTES
from lea_compiler.chip import Chip, chip_to_text, decode_chip_json, parse_chip
from lea_compiler.errors import CompileError, InvalidInputError, IRVerificationError
from lea_compiler.fileio import atomic_write_bytes, open_input
from lea_compiler.ir import Graph, Value
from lea_compiler.passes.compensate import Compensation
from lea_compiler.passes.encode import Encoded
from lea_compiler.passes.ensemble import Ensemble
from lea_compiler.passes.place import Placed, PlacementSummary
from lea_compiler.passes.quantize import QuantizedLayer
from lea_compiler.passes.select import Selection
from lea_compiler.passes.tile import Tiling
from lea_compiler.placement import Region
from lea_compiler.program_archive import (
    MAX_PROGRAM_JSON_BYTES,
    array_specs,
    check_graph_arrays,
    member_sha256,
    model_bound,
    read_array,
    read_member,
)
from lea_compiler.program_checks import program_problems

FORMAT = "leac-program"
VERSION = 1
MAX_PROGRAM_BYTES = 4 * 2**30
"""Largest Program file leac reads, and most bytes its entries may hold once uncompressed."""
MAX_PROBLEMS = 50
"""Most problems of a damaged Program listed in one error; the rest are counted."""

_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, KeyError, ValueError,
                   UnicodeDecodeError, NotImplementedError, RuntimeError)
"""What zipfile, zlib and json raise for a damaged archive (NotImplementedError: an unknown compression
method; RuntimeError: an entry flagged as encrypted)."""

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, eq=False)
class CopyHalf:
    """One copy of one half (G+ or G-) of a block: where it sits and what is programmed."""

    region: Region
    levels: np.ndarray  # (rows, cols) level index (chip.level_index_dtype); -1: stuck device, not programmed
    cost_uS: float  # mapping error at this region (stuck devices vs targets)


@dataclass(frozen=True, eq=False)
class BlockCopy:
    copy: int
    pos: CopyHalf
    neg: CopyHalf


@dataclass(frozen=True, eq=False)
class ProgramBlock:
    """A block of a layer's matrix, its targets, its alpha copies and the beta-of-alpha mask."""

    index: int
    row_block: int
    col_block: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    target_pos: np.ndarray  # (rows, cols) level index (chip.level_index_dtype)
    target_neg: np.ndarray
    copies: tuple[BlockCopy, ...]
    selection: np.ndarray  # (alpha, cols) bool: the copies each column averages
    adc_full_scale_uA: float | None = None  # ADC range, when calibrated at compile time

    @property
    def shape(self) -> tuple[int, int]:
        return (self.row_stop - self.row_start, self.col_stop - self.col_start)


@dataclass(frozen=True, eq=False)
class Layer:
    """One crossbar layer (an MVM node of the graph) as mapped onto the chip."""

    name: str
    rows: int  # crossbar matrix rows (inputs, plus one bias row if bias_row)
    cols: int
    bias_row: bool
    encoding: str
    levels_uS: tuple[float, ...]
    scale: np.ndarray  # (cols,) uS of conductance difference per weight unit
    alpha: int
    beta: int
    blocks: tuple[ProgramBlock, ...]
    quantization: dict[str, float]  # rms_error, max_error, relative_rms_error (weight units)
    mapping_error_uS: float  # placement cost: sum over copies of |G_actual - G_target|
    effective_error_uS: float  # after encode and selection: error of the averaged differences
    input_full_scale: float | None = None  # DAC full-scale input |x|, when calibrated at compile time
    column_gain: np.ndarray | None = None  # (cols,) stuck-device compensation (passes/compensate.py), or None
    column_offset: np.ndarray | None = None  # (cols,) weight units, added with the gain

    @property
    def devices(self) -> int:
        """Devices this layer occupies: two halves of every copy of every block."""
        return sum(2 * len(b.copies) * b.shape[0] * b.shape[1] for b in self.blocks)

    @property
    def row_bounds(self) -> list[tuple[int, int]]:
        return sorted({(b.row_start, b.row_stop) for b in self.blocks})

    @property
    def col_bounds(self) -> list[tuple[int, int]]:
        return sorted({(b.col_start, b.col_stop) for b in self.blocks})


@dataclass(frozen=True, eq=False)
class Program:
    """The compiled result (see the module docstring)."""

    graph: Graph
    layers: tuple[Layer, ...]
    chip: Chip
    model: dict[str, Any]
    options: dict[str, Any]
    placement: dict[str, Any]
    leac_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)
    source_model: bytes | None = None  # the original ONNX file, for the onnxruntime baseline

    @property
    def chip_fingerprint(self) -> str:
        return self.chip.fingerprint()

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def devices_used(self) -> int:
        return sum(layer.devices for layer in self.layers)

    @property
    def arrays_used(self) -> list[int]:
        halves = (half for layer in self.layers for b in layer.blocks for c in b.copies for half in (c.pos, c.neg))
        return sorted({half.region.array for half in halves})

    @property
    def mapping_error_uS(self) -> float:
        return float(sum(layer.mapping_error_uS for layer in self.layers))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the Program atomically as a `.leac` file (byte-identical for identical Programs).

        Raises:
            CompileError: the Program breaks `program_problems` (a bug: `load` would refuse the file),
                and nothing is written.
        """
        problems = program_problems(self)
        if problems:
            raise CompileError(f"the compiled Program is inconsistent, not written (a bug in leac):\n"
                               f"{_listing(problems)}")
        atomic_write_bytes(path, self.to_bytes())

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        header = {
            "format": FORMAT,
            "version": VERSION,
            "leac_version": self.leac_version,
            "model": self.model,
            "chip": {"name": self.chip.name, "fingerprint": self.chip_fingerprint, "file": self.chip.file_name},
            "options": self.options,
            "placement": self.placement,
            "extra": self.extra,
            "graph": _graph_to_json(self.graph, arrays),
            "layers": [_layer_to_json(i, layer, arrays) for i, layer in enumerate(self.layers)],
            # the bound leac reads model.onnx with (program_archive.py); absent in Programs before issue 13
            "model_bytes": None if self.source_model is None else len(self.source_model),
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _write_entry(archive, "program.json", json.dumps(header, indent=1, sort_keys=False).encode())
            _write_entry(archive, "chip.json", chip_to_text(self.chip).encode())
            if self.source_model is not None:
                _write_entry(archive, "model.onnx", self.source_model)
            for name, array in arrays.items():
                data = io.BytesIO()
                np.save(data, np.ascontiguousarray(array), allow_pickle=False)
                _write_entry(archive, f"arrays/{name}.npy", data.getvalue())
        return buffer.getvalue()

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Program:
        """Read a `.leac` file written by `save`.

        Raises:
            InvalidInputError: not a leac Program, a newer version, or damaged.
        """
        source = os.fspath(path)
        with open_input(source, MAX_PROGRAM_BYTES, "Program") as handle:  # read in place: not held whole
            return Program._read(handle, source)

    @staticmethod
    def from_bytes(data: bytes, source: str = "<program>") -> Program:
        """Read a Program from the bytes of a `.leac` file (see `load`)."""
        return Program._read(io.BytesIO(data), source)

    @staticmethod
    def _read(file: IO[bytes], source: str) -> Program:
        """Read a Program from a seekable `.leac` file object. Every member is read with a bound derived from
        what the Program declares, and every array reference is checked before any array is read
        (lea_compiler/program_archive.py)."""
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
        if header.get("version") != VERSION:
            raise InvalidInputError(
                f"{source}: Program version {header.get('version')!r}; this leac reads version {VERSION}"
            )
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
            chip = parse_chip(decode_chip_json(chip_text, f"{source}:chip.json"), f"{source}:chip.json")
            if chip.fingerprint() != header["chip"]["fingerprint"]:
                raise InvalidInputError(f"{source}: the embedded chip does not match its fingerprint")
            file_name = header["chip"].get("file")  # the chip file compiled for (absent before issue 12)
            chip = chip.with_file_name(file_name if isinstance(file_name, str) else None)
            specs = array_specs(header, chip, set(archive.namelist()), source)
            check_graph_arrays(archive, specs, header, source)

            def array(name: str) -> np.ndarray:
                return read_array(archive, name, specs[name], source)

            graph = _graph_from_json(header["graph"], array)
            layers = tuple(_layer_from_json(item, array) for item in header["layers"])
            program = Program(
                graph=graph,
                layers=layers,
                chip=chip,
                model=header["model"],
                options=header["options"],
                placement=header["placement"],
                leac_version=header["leac_version"],
                extra=header.get("extra", {}),
                source_model=source_model,
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            raise InvalidInputError(f"{source}: damaged Program ({type(exc).__name__}: {exc})") from None
        except IRVerificationError as exc:
            raise InvalidInputError(f"{source}: damaged Program: its graph is inconsistent:\n"
                                    + _listing(exc.problems)) from None
        problems = program_problems(program)
        if problems:
            raise InvalidInputError(f"{source}: damaged Program:\n{_listing(problems)}")
        return program

    @property
    def model_digest(self) -> str | None:
        """SHA-256 (hex) of the original ONNX file the Program embeds; None if it embeds none."""
        return None if self.source_model is None else hashlib.sha256(self.source_model).hexdigest()


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


def _listing(problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS]
    more = len(problems) - len(shown)
    return "\n".join(f"  {p}" for p in shown) + (f"\n  ... and {more} more" if more else "")


def represented_matrix(layer: Layer, chip: Chip) -> np.ndarray:
    """The crossbar matrix (rows, cols; weight units) a layer represents on `chip` without noise: per output
    column the mean over its selected copies of G+ - G-, every healthy device at its programmed level and a
    device the Program skipped at its stuck conductance on `chip`, divided by the column's scale (no
    compensation). For `joint` encoding this is what `simulate(..., ideal=True)` computes on the chip compiled
    for."""
    levels = np.asarray(layer.levels_uS, dtype=np.float64)
    out = np.zeros((layer.rows, layer.cols))
    maps: dict[int, np.ndarray] = {}
    for block in layer.blocks:
        rows, cols = block.shape
        diffs = []
        for copy in block.copies:
            g = []
            for half in (copy.pos, copy.neg):
                region = half.region
                if region.array not in maps:
                    maps[region.array] = chip.stuck_map(region.array)[1]
                stuck = maps[region.array][region.row:region.row + rows, region.col:region.col + cols]
                g.append(np.where(half.levels >= 0, levels[np.maximum(half.levels, 0)], np.nan_to_num(stuck)))
            diffs.append(g[0] - g[1])
        mask = block.selection.astype(np.float64)[:, None, :]
        mean = (np.stack(diffs) * mask).sum(axis=0) / mask.sum(axis=0)
        out[block.row_start:block.row_stop, block.col_start:block.col_stop] = mean
    return out / np.asarray(layer.scale, dtype=np.float64)


def lower_to_program(
    graph: Graph,
    chip: Chip,
    *,
    model: dict[str, Any],
    options: dict[str, Any],
    source_model: bytes | None = None,
) -> Program:
    """Collect the facts the passes attached to the IR into a Program (needs `select` to have run)."""
    layers = []
    for node in graph.nodes_of("MVM"):
        quantized, tiling = node.fact(QuantizedLayer), node.fact(Tiling)
        ensemble, placed = node.fact(Ensemble), node.fact(Placed)
        encoded, selection = node.fact(Encoded), node.fact(Selection)
        compensation = node.fact(Compensation)
        if None in (quantized, tiling, ensemble, placed, encoded, selection):
            raise CompileError(f"{node.describe()} is not fully mapped; run the whole pipeline")
        assert quantized and tiling and ensemble and placed and encoded and selection
        blocks = []
        for block in tiling.blocks:
            rows = slice(block.row_start, block.row_stop)
            cols = slice(block.col_start, block.col_stop)
            copies = []
            for copy in range(ensemble.alpha):
                enc = encoded.get(block.index, copy)
                halves = []
                for polarity, levels in (("+", enc.pos_levels), ("-", enc.neg_levels)):
                    placed_copy = placed.get(block.index, polarity, copy)
                    halves.append(CopyHalf(placed_copy.region, levels, placed_copy.cost_uS))
                copies.append(BlockCopy(copy, halves[0], halves[1]))
            blocks.append(
                ProgramBlock(
                    index=block.index, row_block=block.row_block, col_block=block.col_block,
                    row_start=block.row_start, row_stop=block.row_stop,
                    col_start=block.col_start, col_stop=block.col_stop,
                    target_pos=quantized.pos[rows, cols].copy(), target_neg=quantized.neg[rows, cols].copy(),
                    copies=tuple(copies), selection=selection.masks[block.index],
                )
            )
        rows_total, cols_total = quantized.shape
        layers.append(
            Layer(
                name=node.name, rows=rows_total, cols=cols_total, bias_row=quantized.bias_row,
                encoding=quantized.encoding, levels_uS=quantized.levels_uS, scale=quantized.scale,
                alpha=ensemble.alpha, beta=ensemble.beta, blocks=tuple(blocks),
                quantization={
                    "rms_error": quantized.rms_error,
                    "max_error": quantized.max_error,
                    "relative_rms_error": quantized.relative_rms_error,
                },
                mapping_error_uS=placed.cost_uS, effective_error_uS=selection.effective_error_uS,
                column_gain=None if compensation is None else compensation.gain.copy(),
                column_offset=None if compensation is None else compensation.offset.copy(),
            )
        )
    summary = graph.fact(PlacementSummary)
    placement = {}
    if summary is not None:
        placement = {
            "placer": summary.placer, "status": summary.status, "method": summary.method,
            "objective_uS": summary.objective_uS, "bound_uS": summary.bound_uS, "gap": summary.gap,
            "copies": summary.copies,
        }
    return Program(graph=graph, layers=tuple(layers), chip=chip, model=model, options=options,
                   placement=placement, source_model=source_model)


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


def _layer_to_json(index: int, layer: Layer, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    prefix = f"layer{index}"
    blocks = []
    for b in layer.blocks:
        bp = f"{prefix}.b{b.index}"
        copies = []
        for c in b.copies:
            copies.append({
                "copy": c.copy,
                "pos": {"region": _region_json(c.pos.region), "cost_uS": c.pos.cost_uS,
                        "levels": _put(arrays, f"{bp}.c{c.copy}.pos", c.pos.levels)},
                "neg": {"region": _region_json(c.neg.region), "cost_uS": c.neg.cost_uS,
                        "levels": _put(arrays, f"{bp}.c{c.copy}.neg", c.neg.levels)},
            })
        blocks.append({
            "index": b.index, "row_block": b.row_block, "col_block": b.col_block,
            "rows": [b.row_start, b.row_stop], "cols": [b.col_start, b.col_stop],
            "target_pos": _put(arrays, f"{bp}.target_pos", b.target_pos),
            "target_neg": _put(arrays, f"{bp}.target_neg", b.target_neg),
            "selection": _put(arrays, f"{bp}.selection", b.selection),
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
        "blocks": blocks,
    }


def _layer_from_json(item: dict[str, Any], array: Any) -> Layer:
    blocks = []
    for b in item["blocks"]:
        copies = tuple(
            BlockCopy(
                c["copy"],
                CopyHalf(Region(*c["pos"]["region"]), array(c["pos"]["levels"]), float(c["pos"]["cost_uS"])),
                CopyHalf(Region(*c["neg"]["region"]), array(c["neg"]["levels"]), float(c["neg"]["cost_uS"])),
            )
            for c in b["copies"]
        )
        blocks.append(ProgramBlock(
            index=b["index"], row_block=b["row_block"], col_block=b["col_block"],
            row_start=b["rows"][0], row_stop=b["rows"][1], col_start=b["cols"][0], col_stop=b["cols"][1],
            target_pos=array(b["target_pos"]), target_neg=array(b["target_neg"]), copies=copies,
            selection=array(b["selection"]), adc_full_scale_uA=_optional_float(b.get("adc_full_scale_uA")),
        ))
    return Layer(
        name=item["name"], rows=item["rows"], cols=item["cols"], bias_row=item["bias_row"],
        encoding=item["encoding"], levels_uS=tuple(item["levels_uS"]), scale=array(item["scale"]),
        alpha=item["alpha"], beta=item["beta"], blocks=tuple(blocks), quantization=item["quantization"],
        mapping_error_uS=float(item["mapping_error_uS"]), effective_error_uS=float(item["effective_error_uS"]),
        input_full_scale=_optional_float(item.get("input_full_scale")),
        column_gain=array(item["column_gain"]) if "column_gain" in item else None,
        column_offset=array(item["column_offset"]) if "column_offset" in item else None,
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def with_calibration(program: Program, input_full_scale: dict[str, float],
                     adc_full_scale_uA: dict[str, list[float]], source: str) -> Program:
    """The Program with DAC and ADC ranges fixed at compile time (both backends then use them)."""
    layers = tuple(
        dataclasses.replace(
            layer,
            input_full_scale=float(input_full_scale[layer.name]),
            blocks=tuple(dataclasses.replace(b, adc_full_scale_uA=float(fs))
                         for b, fs in zip(layer.blocks, adc_full_scale_uA[layer.name], strict=True)),
        )
        for layer in program.layers
    )
    extra = {**program.extra, "calibration": source}
    return dataclasses.replace(program, layers=layers, extra=extra)
