"""Reading the members of a Program archive (`.leac`) with a bound on each, before trusting any of them.

A `.leac` file is a zip archive (lea_compiler/program/file.py): a few MB of
compressed data can inflate to gigabytes, an `.npy` header can declare any
shape, and `program.json` can point many copies at one array. So every member
is read with a bound derived from what the Program declares, through the
decompressor, never more than bound + 1 bytes (zip's own declared size is
checked too, but not trusted alone):

- `program.json`: at most `MAX_PROGRAM_JSON_BYTES`;
- `chip.json`: at most the chip reader's limit (`chip.MAX_FILE_BYTES`);
- `model.onnx`: exactly the size `program.json` records (`model_bytes`, written
  since issue 13), or for an older Program at most the front end's model limit
  (`fileio.MAX_MODEL_BYTES`); its sha256 is checked streaming, in
  chunks, before the model is kept in memory;
- `arrays/NAME.npy`: `array_specs` first walks `program.json` and lists every
  array it references with the shape and dtype the Program's layers require
  (each referenced once, each present, each copy list as long as the layer's
  alpha; a version-2 layer's packed arrays exactly as long as its blocks'
  shapes and alpha add up to), before any array is read; `read_array` then
  checks the `.npy` header against that and against the member's size, and
  only then allocates.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from lea_compiler import fileio
from lea_compiler.chip import Chip
from lea_compiler.errors import InvalidInputError
from lea_compiler.ops import LEAC_DOMAIN

MAX_PROGRAM_JSON_BYTES = 128 * 2**20
"""Largest `program.json` leac reads: ~400 bytes per copy half, so ~300,000 copy halves (a Program for the
largest chip leac reads holds far fewer); decoding it takes about ten times this in memory."""
CHUNK_BYTES = 2**20
"""Bytes decompressed at a time when hashing the embedded model."""

_GRAPH_KINDS = "biufc"
"""The numpy dtype kinds a graph tensor may have in a Program (no objects, strings, structures or dates)."""


@dataclass(frozen=True)
class ArraySpec:
    """What a referenced array must be: its shape (None: any) and dtype kinds, in words for a message."""

    shape: tuple[int, ...] | None
    kinds: str
    what: str


def member_size(archive: zipfile.ZipFile, name: str, bound: int, source: str) -> int:
    """The declared uncompressed size of member `name`, refused if over `bound`.

    Raises:
        InvalidInputError: no such member, or it declares more than `bound` bytes.
    """
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise InvalidInputError(f"{source}: damaged Program: it has no {name}") from None
    if info.file_size > bound:
        raise InvalidInputError(f"{source}: damaged Program: {name} declares {info.file_size} bytes, more than "
                                f"the {bound} its Program allows")
    return info.file_size


def read_member(archive: zipfile.ZipFile, name: str, bound: int, source: str) -> bytes:
    """The bytes of member `name`, reading at most `bound` + 1 through the decompressor.

    Raises:
        InvalidInputError: missing, or larger than `bound` (declared or once inflated).
    """
    member_size(archive, name, bound, source)
    with archive.open(name) as handle:
        data = handle.read(bound + 1)
    if len(data) > bound:
        raise InvalidInputError(f"{source}: damaged Program: {name} inflates to more than the {bound} bytes its "
                                "Program allows")
    return data


def member_sha256(archive: zipfile.ZipFile, name: str, bound: int, source: str) -> str:
    """SHA-256 (hex) of member `name`, decompressed `CHUNK_BYTES` at a time (memory stays one chunk).

    Raises:
        InvalidInputError: missing, or larger than `bound` (declared or once inflated).
    """
    member_size(archive, name, bound, source)
    digest, total = hashlib.sha256(), 0
    with archive.open(name) as handle:
        while chunk := handle.read(min(CHUNK_BYTES, bound + 1 - total)):
            total += len(chunk)
            if total > bound:
                raise InvalidInputError(f"{source}: damaged Program: {name} inflates to more than the {bound} "
                                        "bytes its Program allows")
            digest.update(chunk)
    return digest.hexdigest()


def model_bound(header: dict[str, Any], source: str) -> int:
    """How many bytes the embedded model may have: the size `program.json` records (`model_bytes`), or for a
    Program written before it was recorded, the front end's model limit."""
    recorded = header.get("model_bytes")
    if recorded is None:
        return fileio.MAX_MODEL_BYTES
    if not isinstance(recorded, int) or isinstance(recorded, bool) or not 0 <= recorded <= fileio.MAX_MODEL_BYTES:
        raise InvalidInputError(f"{source}: damaged Program: model_bytes {recorded!r} is not a size from 0 to "
                                f"{fileio.MAX_MODEL_BYTES}")
    return recorded


# ------------------------------------------------------------------ arrays
def _dims(value: Any, size: int, where: str, source: str) -> int:
    """A block's [start, stop) rows or cols (of a matrix dimension of `size`) as its length."""
    start, stop = value
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop)) or not 0 <= start < stop:
        raise InvalidInputError(f"{source}: damaged Program: {where} {value!r} is not an integer range "
                                "0 <= start < stop")
    if stop > size:
        raise InvalidInputError(f"{source}: damaged Program: {where} {value!r} is outside the layer's {size}")
    return stop - start


def _positive(value: Any, where: str, source: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"{source}: damaged Program: {where} {value!r} is not a positive integer")
    return value


def array_specs(header: dict[str, Any], chip: Chip, members: set[str], source: str, *,
                version: int) -> dict[str, ArraySpec]:
    """Every array `program.json` references, with what it must be, checked before any array is read.

    Each array is referenced once (`Program.to_bytes` stores each under its own name) and is a member of the
    archive; each block has exactly alpha copies, fits on the chip's largest array, and the layers' devices
    (two halves per copy) fit on the chip; a crossbar layer's weight matrix has the layer's shape. In a
    version-2 file a layer's packed arrays (program/file.py) must hold exactly what its blocks' shapes and
    alpha add up to; in version 1 every block and copy half names its own arrays of its block's shape.

    Raises:
        InvalidInputError: a reference breaks one of these.
        KeyError, TypeError, ValueError, IndexError, AttributeError: the structure is damaged (the caller
            reports it as a damaged Program).
    """
    specs: dict[str, ArraySpec] = {}

    def ref(name: Any, spec: ArraySpec) -> None:
        if not isinstance(name, str):
            raise ValueError(f"array reference {name!r} is not a string")
        if name in specs:
            raise InvalidInputError(f"{source}: damaged Program: array {name} is referenced twice (each array "
                                    "belongs to one place)")
        if f"arrays/{name}.npy" not in members:
            raise InvalidInputError(f"{source}: damaged Program: it has no arrays/{name}.npy")
        specs[name] = spec

    max_rows = max(a.rows for a in chip.arrays)
    max_cols = max(a.cols for a in chip.arrays)
    devices = 0
    weights: dict[str, tuple[int, int]] = {}
    for layer in header["layers"]:
        name = layer["name"]
        rows, cols = (_positive(layer[key], f"layer {name!r}: {key}", source) for key in ("rows", "cols"))
        alpha = _positive(layer["alpha"], f"layer {name!r}: alpha", source)
        weights[name] = (rows - int(layer["bias_row"] is True), cols)
        vector = ArraySpec((cols,), "f", f"a vector of {cols} numbers")
        ref(layer["scale"], vector)
        for key in ("column_gain", "column_offset"):
            if key in layer:
                ref(layer[key], vector)
        packed = [0, 0, 0]  # version 2: the values of the layer's levels, targets and selection
        for block in layer["blocks"]:
            where = f"layer {name!r} block {block.get('index')!r}"
            shape = (_dims(block["rows"], rows, f"{where}: rows", source),
                     _dims(block["cols"], cols, f"{where}: cols", source))
            if len(block["copies"]) != alpha:
                raise InvalidInputError(f"{source}: damaged Program: {where} has {len(block['copies'])} copies, "
                                        f"not alpha = {alpha}")
            if shape[0] > max_rows or shape[1] > max_cols:
                raise InvalidInputError(f"{source}: damaged Program: {where} is {shape[0]} x {shape[1]}, larger "
                                        f"than any array of its chip ({max_rows} rows, {max_cols} cols at most)")
            devices += 2 * alpha * shape[0] * shape[1]
            packed[0] += 2 * alpha * shape[0] * shape[1]
            packed[1] += 2 * shape[0] * shape[1]
            packed[2] += alpha * shape[1]
            if version > 1:
                continue
            levels = ArraySpec(shape, "iu", f"an integer {shape[0]} x {shape[1]} matrix")
            ref(block["target_pos"], levels)
            ref(block["target_neg"], levels)
            ref(block["selection"], ArraySpec((alpha, shape[1]), "b", f"a boolean {alpha} x {shape[1]} matrix"))
            conductances = ArraySpec(shape, "f", f"a {shape[0]} x {shape[1]} matrix of conductances")
            for copy in block["copies"]:
                for half in (copy["pos"], copy["neg"]):
                    ref(half["levels"], levels)
                    if "programmed_uS" in half:
                        ref(half["programmed_uS"], conductances)
        if version > 1:
            for key, spec in _pack_specs(packed, len(layer["blocks"]), alpha, "programmed_uS" in layer).items():
                if key not in layer:
                    raise InvalidInputError(f"{source}: damaged Program: layer {name!r} names no {key} array (a "
                                            f"version-2 Program packs each layer's {key} in one)")
                ref(layer[key], spec)
    if devices > chip.device_count:
        raise InvalidInputError(f"{source}: damaged Program: its layers occupy {devices} devices, more than its "
                                f"chip has ({chip.device_count})")
    graph = header["graph"]
    initializers = {item["name"]: item.get("array") for item in graph["initializers"]}
    shaped: dict[str, tuple[int, int]] = {}  # array name -> a crossbar layer's weight shape
    for node in graph["nodes"]:
        if node["op"] == "MVM" and node["domain"] == LEAC_DOMAIN and node["name"] in weights:
            inputs = node["inputs"]
            array = initializers.get(inputs[1]) if len(inputs) > 1 and isinstance(inputs[1], str) else None
            if isinstance(array, str):
                shaped[array] = weights[node["name"]]
        for value in node["attrs"].values():
            if isinstance(value, dict) and isinstance(value.get("tensor"), dict) and "array" in value["tensor"]:
                ref(value["tensor"]["array"], ArraySpec(None, _GRAPH_KINDS, "a numeric tensor"))
    for array in initializers.values():
        if array is not None:
            matrix = shaped.get(array) if isinstance(array, str) else None
            ref(array, ArraySpec(None, _GRAPH_KINDS, "a numeric tensor") if matrix is None else
                ArraySpec(matrix, "fiu", f"a {matrix[0]} x {matrix[1]} weight matrix"))
    return specs


def _pack_specs(packed: list[int], blocks: int, alpha: int, programmed: bool) -> dict[str, ArraySpec]:
    """What a version-2 layer's packed arrays must be, given the values its blocks need (`packed`: levels,
    targets, selection), by their keys in the layer's entry."""
    levels, targets, selection = packed
    halves = 2 * alpha * blocks
    specs = {"levels": ArraySpec((levels,), "iu", f"an integer vector of {levels} levels (the layer's {halves} "
                                                   "copy halves end to end)"),
             "targets": ArraySpec((targets,), "iu", f"an integer vector of {targets} levels (the layer's {blocks} "
                                                     "blocks' two targets end to end)"),
             "selection": ArraySpec((selection,), "b", f"a boolean vector of {selection} values (the layer's "
                                                        f"{blocks} blocks' {alpha} x cols selections end to end)")}
    if programmed:
        specs["programmed_uS"] = ArraySpec((levels,), "f", f"a vector of {levels} conductances (the layer's "
                                                             f"{halves} copy halves end to end)")
    return specs


GRAPH_BYTES_PER_MODEL_BYTE = 4
"""The digital constants of a Program's graph come from its model's initializers, at most widened to
float32 (4 bytes for an int8 or 1-byte type): their arrays may hold at most this many bytes per byte of the
embedded model, plus `GRAPH_BYTES_SLACK`."""

GRAPH_BYTES_SLACK = 16 * 2**20


def check_graph_arrays(archive: zipfile.ZipFile, specs: dict[str, ArraySpec], header: dict[str, Any],
                       source: str) -> None:
    """Refuse, before any is read, graph constants whose members declare more bytes than the model could
    give (`GRAPH_BYTES_PER_MODEL_BYTE`): a crafted Program's 3 GiB constant would otherwise be allocated.

    Raises:
        InvalidInputError: the graph's arrays declare too many bytes.
    """
    limit = GRAPH_BYTES_PER_MODEL_BYTE * model_bound(header, source) + GRAPH_BYTES_SLACK
    declared = sum(archive.getinfo(f"arrays/{name}.npy").file_size for name, spec in specs.items()
                   if spec.shape is None)
    if declared > limit:
        raise InvalidInputError(f"{source}: damaged Program: its graph's constants declare {declared} bytes, more "
                                f"than its model of at most {model_bound(header, source)} bytes could give ({limit})")


def read_array(archive: zipfile.ZipFile, name: str, spec: ArraySpec, source: str) -> np.ndarray:
    """Array `name` (member `arrays/NAME.npy`), its header checked against `spec` and the member's declared
    size before anything is allocated; never unpickles.

    Raises:
        InvalidInputError: a damaged or mismatching array.
    """
    member = f"arrays/{name}.npy"
    info = archive.getinfo(member)
    try:
        with archive.open(info) as handle:
            shape, fortran, dtype = _npy_header(handle)
            offset = handle.tell()
            if dtype.hasobject or dtype.fields is not None or dtype.kind not in spec.kinds or (
                    spec.shape is not None and shape != spec.shape):
                raise InvalidInputError(f"{source}: damaged Program: array {name} is {dtype}{list(shape)}, not "
                                        f"{spec.what}")
            nbytes = math.prod(shape) * dtype.itemsize
            if offset + nbytes != info.file_size:
                raise InvalidInputError(f"{source}: damaged Program: array {name} declares {dtype}{list(shape)} "
                                        f"({nbytes} bytes) but its entry holds {info.file_size - offset}")
            buffer, done = bytearray(nbytes), 0
            while done < nbytes and (chunk := handle.read(min(nbytes - done, CHUNK_BYTES * 16))):
                buffer[done:done + len(chunk)] = chunk
                done += len(chunk)
            if done != nbytes or handle.read(1):
                raise InvalidInputError(f"{source}: damaged Program: array {name} does not hold {nbytes} bytes")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        raise InvalidInputError(f"{source}: damaged Program: array {name} ({exc})") from None
    array = np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if spec.shape is not None and array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{source}: damaged Program: array {name} holds NaN or infinity (a crossbar "
                                "layer's weights, scales and compensations are finite numbers)")
    return array


_NPY_MAGIC = b"\x93NUMPY"
_DIM = rb"(?:0|[1-9]\d{0,18})"  # a dimension as repr() writes it: no leading zero, within int64
_CANONICAL_HEADER = re.compile(rb"\{'descr': '([<>|=]?[a-zA-Z]\d*)', 'fortran_order': (True|False), "
                               rb"'shape': \((|" + _DIM + rb",|(?:" + _DIM + rb", )+" + _DIM + rb")\), \} *\n")
"""The header dict exactly as numpy writes it (`np.save`: keys sorted, repr'd values, space padding): parsed by
this pattern instead of `ast.literal_eval`, ~10x faster per array (a Program of 25 x 25 arrays holds thousands)."""


def _npy_header(handle: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The shape, order and dtype an `.npy` header declares (format 1.0 or 2.0), reading only the header.

    A header as numpy writes it is matched by `_CANONICAL_HEADER`; any other (hand-made, older numpy, damaged)
    goes to numpy's own parser, which refuses what is not a header as it always did. A header longer than
    numpy's bound (`_MAX_HEADER_BYTES`) is refused before it is read."""
    head = handle.read(8)
    width = {b"\x01\x00": 2, b"\x02\x00": 4}.get(head[6:8]) if head[:6] == _NPY_MAGIC else None
    if width is not None:
        size = handle.read(width)
        head += size
        length = int.from_bytes(size, "little") if len(size) == width else 0
        if length > _MAX_HEADER_BYTES:
            raise ValueError(f"its .npy header declares {length} bytes, more than {_MAX_HEADER_BYTES}")
        header = handle.read(length)
        head += header
        match = _CANONICAL_HEADER.fullmatch(header)
        if match is not None:
            descr, fortran, dims = match.groups()
            shape = tuple(int(d) for d in dims.split(b",") if d.strip()) if dims else ()
            return shape, fortran == b"True", _dtype(descr.decode("ascii"))
    return _numpy_header(io.BytesIO(head))


_MAX_HEADER_BYTES = 10000
"""numpy's own bound on a header's length (its `max_header_size`)."""


@functools.lru_cache(maxsize=64)
def _dtype(descr: str) -> np.dtype[Any]:
    """The dtype a header's descr names, each descr made once (a Program's thousands of arrays have a few).

    Raises:
        ValueError: numpy knows no such dtype (numpy's parser says the same of the header)."""
    try:
        return np.dtype(descr)
    except TypeError:
        raise ValueError(f"descr {descr!r} is not a valid dtype descriptor") from None


def _numpy_header(handle: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The header as numpy's own parser reads it (`_npy_header` without its fast path), which refuses what is not
    a header of format 1.0 or 2.0 with a ValueError."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f".npy format {version[0]}.{version[1]} is not one leac writes")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"shape {shape} has a negative dimension")
    return tuple(shape), bool(fortran), dtype
