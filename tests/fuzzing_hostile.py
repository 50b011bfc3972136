"""Hostile inputs for the fuzz cases (issue 13): archive bombs, declared-size lies, special files, output paths.

tests/fuzzing.py corrupts valid files at random; the generators here build
the attacks of the issue-13 red-team pass, each a small file (or a path) that
declares or inflates to far more than it holds:

    bomb           zip members that inflate far beyond their compressed size: a Program's model.onnx,
                   an array, program.json or chip.json padded with whitespace, an unreferenced member;
                   an .npz whose x or y inflates to GiBs (over the data limit, or within it with the
                   wrong shape)
    size_lie       zip entries whose declared file_size or compress_size is smaller or larger than the
                   data (with or without a matching CRC); .npy headers declaring huge shapes; duplicate
                   member names (`x` and `x.npy`, two `arrays/NAME.npy`); Program arrays referenced
                   thousands of times; 90-byte chips declaring 8192 x 8192 arrays; ONNX initializers
                   and external data declaring more than they hold, and models whose intermediates explode
    special_input  the file a reader gets is a FIFO, a character device (made with os.mknod, as root),
                   a symlink to one, a directory or a symlink loop
    output_path    `-o` names a FIFO, a device node, a socket, a directory, a path through a missing
                   folder or through a file, or one of the command's inputs (by its name, a symlink,
                   a hard link or a roundabout path)

Every generator writes its files in the case's folder and returns what it did
and the statuses the contract allows (tests/fuzzing_run.py checks them).
Archives are written by hand (`raw_zip`) so that sizes, CRCs and names can lie;
a bomb's deflate stream is one compressed 1 MiB block repeated, so a 3 GiB
member costs 3 MB and no 3 GiB buffer (`deflated_run`, cached per size).
"""

from __future__ import annotations

import functools
import io
import json
import os
import random
import socket
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.fuzzing import Base, npy_header_only

GiB = 2**30
MiB = 2**20

HOSTILE_CLASSES = ("bomb", "size_lie", "special_input", "output_path")
"""The case classes of issue 13; tests/fuzzing.py's random corruptions are the class `corrupt`."""

CHAR_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "urandom": (1, 9)}
"""Linux character devices (major, minor) the cases copy into their folder with os.mknod: harmless ones
(reading gives nothing, zeros or random bytes forever; writing is discarded, or fails with ENOSPC)."""


# --------------------------------------------------------------------------- zip archives that can lie
@dataclass(frozen=True)
class Member:
    """One zip entry as written: the stored bytes and what the headers declare (which may be lies)."""

    name: str
    payload: bytes  # the bytes stored (a raw deflate stream when method is 8)
    method: int  # 0 stored, 8 deflated
    crc: int
    file_size: int  # the declared uncompressed size
    compress_size: int | None = None  # the declared compressed size; None: len(payload)


def member(name: str, data: bytes, *, deflate: bool = True) -> Member:
    """An honest entry holding `data`."""
    payload = _deflate(data) if deflate else data
    return Member(name, payload, 8 if deflate else 0, zlib.crc32(data), len(data))


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def raw_zip(members: list[Member]) -> bytes:
    """A zip archive of `members`, written as declared (zip64 fields when a declared size needs them)."""
    out = io.BytesIO()
    central = []
    for m in members:
        offset = out.tell()
        name = m.name.encode()
        compressed = len(m.payload) if m.compress_size is None else m.compress_size
        big = m.file_size >= 0xFFFFFFFF or compressed >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, m.file_size, compressed) if big else b""
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if big else (compressed, m.file_size)
        version = 45 if big else 20
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", version, 0, m.method, 0, 0x21, m.crc, *sizes,
                              len(name), len(extra)) + name + extra + m.payload)
        central_extra = struct.pack("<HHQQQ", 1, 24, m.file_size, compressed, offset) if big else b""
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", version, version, 0, m.method, 0, 0x21,
                                   m.crc, *sizes, len(name), len(central_extra), 0, 0, 0, 0,
                                   0xFFFFFFFF if big else offset) + name + central_extra)
    start = out.tell()
    for record in central:
        out.write(record)
    size = out.tell() - start
    if start >= 0xFFFFFFFF or any(m.file_size >= 0xFFFFFFFF for m in members):
        end64 = out.tell()
        out.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(members), len(members), size,
                              start))
        out.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, end64, 1))
        out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    else:
        out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), size, start, 0))
    return out.getvalue()


def _gf2_times(matrix: list[int], vector: int) -> int:
    out, i = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from crc(A), crc(B) and len(B) (zlib's crc32_combine: zeros appended in GF(2))."""
    if length2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << i for i in range(31)]  # the operator for one zero bit
    even = [_gf2_times(odd, odd[i]) for i in range(32)]  # two zero bits
    odd = [_gf2_times(even, even[i]) for i in range(32)]  # four zero bits
    while True:
        even = [_gf2_times(odd, odd[i]) for i in range(32)]  # square: one zero byte, then 2, 4...
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = [_gf2_times(even, even[i]) for i in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


@functools.lru_cache(maxsize=16)
def _run(fill: int, size: int) -> tuple[bytes, int]:
    """A raw deflate stream (final block included) of `size` bytes of `fill`, and their CRC-32.

    The run is cut in 1 MiB blocks compressed after a full flush, so every block compresses to the same bytes:
    the stream repeats them (about 1 KB per MiB) and the CRC doubles up, never holding the data."""
    block = 1 * MiB
    chunk = bytes([fill]) * block
    blocks, rest = divmod(size, block)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH) if blocks else b""
    tail = compressor.compress(chunk[:rest]) + compressor.flush()
    crc, chunk_crc, span = 0, zlib.crc32(chunk), 1  # crc of `blocks` chunks by binary doubling
    run_crc, n = chunk_crc, blocks
    while n:
        if n & 1:
            crc = crc32_combine(crc, run_crc, span * block)
        run_crc = crc32_combine(run_crc, run_crc, span * block)
        span *= 2
        n >>= 1
    return one * blocks + tail, crc32_combine(crc, zlib.crc32(chunk[:rest]), rest)


def deflated_run(prefix: bytes, fill: int, size: int) -> tuple[bytes, int]:
    """A raw deflate stream of `prefix` followed by `size` bytes of value `fill`, and the CRC-32 of it all
    (the prefix compressed and flushed, then the cached run: a 3 GiB member costs 3 MB and no 3 GiB buffer)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    run, run_crc = _run(fill, size)
    return head + run, crc32_combine(zlib.crc32(prefix), run_crc, size)


def bomb_member(name: str, size: int, *, prefix: bytes = b"", fill: int = 0) -> Member:
    """An honest entry of `prefix` plus `size` bytes of `fill`, compressed about 1000:1."""
    stream, crc = deflated_run(prefix, fill, size)
    return Member(name, stream, 8, crc, len(prefix) + size)


def _program_members(base: Base) -> list[Member]:
    with zipfile.ZipFile(base.program) as archive:
        return [member(name, archive.read(name)) for name in archive.namelist()]


def _replace(members: list[Member], new: Member, at: str | None = None) -> list[Member]:
    target = new.name if at is None else at
    return [new if m.name == target else m for m in members]


def _array_names(members: list[Member]) -> list[str]:
    return sorted(m.name for m in members if m.name.startswith("arrays/"))


def _read(members: list[Member], name: str) -> bytes:
    m = next(m for m in members if m.name == name)
    return zlib.decompress(m.payload, -15) if m.method == 8 else m.payload


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# --------------------------------------------------------------------------- bombs
BOMB_SIZES = (256 * MiB, 1 * GiB, 3 * GiB)
"""How far a bomb member inflates: within any memory limit, a few GiB (the issue's 3 GiB model.onnx)."""


def program_bomb(base: Base, rnd: random.Random) -> tuple[str, bytes, frozenset[int]]:
    """A Program with one member that inflates to `BOMB_SIZES`; what, the file, the statuses allowed."""
    members = _program_members(base)
    size = rnd.choice(BOMB_SIZES)
    target = rnd.choice(["model", "model_unhashed", "array", "array_trailing", "program_json", "chip_json",
                         "extra_member"])
    refuse, lenient = frozenset({3}), frozenset({0, 3})
    if target in ("model", "model_unhashed"):
        members = _replace(members, bomb_member("model.onnx", size, prefix=_read(members, "model.onnx")))
        if target == "model_unhashed":  # no digest to check: the model itself must be bounded
            header = json.loads(_read(members, "program.json"))
            header["model"]["sha256"] = None
            members = _replace(members, member("program.json", json.dumps(header).encode()))
        return f"{target}:{size}", raw_zip(members), refuse
    if target in ("array", "array_trailing"):
        name = rnd.choice(_array_names(members))
        old = np.load(io.BytesIO(_read(members, name)), allow_pickle=False)
        if target == "array":  # a valid .npy of zeros far larger than the layer's block
            header = npy_header_only((size // old.dtype.itemsize,), old.dtype.str)
            return f"array:{name}:{size}", raw_zip(_replace(members, bomb_member(name, size, prefix=header))), refuse
        new = bomb_member(name, size, prefix=_npy(old))  # the right array, then GiBs that np.load never reads
        return f"array_trailing:{name}:{size}", raw_zip(_replace(members, new)), lenient
    if target in ("program_json", "chip_json"):
        name = target.replace("_", ".")
        new = bomb_member(name, size, prefix=_read(members, name), fill=ord(" "))  # JSON allows trailing spaces
        return f"{target}:{size}", raw_zip(_replace(members, new)), lenient
    return f"extra_member:{size}", raw_zip([*members, bomb_member("junk.bin", size)]), lenient


def data_bomb(base: Base, rnd: random.Random) -> tuple[str, bytes, frozenset[int]]:
    """An .npz whose x or y inflates to GiBs: over the 2 GiB data limit, or within it but the wrong shape."""
    with np.load(base.data) as loaded:
        x, y = loaded["x"], loaded["y"]
    choice = rnd.choice(["x_over_limit", "y_over_limit", "x_wrong_features", "y_too_long", "x_wrong_dtype"])
    features = int(np.prod(x.shape[1:]))
    if choice == "x_over_limit":
        rows = (2 * GiB + 64 * MiB) // (4 * features)
        xm = bomb_member("x.npy", rows * features * 4, prefix=npy_header_only((rows, *x.shape[1:])))
        ym = member("y.npy", _npy(y))
    elif choice == "y_over_limit":
        rows = (2 * GiB + 64 * MiB) // 8
        xm = member("x.npy", _npy(x))
        ym = bomb_member("y.npy", rows * 8, prefix=npy_header_only((rows,), "<i8"))
    elif choice == "x_wrong_features":  # 1.5 GiB the model cannot take: read, then refused
        rows = (3 * GiB // 2) // (4 * (features + 1))
        xm = bomb_member("x.npy", rows * (features + 1) * 4, prefix=npy_header_only((rows, features + 1)))
        ym = bomb_member("y.npy", rows * 8, prefix=npy_header_only((rows,), "<i8"))
    elif choice == "y_too_long":
        rows = GiB // 8
        xm = member("x.npy", _npy(x))
        ym = bomb_member("y.npy", rows * 8, prefix=npy_header_only((rows,), "<i8"))
    else:  # complex128 x: 16 bytes a value, a dtype leac refuses
        rows = GiB // (16 * features)
        xm = bomb_member("x.npy", rows * features * 16, prefix=npy_header_only((rows, *x.shape[1:]), "<c16"))
        ym = bomb_member("y.npy", rows * 8, prefix=npy_header_only((rows,), "<i8"))
    return choice, raw_zip([xm, ym]), frozenset({3})


# --------------------------------------------------------------------------- declared-size lies
def _size_lie(m: Member, data: bytes, rnd: random.Random) -> tuple[str, Member]:
    """The same entry with a lie about its sizes (and maybe a CRC that matches the lie)."""
    choice = rnd.choice(["smaller", "smaller_crc_ok", "larger", "huge", "huge_zip64", "compress_smaller",
                         "compress_larger", "stored_larger"])
    if choice == "smaller":
        return choice, Member(m.name, m.payload, m.method, m.crc, rnd.randrange(len(data)))
    if choice == "smaller_crc_ok":  # zipfile then returns a silently truncated entry
        cut = rnd.randrange(len(data))
        return choice, Member(m.name, m.payload, m.method, zlib.crc32(data[:cut]), cut)
    if choice == "larger":
        return choice, Member(m.name, m.payload, m.method, m.crc, len(data) + rnd.choice([1, 100, 10**6]))
    if choice in ("huge", "huge_zip64"):
        return choice, Member(m.name, m.payload, m.method, m.crc, 2**31 if choice == "huge" else 2**40)
    if choice == "compress_smaller":
        return choice, Member(m.name, m.payload, m.method, m.crc, m.file_size, rnd.randrange(len(m.payload)))
    if choice == "compress_larger":
        return choice, Member(m.name, m.payload, m.method, m.crc, m.file_size, len(m.payload) + 64)
    return choice, Member(m.name, data, 0, m.crc, m.file_size + 1000, len(data) + 1000)


def program_size_lie(base: Base, rnd: random.Random) -> tuple[str, bytes, frozenset[int]]:
    """A Program that lies about sizes: zip fields, .npy headers, duplicate names or shared references."""
    members = _program_members(base)
    choice = rnd.choice(["zip_sizes", "zip_sizes", "npy_huge_shape", "npy_shape_lie", "duplicate",
                         "references"])
    refuse, lenient = frozenset({3}), frozenset({0, 3})
    if choice == "zip_sizes":  # zipfile checks the CRC, not the length: a reader may get the real data (0)
        name = rnd.choice([m.name for m in members])
        lie, new = _size_lie(next(m for m in members if m.name == name), _read(members, name), rnd)
        return f"zip_{lie}:{name}", raw_zip(_replace(members, new)), lenient
    name = rnd.choice(_array_names(members))
    old = np.load(io.BytesIO(_read(members, name)), allow_pickle=False)
    if choice == "npy_huge_shape":
        shape = rnd.choice([(2**40,), (2**31, 2**31), (10**9, 64), (2**62,), (*old.shape[:-1], 2**40)])
        return f"npy_huge_shape:{name}:{shape}", raw_zip(_replace(members, member(
            name, npy_header_only(shape, old.dtype.str)))), refuse
    if choice == "npy_shape_lie":  # the header declares a bit more or less than the data holds
        shape = tuple(d + rnd.choice([-1, 1, 1000]) for d in old.shape) or (2,)
        blob = npy_header_only(tuple(max(d, 0) for d in shape), old.dtype.str) + old.tobytes()
        return f"npy_shape_lie:{name}:{shape}", raw_zip(_replace(members, member(name, blob))), refuse
    if choice == "duplicate":
        huge = member(name, npy_header_only((2**40,), old.dtype.str))
        variant = rnd.choice(["huge_first", "huge_last", "no_suffix", "json_twice"])
        if variant == "huge_first":
            members = [huge, *members]
        elif variant == "huge_last":
            members = [*members, huge]
        elif variant == "no_suffix":  # arrays/NAME (huge) next to arrays/NAME.npy
            members = [*members, member(name.removesuffix(".npy"), npy_header_only((2**40,), old.dtype.str))]
        else:
            members = [*members, member("program.json", b"{}")]
        return f"duplicate_{variant}:{name}", raw_zip(members), lenient
    return _shared_references(members, rnd)


def _shared_references(members: list[Member], rnd: random.Random) -> tuple[str, bytes, frozenset[int]]:
    """Thousands of copies (or every reference) naming one array: the checks must come before the work."""
    header = json.loads(_read(members, "program.json"))
    layer = rnd.choice(header["layers"])
    block = rnd.choice(layer["blocks"])
    count = rnd.choice([1000, 30_000, 300_000])
    if rnd.random() < 0.5:
        block["copies"] = [block["copies"][0]] * count
        what = f"copies:{layer['name']}:{count}"
    else:  # every block of the layer repeated: each names the same targets, copies and selection
        layer["blocks"] = [block] * (count // 10)
        what = f"blocks:{layer['name']}:{count // 10}"
    text = json.dumps(header).encode()
    return f"references_{what}", raw_zip(_replace(members, member("program.json", text))), frozenset({3})


def data_size_lie(base: Base, rnd: random.Random) -> tuple[str, bytes, frozenset[int]]:
    """An .npz that lies: zip fields, a header larger than its entry, `x` next to `x.npy`, a name twice."""
    with np.load(base.data) as loaded:
        x, y = loaded["x"], loaded["y"]
    xm, ym = member("x.npy", _npy(x)), member("y.npy", _npy(y))
    choice = rnd.choice(["zip_sizes", "zip_sizes", "header_over_entry", "x_and_x_npy", "twice", "huge_header_small"])
    if choice == "zip_sizes":
        which = rnd.choice([0, 1])
        lie, new = _size_lie((xm, ym)[which], _npy((x, y)[which]), rnd)
        return f"zip_{lie}:{'xy'[which]}", raw_zip([new, ym] if which == 0 else [xm, new]), frozenset({0, 3})
    if choice == "header_over_entry":  # declares 4x the samples, holds the original data
        blob = npy_header_only((len(x) * 4, *x.shape[1:])) + x.tobytes()
        return choice, raw_zip([member("x.npy", blob), ym]), frozenset({3})
    if choice == "x_and_x_npy":  # the bypass: the check reads x.npy, np.load reads x
        huge = bomb_member("x", 3 * GiB, prefix=npy_header_only((3 * GiB // (4 * x[0].size), *x.shape[1:])))
        order = [huge, xm, ym] if rnd.random() < 0.5 else [xm, huge, ym]
        return choice, raw_zip(order), frozenset({3})
    if choice == "twice":  # two entries named x.npy, the first or the second huge
        huge = bomb_member("x.npy", 3 * GiB, prefix=npy_header_only((3 * GiB // (4 * x[0].size), *x.shape[1:])))
        return choice, raw_zip([huge, xm, ym] if rnd.random() < 0.5 else [xm, huge, ym]), frozenset({3})
    rows = rnd.choice([2**40, 10**9, 2**62 // 8])
    return f"huge_header_small:{rows}", raw_zip([member("x.npy", npy_header_only((rows, *x.shape[1:]))), ym]), \
        frozenset({3})


def chip_size_lie(rnd: random.Random) -> tuple[str, bytes, frozenset[int]]:
    """A tiny chip file declaring a huge chip (the issue's 90-byte files), or many whole-row defects."""
    count, rows, cols = rnd.choice([(14, 8192, 8192), (10**6, 1, 1000), (1, 8192, 8192), (1000, 1024, 1024),
                                    (2**20, 1, 1), (10**6, 1, 1), (64, 4096, 4096), (1, 1, 2**26)])
    document: dict[str, Any] = {"format": "leac-chip", "version": 1,
                                "arrays": {"count": count, "rows": rows, "cols": cols}}
    what = f"{count}x{rows}x{cols}"
    if rnd.random() < 0.3 and rows > 1:
        document["defects"] = [{"array": a, "row": r, "state": "stuck_high"}
                               for a in range(min(count, 4)) for r in range(0, rows, max(rows // 2000, 1))]
        what += f"+{len(document['defects'])}_row_defects"
    return what, json.dumps(document).encode(), frozenset({0, 3, 4})


def _tiny_model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto,
                initializers: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hostile", inputs, [output], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def onnx_size_lie(base: Base, folder: Path, rnd: random.Random) -> tuple[str, bytes, frozenset[int]]:
    """An ONNX model declaring more than it holds, or whose intermediates explode (a few hundred bytes)."""
    f = TensorProto.FLOAT
    choice = rnd.choice(["conv_pads", "maxpool_pads", "concat_doubling", "dims_lie", "external_sparse",
                         "external_offset"])
    if choice == "conv_pads":
        pad = rnd.choice([2000, 20_000])
        w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "W")
        model = _tiny_model([helper.make_node("Conv", ["x", "W"], ["y"], pads=[pad] * 4, name="conv")],
                            [helper.make_tensor_value_info("x", f, [1, 1, 8, 8])],
                            helper.make_tensor_value_info("y", f, None), [w])
        return f"conv_pads:{pad}", model.SerializeToString(), frozenset({3})
    if choice == "maxpool_pads":
        pad = rnd.choice([3000, 30_000])
        w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "W")
        model = _tiny_model([helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], pads=[pad] * 4,
                                              name="pool"),
                             helper.make_node("Conv", ["p", "W"], ["y"], name="conv")],
                            [helper.make_tensor_value_info("x", f, [1, 1, 8, 8])],
                            helper.make_tensor_value_info("y", f, None), [w])
        return f"maxpool_pads:{pad}", model.SerializeToString(), frozenset({3})
    if choice == "concat_doubling":
        depth = rnd.choice([20, 30])
        nodes = [helper.make_node("Concat", [f"c{i}", f"c{i}"], [f"c{i + 1}"], axis=1, name=f"cat{i}")
                 for i in range(depth)]
        w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
        nodes.insert(0, helper.make_node("Identity", ["x"], ["c0"], name="id"))
        nodes.append(helper.make_node("MatMul", [f"c{depth}", "W"], ["y"], name="mm"))
        model = _tiny_model(nodes, [helper.make_tensor_value_info("x", f, [1, 4])],
                            helper.make_tensor_value_info("y", f, None), [w])
        return f"concat_doubling:{depth}", model.SerializeToString(), frozenset({3})
    model = onnx.load(str(base.model))
    init = rnd.choice(list(model.graph.initializer))
    if choice == "dims_lie":  # dims declaring 2^40 elements over the real raw_data
        array = numpy_helper.to_array(init)
        del init.dims[:]
        init.dims.extend([2**20, 2**20] if rnd.random() < 0.5 else [array.size * 1000])
        init.raw_data = array.astype(np.float32).tobytes()
        del init.float_data[:]
        return f"dims_lie:{init.name}", model.SerializeToString(), frozenset({3})
    array = numpy_helper.to_array(init)
    data_file = folder / "weights.bin"
    with open(data_file, "wb") as handle:  # sparse: 4 GiB declared, nothing on disk
        handle.write(array.tobytes())
        handle.truncate(4 * GiB)
    init.ClearField("raw_data")
    del init.float_data[:]
    init.data_location = TensorProto.EXTERNAL
    entries = {"location": "weights.bin"}
    if choice == "external_offset":
        entries.update(offset=str(rnd.choice([0, 4 * GiB - 16, 2**40])), length=str(rnd.choice([16, 4 * GiB])))
    for key, value in entries.items():
        init.external_data.add(key=key, value=value)
    # offset 0 and the tensor's own length is valid data (the sparse rest of the file unread): 0 or 3
    return f"{choice}:{init.name}:{entries}", model.SerializeToString(), frozenset({0, 3})


# --------------------------------------------------------------------------- special files
def can_make_devices() -> bool:
    """Whether this process may create character devices (root, or CAP_MKNOD)."""
    return hasattr(os, "mknod") and os.geteuid() == 0


def make_special(path: Path, kind: str) -> str:
    """Create `path` as `kind` (fifo, socket, dir, dev_NAME, link_dev_NAME, link_fifo, loop, dangling);
    returns the kind made (a FIFO stands in for a device when this process may not create one)."""
    if kind.startswith(("dev_", "link_dev_")) and not can_make_devices():
        kind = kind.replace("link_dev_", "link_fifo_").replace("dev_", "fifo_")
    if kind.startswith("fifo"):
        os.mkfifo(path)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:  # bound relative to the folder: no path-length limit
            cwd = os.getcwd()
            os.chdir(path.parent)
            try:
                sock.bind(path.name)
            finally:
                os.chdir(cwd)
    elif kind == "dir":
        path.mkdir()
    elif kind.startswith("dev_"):
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*CHAR_DEVICES[kind[4:]]))
    elif kind.startswith("link_"):
        node = path.with_name(f"{path.name}.node")
        make_special(node, kind[5:])
        path.symlink_to(node.name)
    elif kind == "loop":
        path.symlink_to(path.name)
    else:  # dangling
        path.symlink_to("nowhere/at/all")
    return kind


INPUT_KINDS = ("fifo", "dev_zero", "dev_null", "dev_urandom", "link_dev_zero", "link_fifo", "dir", "loop",
               "socket")
OUTPUT_KINDS = ("fifo", "dev_null", "dev_full", "link_dev_null", "link_fifo", "socket", "dir", "missing_folder",
                "through_file", "same_as_input", "link_to_input", "hardlink_to_input", "roundabout_input")


def special_input(path: Path, rnd: random.Random) -> str:
    """Make the reader's input `path` a special file of a random kind; returns the kind."""
    return make_special(path, rnd.choice(INPUT_KINDS))


def output_path(folder: Path, default: Path, an_input: Path, rnd: random.Random) -> tuple[str, Path, frozenset[int]]:
    """A hostile `-o` path in `folder` (made there); `an_input` is one of the command's inputs, in `folder`.

    Returns what it is, the path, and the statuses allowed: a refusal (2 or 3), or for a device node that
    discards writes, a write-through (0) that leaves the node a device.
    """
    kind = rnd.choice(OUTPUT_KINDS)
    refuse = frozenset({2, 3})
    if kind == "missing_folder":
        return kind, folder / "missing" / default.name, refuse
    if kind == "through_file":
        return kind, an_input / default.name, refuse
    if kind == "same_as_input":
        return kind, an_input, refuse
    if kind == "roundabout_input":
        (folder / "sub").mkdir()
        return kind, folder / "sub" / ".." / an_input.name, refuse
    if kind in ("link_to_input", "hardlink_to_input"):  # replacing the link itself would leave the input intact
        if kind == "link_to_input":
            default.symlink_to(an_input.name)
        else:
            os.link(an_input, default)
        return kind, default, frozenset({0, 2, 3})
    made = make_special(default, kind)
    return made, default, frozenset({0, 2, 3}) if made in ("dev_null", "link_dev_null") else refuse
