"""Small builders for test models, made inline with onnx.helper (tests never download)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RTOL = 1e-4
ATOL = 1e-5
"""Interpreter vs onnxruntime tolerance (float32 arithmetic in a different order)."""

TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(bool): TensorProto.BOOL,
}


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, tuple[Any, Sequence[int | str | None]]],
    outputs: Sequence[str | tuple[str, Any, Sequence[int | str | None]]],
    initializers: Mapping[str, np.ndarray] | None = None,
    opset: int = 17,
    ml_opset: int | None = None,
    name: str = "test",
) -> onnx.ModelProto:
    """A checked model: `inputs` maps name -> (numpy dtype, shape with "N" for the batch).

    Outputs are names (types from onnx shape inference) or (name, dtype, shape)
    where inference cannot give a shape.
    """
    graph = helper.make_graph(
        list(nodes),
        name,
        [helper.make_tensor_value_info(k, TYPES[np.dtype(t)], list(s)) for k, (t, s) in inputs.items()],
        [
            helper.make_empty_tensor_value_info(o)
            if isinstance(o, str)
            else helper.make_tensor_value_info(o[0], TYPES[np.dtype(o[1])], list(o[2]))
            for o in outputs
        ],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    imports = [helper.make_opsetid("", opset)]
    if ml_opset is not None:
        imports.append(helper.make_opsetid("ai.onnx.ml", ml_opset))
    model = helper.make_model(graph, opset_imports=imports, producer_name="leac-tests")
    model.ir_version = 8
    # Output types come from onnx's own shape inference, as exporters would write them.
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    known = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
    for out in model.graph.output:
        if not out.type.HasField("tensor_type"):
            out.type.CopyFrom(known[out.name].type)
    onnx.checker.check_model(model)
    return model


def random_feeds(
    model: onnx.ModelProto, batch: int = 5, seed: int = 0, scale: float = 1.0
) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input (symbolic dimensions get `batch`)."""
    rng = np.random.default_rng(seed)
    init_names = {i.name for i in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in inp.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.integer):
            feeds[inp.name] = rng.integers(-5, 6, size=dims).astype(dtype)
        else:
            feeds[inp.name] = (rng.standard_normal(dims) * scale).astype(dtype)
    return feeds


def mlp_model(sizes: Sequence[int] = (4, 12, 6, 3), seed: int = 0, act: str = "Tanh") -> onnx.ModelProto:
    """A Gemm + activation MLP like the seed paper's 4-12-6-3 Yin-Yang network."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], {}
    prev = "x"
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        inits[f"W{i}"] = rng.standard_normal((n, m)).astype(np.float32)
        inits[f"b{i}"] = rng.standard_normal(n).astype(np.float32)
        out = f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [out], name=f"fc{i}", transB=1))
        prev = out
        if i < len(sizes) - 2:
            nodes.append(helper.make_node(act, [out], [f"a{i}"], name=f"act{i}"))
            prev = f"a{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["y"], name="softmax", axis=1))
    return make_model(nodes, {"x": (np.float32, ["N", sizes[0]])}, ["y"], inits, name="mlp")


def cnn_model(seed: int = 0) -> onnx.ModelProto:
    """A small CNN on 1x8x8 inputs with BatchNorm, pooling and a Gemm head."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = {
        "w1": rng.standard_normal((4, 1, 3, 3)).astype(f),
        "b1": rng.standard_normal(4).astype(f),
        "s1": rng.uniform(0.5, 1.5, 4).astype(f),
        "o1": rng.standard_normal(4).astype(f),
        "m1": rng.standard_normal(4).astype(f),
        "v1": rng.uniform(0.5, 2.0, 4).astype(f),
        "w2": rng.standard_normal((6, 4, 3, 3)).astype(f),
        "wf": rng.standard_normal((10, 6)).astype(f),
        "bf": rng.standard_normal(10).astype(f),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s1", "o1", "m1", "v1"], ["n1"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", strides=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("LogSoftmax", ["logits"], ["y"], name="logsoftmax"),
    ]
    return make_model(nodes, {"x": (f, ["N", 1, 8, 8])}, ["y"], inits, name="cnn")


def ternarize(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every weight matrix/kernel made ternary {-a, 0, a} (TWN rule: |w| > 0.7 mean|w|).

    Ternary weights sit exactly on the chip's level pairs, so a compiled model
    differs from onnxruntime only by ADC/DAC quantisation and the device model.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim < 2 or w.dtype != np.float32:
            continue
        threshold = 0.7 * np.mean(np.abs(w))
        keep = np.abs(w) > threshold
        scale = np.mean(np.abs(w[keep])) if keep.any() else 1.0
        init.CopyFrom(numpy_helper.from_array((np.sign(w) * keep * scale).astype(np.float32), init.name))
    return out


def load_example(path: Path, name: str) -> ModuleType:
    """An examples/ script imported by path (examples/ is not a package), registered under `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def save_mlp_and_chip(folder: Path) -> tuple[Path, Path]:
    """The default test MLP and a 16-array chip with 5% stuck-high and 1% stuck-low devices, saved in `folder`."""
    from lea_compiler.chip import save_chip, synth_chip

    model = folder / "mlp.onnx"
    onnx.save(mlp_model(), model)
    chip = folder / "chip.json"
    save_chip(synth_chip(arrays=16, rows=25, cols=25, stuck_high=0.05, stuck_low=0.01, seed=3), chip)
    return model, chip


# Retraining an example on another CPU or BLAS changes its float arithmetic, and so its weights and
# accuracy: a retrained example is compared with the bundled files by what its README promises
# (file set, data, graph, accuracy within a stated tolerance), never byte for byte.
def same_bytes_twice(run: Callable[[Path], object], tmp_path: Path) -> list[str]:
    """Run an example script twice into two folders of `tmp_path`; the names of the (identical) files."""
    first, second = tmp_path / "first", tmp_path / "second"
    run(first)
    run(second)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), f"{name} differs between two runs"
    return names


def assert_same_graph(regenerated: Path, bundled: Path) -> None:
    """Both ONNX files pass the full checker and hold the same graph: nodes, attributes, inputs, outputs and
    initializer names, types and shapes (the weights' values are the training's and may differ)."""
    a, b = onnx.load(regenerated), onnx.load(bundled)
    onnx.checker.check_model(a, full_check=True)
    assert a.opset_import == b.opset_import and a.ir_version == b.ir_version
    assert list(a.graph.node) == list(b.graph.node)
    assert list(a.graph.input) == list(b.graph.input) and list(a.graph.output) == list(b.graph.output)

    def signature(model: onnx.ModelProto) -> list[tuple[str, int, list[int]]]:
        return [(i.name, i.data_type, list(i.dims)) for i in model.graph.initializer]

    assert signature(a) == signature(b)


def assert_same_arrays(regenerated: Path, bundled: Path) -> None:
    """Two .npz files hold the same arrays (names, dtypes, values)."""
    with np.load(regenerated) as a, np.load(bundled) as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def zipmap_classifier() -> onnx.ModelProto:
    """A 4-feature, 3-class linear classifier as skl2onnx exports it by default (zipmap=True): the label from
    ArgMax over the classes, the probabilities turned into one {class: probability} map per sample by ZipMap."""
    rng = np.random.default_rng(0)
    probability = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    nodes = [
        helper.make_node("MatMul", ["float_input", "coefficient"], ["mul_result"], name="MatMul"),
        helper.make_node("Add", ["mul_result", "intercepts"], ["add_result"], name="Add"),
        helper.make_node("Softmax", ["add_result"], ["probabilities"], name="Softmax", axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], name="ArgMax", axis=1, keepdims=0),
        helper.make_node("ZipMap", ["probabilities"], ["output_probability"], name="ZipMap", domain="ai.onnx.ml",
                         classlabels_int64s=[0, 1, 2]),
    ]
    graph = helper.make_graph(
        nodes, "classifier", [helper.make_tensor_value_info("float_input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_value_info("output_probability", probability)],
        [numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "coefficient"),
         numpy_helper.from_array(rng.standard_normal((1, 3)).astype(np.float32), "intercepts")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)],
                              producer_name="skl2onnx")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


KILL_ONE_WORKER = """
import importlib, multiprocessing, os, signal, sys
from pathlib import Path

multiprocessing.set_start_method("fork")  # the batch's workers inherit the hook set below
from lea_compiler.cli import main

module, name, marker = importlib.import_module(sys.argv[1]), sys.argv[2], sys.argv[3]
real = getattr(module, name)


def hook(shared, job, **kwargs):
    # SIGKILL the worker that runs the job of the file named boom.*, as the OOM killer would:
    # every time (marker "always"), or only the first time (marker: a file made then)
    if Path(getattr(job, "chip", None) or job.path).stem == "boom" and not Path(marker).exists():
        if marker != "always":
            Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(shared, job, **kwargs)


setattr(module, name, hook)
sys.exit(main(sys.argv[4:]))
"""
"""A `leac` run whose worker for the file `boom.*` kills itself: `python -c KILL_ONE_WORKER MODULE FUNCTION MARKER
ARGV...` replaces MODULE.FUNCTION, the batch's job function, in the workers (they are forked). A test hook only:
nothing in leac reads it."""


def run_killing_one_worker(module: str, function: str, marker: str | Path, argv: Sequence[str | Path]) -> Any:
    """Run `leac ARGV` in a subprocess whose worker for `boom.*` is SIGKILLed (see `KILL_ONE_WORKER`)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", KILL_ONE_WORKER, module, function, str(marker), *map(str, argv)],
                          cwd=root, capture_output=True, text=True, timeout=120)


def loop_model(trips: int = 2**62, width: int = 4) -> onnx.ModelProto:
    """y = x after a `Loop` of `trips` iterations of Identity: valid ONNX that leac refuses (Loop) and that
    onnxruntime runs for ever (issue 13: a Program can embed it)."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["N", width])])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["M"], value=helper.make_tensor("m", TensorProto.INT64, [], [trips])),
         helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c0", TensorProto.BOOL, [], [True])),
         helper.make_node("Loop", ["M", "c", "x"], ["y"], body=body, name="forever")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def swap_embedded_model(program: Path, model: onnx.ModelProto | bytes, out: Path | None = None) -> Path:
    """A copy of `program` (at `out`; default: in place) whose model.onnx is `model`, with program.json's
    sha256 and size to match (a crafted Program that passes every archive check)."""
    import hashlib
    import json
    import zipfile

    data = model if isinstance(model, bytes) else model.SerializeToString()
    with zipfile.ZipFile(program) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    header = json.loads(entries["program.json"])
    header["model"]["sha256"] = hashlib.sha256(data).hexdigest()
    header["model_bytes"] = len(data)
    entries["program.json"] = json.dumps(header).encode()
    entries["model.onnx"] = data
    out = program if out is None else out
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in entries.items():
            target.writestr(name, content)
    return out


def assert_bad_periphery_refused(tmp_path: Path, capsys: Any, key: str, value: object, message: str) -> None:
    """Compiling the bundled example for the paper chip with `periphery[key] = value` fails with `message` on
    stderr and writes no Program."""
    import json

    from lea_compiler.cli import main

    document = json.loads(Path("lea_compiler/data/paper_chip.json").read_text())
    document["periphery"][key] = value
    (tmp_path / "bad.json").write_text(json.dumps(document))
    out = tmp_path / "y.leac"
    status = main(["compile", "lea_compiler/data/yinyang_mlp.onnx", "--chip", str(tmp_path / "bad.json"),
                   "-o", str(out)])
    assert status != 0 and message in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------- editing a .leac file's zip entries
def archive_entries(data: bytes) -> dict[str, bytes]:
    """Every entry of a zip archive (a `.leac` file), by name, in the archive's order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zip_archive(entries: Mapping[str, bytes]) -> bytes:
    """A zip archive of `entries`, in their order (a `.leac` file made by hand)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, blob in entries.items():
            archive.writestr(name, blob)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """The `.npy` file of `array`, as `Program.save` writes its arrays (no pickles)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def edit_program_json(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, bytes]], None]:
    """An edit of a `.leac` file's entries that applies `change` to its decoded `program.json`."""
    def edit(entries: dict[str, bytes]) -> None:
        header = json.loads(entries["program.json"])
        change(header)
        entries["program.json"] = json.dumps(header).encode()

    return edit


def edit_npy(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict[str, bytes]], None]:
    """An edit of a `.leac` file's entries that replaces array `name` with `make` of it."""
    def edit(entries: dict[str, bytes]) -> None:
        key = f"arrays/{name}.npy"
        entries[key] = npy_bytes(make(np.load(io.BytesIO(entries[key]))))

    return edit


def assert_program_refused(data: bytes, message: str, tmp_path: Path, capsys: Any) -> None:
    """A damaged `.leac` file's bytes are refused by `Program.from_bytes` (InvalidInputError matching `message`),
    and by `leac emit` with exit status 3, one error line and no traceback, leaving nothing beside the file."""
    import pytest

    from lea_compiler.cli import main
    from lea_compiler.errors import InvalidInputError
    from lea_compiler.program import Program

    with pytest.raises(InvalidInputError, match=message):
        Program.from_bytes(data)
    path, out = tmp_path / "p.leac", tmp_path / "out.jsonl"
    path.write_bytes(data)
    assert main(["emit", str(path), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("leac: error: ") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.leac"]
