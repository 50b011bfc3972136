"""Corrupted input files for the fuzz cases of tests/test_fuzz.py and bench_fuzz.py (the case class `corrupt`).

Every case takes a valid file for one reader, corrupts it with a seeded
`random.Random` (hypothesis hands the tests a `st.randoms()` one, so that a
failure shrinks; the benchmark uses `random.Random(seed)`), runs one `leac`
command on it and checks the contract of issue 6 (see docs/reports.md, "Exit
statuses"; tests/fuzzing_run.py runs and checks, tests/fuzzing_hostile.py
builds the hostile files of issue 13):

- no traceback, and no status 1 from an uncaught exception;
- the status is one the reader allows (`ALLOWED`): 3 for invalid input, 0 when
  the corruption happened to leave a valid file (a bit flip in a float
  weight), and 4 (does not fit) for commands that compile;
- a failure prints a `leac: error:` message on stderr and leaves no output
  file and no temporary file; a success leaves a complete, valid output and
  prints a complete JSON report.

The readers and the commands each corrupted file goes through:

    onnx     leac compile MODEL --chip GOOD (greedy placer), or leac inspect MODEL --json
    chip     leac compile GOOD --chip CHIP, leac chip validate CHIP, or leac chip show CHIP --json
    data     leac simulate GOOD.leac --data DATA --json, or leac compile GOOD --calibrate DATA
    program  leac emit PROGRAM -o OUT --json, or leac simulate PROGRAM --data GOOD --json
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import random
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lea_compiler.chip import chip_to_text, parse_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.errors import InvalidInputError
from tests.helpers import archive_entries as _zip_entries
from tests.helpers import cnn_model, mlp_model
from tests.helpers import zip_archive as _zip_bytes

READERS = ("onnx", "chip", "data", "program")

ALLOWED = {
    "onnx": {0, 3, 4},
    "chip": {0, 3, 4},
    "data": {0, 3},
    "program": {0, 3},
}
"""Exit statuses each reader may give for a corrupted file. A valid ONNX model that leac cannot compile
would be a clean `CompileError` (status 1 without a traceback); no corruption produced one, so 1 is not
allowed for any reader: every damaged input is an invalid input (3)."""

SAMPLES = 24
INPUTS = 4


@dataclass(frozen=True)
class Base:
    """One valid model with its data set and its compiled Program."""

    model: Path
    data: Path
    program: Path


@dataclass(frozen=True)
class Bases:
    """The valid files every case starts from, in `folder`: an MLP and a CNN, and one chip for both."""

    folder: Path
    chip: Path
    mlp: Base
    cnn: Base

    def pick(self, rnd: random.Random) -> Base:
        """The MLP three times in four (its cases are faster), else the CNN."""
        return self.mlp if rnd.random() < 0.75 else self.cnn


COMPILE_FLAGS = ("-k", "2", "--placer", "greedy", "--encoding", "simple")
"""How every fuzz case compiles: fast; and greedy packs the CNN on the crowded fuzz chip with simple's costs,
not with joint's discounted ones (it then finds no free region for the last copy)."""


def make_bases(folder: Path) -> Bases:
    """Write a 4-12-6-3 tanh MLP and a small CNN (Conv, BatchNormalization, pooling), a 12-array chip with
    stuck devices and dead rows, a data set for each model and each model's Program (k = 2, greedy)."""
    folder.mkdir(parents=True, exist_ok=True)
    chip = folder / "chip.json"
    chip.write_text(chip_to_text(synth_chip(arrays=12, rows=16, cols=16, stuck_high=0.05, stuck_low=0.02,
                                            dead_rows=0.02, seed=5, name="fuzz")))
    rng = np.random.default_rng(0)
    bases = []
    for name, model, shape, classes in (("mlp", mlp_model((INPUTS, 12, 6, 3)), (INPUTS,), 3),
                                        ("cnn", cnn_model(), (1, 8, 8), 10)):
        base = Base(folder / f"{name}.onnx", folder / f"{name}.npz", folder / f"{name}.leac")
        onnx.save(model, base.model)
        np.savez(base.data, x=rng.standard_normal((SAMPLES, *shape)).astype(np.float32),
                 y=rng.integers(0, classes, SAMPLES).astype(np.int64))
        with _quiet():
            status = main(["compile", str(base.model), "--chip", str(chip), *COMPILE_FLAGS, "-o", str(base.program)])
        assert status == 0, f"the base {name} Program must compile"
        bases.append(base)
    return Bases(folder, chip, *bases)


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# --------------------------------------------------------------------------- byte-level corruptions
def corrupt_bytes(data: bytes, rnd: random.Random) -> tuple[str, bytes]:
    """Truncate, flip bits, overwrite, insert or delete bytes."""
    kind = rnd.choice(["truncate", "bit_flip", "bit_flips", "overwrite", "insert", "delete", "empty_or_tiny"])
    n = len(data)
    if kind == "truncate":
        return kind, data[: rnd.randrange(0, max(n, 1))]
    if kind in ("bit_flip", "bit_flips"):
        out = bytearray(data)
        for _ in range(1 if kind == "bit_flip" else rnd.randint(2, 16)):
            i = rnd.randrange(n)
            out[i] ^= 1 << rnd.randrange(8)
        return kind, bytes(out)
    if kind == "overwrite":
        i = rnd.randrange(n)
        length = rnd.randint(1, 32)
        return kind, data[:i] + rnd.randbytes(length) + data[i + length:]
    if kind == "insert":
        i = rnd.randrange(n + 1)
        return kind, data[:i] + rnd.randbytes(rnd.randint(1, 32)) + data[i:]
    if kind == "delete":
        i = rnd.randrange(n)
        return kind, data[:i] + data[i + rnd.randint(1, 64):]
    return kind, data[: rnd.randint(0, 3)]


# --------------------------------------------------------------------------- JSON corruptions
_ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1, 2, 7, 10**30, -(10**30), 0.5, -0.0, 1e308, -1e308, 1e-320,
                          "", "x", "nan", "stuck_high", [], [0], [[1, 2]], {}, {"a": 1}, "\u00e9\u0000"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node[:12]):  # long lists: their head is enough
            out.extend(_paths(value, (*prefix, i)))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


def _odd_value(old: Any, rnd: random.Random) -> Any:
    if isinstance(old, bool) or not isinstance(old, int | float) or rnd.random() < 0.5:
        return copy.deepcopy(rnd.choice(_ODD_VALUES))
    return rnd.choice([old + 1, old - 1, -old, old * 10, old * 1000, 0, type(old)(old) / 3])


def corrupt_json(document: Any, rnd: random.Random) -> tuple[str, Any]:
    """One structural change at a random place: delete, retype, change a number, duplicate, add a key."""
    doc = copy.deepcopy(document)
    paths = [p for p in _paths(doc) if p]
    path = rnd.choice(paths)
    parent, key = _get(doc, path[:-1]), path[-1]
    kind = rnd.choice(["delete", "retype", "retype", "number", "duplicate", "add_key", "nest"])
    if kind == "delete":
        del parent[key]
    elif kind in ("retype", "number"):
        parent[key] = _odd_value(parent[key], rnd)
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif kind == "nest":
        parent[key] = [parent[key]]
    elif isinstance(parent, dict):
        parent[f"unknown_{rnd.randrange(100)}"] = copy.deepcopy(rnd.choice(_ODD_VALUES))
    else:
        parent.append(copy.deepcopy(rnd.choice(_ODD_VALUES)))
    return f"json_{kind}:{'/'.join(map(str, path))}", doc


# --------------------------------------------------------------------------- ONNX corruptions
def _onnx_semantic(model: onnx.ModelProto, rnd: random.Random) -> str:
    """Change the model in place; returns what was done."""
    g = model.graph
    kind = rnd.choice(["opset", "opset", "ir_version", "drop_initializer", "initializer_dims", "weights",
                       "weights", "initializer_type", "input_shape", "input_shape", "input_type", "drop_node",
                       "op_type", "node_input", "attribute", "outputs", "rename_output", "duplicate_node"])
    if kind == "opset":
        version = rnd.choice([0, 1, 6, 7, 9, 11, 12, 13, 15, 18, 21, 23, 99, -3])
        if rnd.random() < 0.15:
            del model.opset_import[:]
        elif model.opset_import:
            model.opset_import[0].version = version
        else:
            model.opset_import.add().version = version
        return f"opset:{version}"
    if kind == "ir_version":
        model.ir_version = rnd.choice([0, 1, 3, 4, 7, 10, 11, 99])
        return f"ir_version:{model.ir_version}"
    inits = list(g.initializer)
    if kind == "drop_initializer":
        victim = rnd.choice(inits)
        g.initializer.remove(victim)
        return f"drop_initializer:{victim.name}"
    if kind == "initializer_dims":
        init = rnd.choice(inits)
        dims = list(init.dims)
        i = rnd.randrange(len(dims))
        dims[i] = rnd.choice([0, 1, dims[i] + 1, dims[i] - 1, 10**6, 2**40])
        if rnd.random() < 0.2:
            dims.append(rnd.choice([0, 1, 2]))
        del init.dims[:]
        init.dims.extend(max(d, 0) for d in dims)
        return f"initializer_dims:{init.name}:{dims}"
    if kind == "weights":
        init = rnd.choice(inits)
        try:
            w = numpy_helper.to_array(init).copy()
        except Exception:  # an earlier change broke this initializer (onnx raises KeyError, TypeError...)
            return "weights:unreadable"
        value = rnd.choice([math.nan, math.inf, -math.inf, 3e38, -3e38, 1e-45, 0.0, 1e20])
        if rnd.random() < 0.3:
            w[...] = value
        else:
            w.flat[rnd.randrange(w.size)] = value
        init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
        return f"weights:{init.name}:{value}"
    if kind == "initializer_type":
        init = rnd.choice(inits)
        init.data_type = rnd.choice([TensorProto.DOUBLE, TensorProto.INT64, TensorProto.FLOAT16, TensorProto.STRING,
                                     TensorProto.BOOL, 0, 99])
        return f"initializer_type:{init.name}:{init.data_type}"
    if kind == "input_shape":
        dims = g.input[0].type.tensor_type.shape.dim
        while len(dims) < 2:  # an earlier change dropped the shape or a dimension
            dims.add().dim_value = INPUTS
        choice = rnd.choice(["zero", "zero_batch", "param", "unset", "huge", "extra", "drop_shape", "drop_dim"])
        if choice == "zero":
            dims[1].dim_value = 0
        elif choice == "zero_batch":
            dims[0].dim_value = 0
        elif choice == "param":
            dims[1].dim_param = "features"
        elif choice == "unset":
            dims[1].Clear()
        elif choice == "huge":
            dims[rnd.randrange(2)].dim_value = rnd.choice([10**9, 2**40, 2**62])
        elif choice == "extra":
            dims.add().dim_value = rnd.choice([0, 1, 3])
        elif choice == "drop_shape":
            g.input[0].type.tensor_type.ClearField("shape")
        else:
            del dims[1]
        return f"input_shape:{choice}"
    if kind == "input_type":
        g.input[0].type.tensor_type.elem_type = rnd.choice([TensorProto.INT64, TensorProto.DOUBLE, TensorProto.STRING,
                                                            TensorProto.FLOAT16, TensorProto.BOOL, 0])
        return f"input_type:{g.input[0].type.tensor_type.elem_type}"
    nodes = list(g.node)
    node = rnd.choice(nodes)
    if kind == "drop_node":
        g.node.remove(node)
        return f"drop_node:{node.name}"
    if kind == "op_type":
        node.op_type = rnd.choice(["MatMul", "Conv", "Relu", "Softmax", "Add", "Reshape", "Foo", "", "LSTM",
                                   "BatchNormalization", "Flatten", "Concat"])
        return f"op_type:{node.name}:{node.op_type}"
    if kind == "node_input":
        if node.input:
            i = rnd.randrange(len(node.input))
            node.input[i] = rnd.choice(["", "missing", node.output[0], g.input[0].name, inits[0].name])
        return f"node_input:{node.name}"
    if kind == "attribute":
        if node.attribute and rnd.random() < 0.5:
            del node.attribute[rnd.randrange(len(node.attribute))]
            return f"attribute_drop:{node.name}"
        name = rnd.choice(["transA", "transB", "alpha", "axis", "beta", "junk", "pads", "strides", "kernel_shape",
                           "dilations", "group", "epsilon", "auto_pad", "keepdims", "perm", "ceil_mode"])
        value = rnd.choice([0, 1, 5, -7, 0.0, 2.5, -1e30, math.nan, "s", "SAME_UPPER", [1, 2], [0, 0], [-1, 3],
                            [1, 1, 1, 1], [0, 0, 9, 9], [2**40, 1], [3, 2, 1, 0]])
        for existing in [a for a in node.attribute if a.name == name]:
            node.attribute.remove(existing)
        node.attribute.append(helper.make_attribute(name, value))
        return f"attribute:{node.name}:{name}={value}"
    if kind == "outputs":
        if rnd.random() < 0.5:
            del g.output[:]
        else:
            g.output.add().CopyFrom(helper.make_tensor_value_info(rnd.choice(["h0", "nope"]), TensorProto.FLOAT, None))
        return "outputs"
    if kind == "rename_output":
        node.output[0] = rnd.choice(["x", "W0", "y2", node.input[0] if node.input else "z"])
        return f"rename_output:{node.name}"
    g.node.insert(rnd.randrange(len(nodes) + 1), copy.deepcopy(node))
    return f"duplicate_node:{node.name}"


def corrupt_onnx(base: Base, rnd: random.Random) -> tuple[str, bytes]:
    if rnd.random() < 0.4:
        return corrupt_bytes(base.model.read_bytes(), rnd)
    model = onnx.load(str(base.model))
    done = [_onnx_semantic(model, rnd) for _ in range(rnd.choice([1, 1, 1, 2, 3]))]
    return "+".join(done), model.SerializeToString()


# --------------------------------------------------------------------------- chip corruptions
def corrupt_chip(chip: Path, rnd: random.Random) -> tuple[str, bytes]:
    text = chip.read_bytes()
    if rnd.random() < 0.4:
        return corrupt_bytes(text, rnd)
    document = json.loads(text)
    kinds = []
    for _ in range(rnd.choice([1, 1, 2, 3])):
        kind, document = corrupt_json(document, rnd)
        kinds.append(kind)
    allow_nan = rnd.random() < 0.1
    try:
        out = json.dumps(document, allow_nan=allow_nan).encode()
    except ValueError:
        out = json.dumps(document, allow_nan=True).encode()
    return "+".join(kinds), out


# --------------------------------------------------------------------------- data corruptions
def _npz(arrays: dict[str, Any], *, compressed: bool = False, pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        for key, value in arrays.items():
            npy = io.BytesIO()
            np.save(npy, value, allow_pickle=pickle)
            z.writestr(f"{key}.npy", npy.getvalue())
    return buffer.getvalue()


def npy_header_only(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """The bytes of an .npy file that declares `shape` but holds no data (a crafted, tiny 'huge' array)."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}".encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def corrupt_data(base: Base, rnd: random.Random) -> tuple[str, bytes]:
    raw = base.data.read_bytes()
    with np.load(base.data) as loaded:
        x, y = loaded["x"], loaded["y"]
    kind = rnd.choice(["bytes", "bytes", "keys", "dtype", "dtype", "shape", "shape", "values", "labels", "pickle",
                       "huge_header", "not_npz", "compressed_bytes", "entries", "layout"])
    if kind == "bytes":
        name, out = corrupt_bytes(raw, rnd)
        return f"bytes_{name}", out
    if kind == "compressed_bytes":
        name, out = corrupt_bytes(_npz({"x": x, "y": y}, compressed=True), rnd)
        return f"compressed_{name}", out
    arrays: dict[str, Any] = {"x": x, "y": y}
    if kind == "keys":
        choice = rnd.choice(["drop_x", "drop_y", "rename", "extra", "none"])
        if choice == "drop_x":
            del arrays["x"]
        elif choice == "drop_y":
            del arrays["y"]
        elif choice == "rename":
            arrays = {"X": x, "labels": y}
        elif choice == "extra":
            arrays["z"] = x
        else:
            arrays = {}
        return f"keys:{choice}", _npz(arrays)
    if kind == "dtype":
        key = rnd.choice(["x", "y"])
        dtype = rnd.choice(["float64", "float16", "int8", "int64", "uint8", "bool", "complex64", "U3", "S2",
                            "datetime64[s]", "V4", "f4,i4"])
        try:
            arrays[key] = arrays[key].astype(dtype)
        except (TypeError, ValueError):
            arrays[key] = np.zeros(arrays[key].shape, dtype)
        return f"dtype:{key}:{dtype}", _npz(arrays)
    if kind == "shape":
        choice = rnd.choice(["x_extra_feature", "x_1d", "x_3d", "x_scalar", "y_2d", "fewer_labels", "empty",
                             "x_fewer_features", "y_scalar"])
        if choice == "x_extra_feature":
            arrays["x"] = np.concatenate([x, x[:, :1]], axis=1)
        elif choice == "x_1d":
            arrays["x"] = x.ravel()
        elif choice == "x_3d":
            arrays["x"] = x[:, :, None]
        elif choice == "x_scalar":
            arrays["x"] = np.float32(1.0)
        elif choice == "y_2d":
            arrays["y"] = y[:, None]
        elif choice == "fewer_labels":
            arrays["y"] = y[:-1]
        elif choice == "empty":
            arrays = {"x": x[:0], "y": y[:0]}
        elif choice == "x_fewer_features":
            arrays["x"] = x[:, :2]
        else:
            arrays["y"] = np.int64(1)
        return f"shape:{choice}", _npz(arrays)
    if kind == "values":
        value = rnd.choice([math.nan, math.inf, -math.inf, 3e38, 1e-45, 0.0])
        out = x.copy()
        out.flat[rnd.randrange(out.size)] = value
        arrays["x"] = out
        return f"values:{value}", _npz(arrays)
    if kind == "labels":
        value = rnd.choice([-1, 3, 2**40, -(2**62)])
        out = y.copy()
        out[rnd.randrange(len(out))] = value
        arrays["y"] = out
        return f"labels:{value}", _npz(arrays)
    if kind == "entries":
        choice = rnd.choice(["no_suffix", "directory", "duplicate", "other_suffix"])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate name
            for key, value in arrays.items():
                npy = io.BytesIO()
                np.save(npy, value)
                name = {"no_suffix": key, "directory": f"d/{key}.npy", "duplicate": f"{key}.npy",
                        "other_suffix": f"{key}.npz"}[choice]
                z.writestr(name, npy.getvalue())
                if choice == "duplicate":
                    z.writestr(name, npy.getvalue()[: rnd.randrange(len(npy.getvalue()))])
        return f"entries:{choice}", buffer.getvalue()
    if kind == "layout":
        key = rnd.choice(["x", "y"])
        choice = rnd.choice(["big_endian", "fortran", "strided"])
        value = arrays[key]
        if choice == "big_endian":
            arrays[key] = value.astype(value.dtype.newbyteorder(">"))
        elif choice == "fortran":
            arrays[key] = np.asfortranarray(value)
        else:
            arrays[key] = np.repeat(value, 2, axis=0)[::2]
        return f"layout:{key}:{choice}", _npz(arrays)
    if kind == "pickle":
        key = rnd.choice(["x", "y"])
        arrays[key] = np.array([{"a": 1}, None, "s"], dtype=object)
        return f"pickle:{key}", _npz(arrays, pickle=True)
    if kind == "huge_header":
        shape = rnd.choice([(10**9, 64), (2**40, *x.shape[1:]), (SAMPLES, 2**40), (2**62, 2**62), (10**7, 64)])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("x.npy", npy_header_only(shape))
            npy = io.BytesIO()
            np.save(npy, y)
            z.writestr("y.npy", npy.getvalue())
        return f"huge_header:{shape}", buffer.getvalue()
    choice = rnd.choice(["npy", "text", "empty", "zip_of_text"])
    if choice == "npy":
        npy = io.BytesIO()
        np.save(npy, x)
        return "not_npz:npy", npy.getvalue()
    if choice == "text":
        return "not_npz:text", b"x,y\n1,2\n"
    if choice == "empty":
        return "not_npz:empty", b""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.npy", b"hello")
        z.writestr("y.npy", b"\x93NUMPY")
    return "not_npz:zip_of_text", buffer.getvalue()


# --------------------------------------------------------------------------- Program corruptions
def _odd_array(old: np.ndarray, rnd: random.Random) -> np.ndarray:
    choice = rnd.choice(["shape", "dtype", "values", "nan", "empty", "scalar", "transpose"])
    if choice == "shape":
        return np.resize(old, tuple(d + rnd.choice([-1, 1]) for d in old.shape) or (2,))
    if choice == "dtype":
        return old.astype(rnd.choice(["float64", "int64", "uint8", "bool", "float16", "complex64", "U2"]))
    if choice == "values":
        out = old.copy()
        if out.size:
            out.flat[rnd.randrange(out.size)] = rnd.choice([-128, 127, 100, -2, 1, 0]) if out.dtype.kind in "iu" \
                else rnd.choice([-1.0, 1e30, 0.0, 1e-30])
        return out
    if choice == "nan":
        return np.full(old.shape, math.nan)
    if choice == "empty":
        return np.zeros((0,) * max(old.ndim, 1), old.dtype)
    if choice == "scalar":
        return np.asarray(old.flat[0] if old.size else 0)
    return old.T.copy() if old.ndim == 2 else old[::-1].copy()


def corrupt_program(base: Base, rnd: random.Random) -> tuple[str, bytes]:
    raw = base.program.read_bytes()
    kind = rnd.choice(["bytes", "drop_entry", "json", "json", "json", "json", "array", "array", "chip", "chip",
                       "model", "model", "bounds"])
    if kind == "bounds":
        return _program_bound_attack(base, rnd)
    if kind == "bytes":
        name, out = corrupt_bytes(raw, rnd)
        return f"bytes_{name}", out
    entries = _zip_entries(raw)
    if kind == "drop_entry":
        victim = rnd.choice(sorted(entries))
        del entries[victim]
        return f"drop_entry:{victim}", _zip_bytes(entries)
    if kind == "json":
        header = json.loads(entries["program.json"])
        kinds = []
        for _ in range(rnd.choice([1, 1, 2])):
            name, header = corrupt_json(header, rnd)
            kinds.append(name)
        entries["program.json"] = json.dumps(header, allow_nan=True).encode()
        return "+".join(kinds), _zip_bytes(entries)
    if kind == "array":
        name = rnd.choice(sorted(n for n in entries if n.startswith("arrays/")))
        old = np.load(io.BytesIO(entries[name]), allow_pickle=False)
        new = _odd_array(old, rnd)
        npy = io.BytesIO()
        np.save(npy, new)
        entries[name] = npy.getvalue()
        return f"array:{name}:{new.dtype}{list(new.shape)}", _zip_bytes(entries)
    header = json.loads(entries["program.json"])
    if kind == "chip":  # half the time with the fingerprint made to match, so that the Program's checks see it
        document = json.loads(entries["chip.json"])
        name, document = corrupt_json(document, rnd)
        entries["chip.json"] = json.dumps(document, allow_nan=True).encode()
        if rnd.random() < 0.5:
            try:
                header["chip"]["fingerprint"] = parse_chip(document, "chip").fingerprint()
                entries["program.json"] = json.dumps(header).encode()
                name += "+refingerprinted"
            except InvalidInputError:
                pass
        return f"chip_{name}", _zip_bytes(entries)
    name, entries["model.onnx"] = corrupt_onnx(base, rnd)  # half the time with the sha256 made to match
    if rnd.random() < 0.5:
        header["model"]["sha256"] = hashlib.sha256(entries["model.onnx"]).hexdigest()
        header["model_bytes"] = len(entries["model.onnx"])
        entries["program.json"] = json.dumps(header).encode()
        name += "+rehashed"
    return f"model_{name}", _zip_bytes(entries)


def _program_bound_attack(base: Base, rnd: random.Random) -> tuple[str, bytes]:
    """Issue 13, items 5 and 6: a member inflating far past what the Program declares (16 MiB of zeros, a few
    kB compressed; with its size and sha256 recorded half the time), an .npy header declaring a huge shape,
    or many copies referencing one array."""
    entries = _zip_entries(base.program.read_bytes())
    header = json.loads(entries["program.json"])
    attack = rnd.choice(["bomb", "npy_shape", "copies"])
    if attack == "bomb":
        victim = rnd.choice(sorted(entries))
        entries[victim] = bytes(16 * 2**20)
        if victim == "model.onnx" and rnd.random() < 0.5:
            header["model"]["sha256"] = hashlib.sha256(entries[victim]).hexdigest()
            header["model_bytes"] = len(entries[victim])
            entries["program.json"] = json.dumps(header).encode()
        return f"bounds_bomb:{victim}", _zip_bytes(entries)
    if attack == "npy_shape":
        victim = rnd.choice(sorted(n for n in entries if n.startswith("arrays/")))
        dtype = np.load(io.BytesIO(entries[victim]), allow_pickle=False).dtype.str
        shape = rnd.choice([(2**40,), (2**20, 2**20), (2**62,), (3, 0, 2**40)])
        entries[victim] = npy_header_only(shape, dtype) + bytes(rnd.choice([0, 8, 64]))
        return f"bounds_npy:{victim}:{shape}", _zip_bytes(entries)
    layer = rnd.choice(header["layers"])
    block = rnd.choice(layer["blocks"])
    block["copies"] = [block["copies"][0]] * rnd.choice([layer["alpha"], 1000, 20_000])
    entries["program.json"] = json.dumps(header).encode()
    return f"bounds_copies:{len(block['copies'])}", _zip_bytes(entries)


def corrupt(reader: str, bases: Bases, base: Base, rnd: random.Random) -> tuple[str, bytes]:
    """A corrupted file for `reader`, made from `base`'s file (the chip: the shared chip file)."""
    if reader == "chip":
        return corrupt_chip(bases.chip, rnd)
    return {"onnx": corrupt_onnx, "data": corrupt_data, "program": corrupt_program}[reader](base, rnd)
