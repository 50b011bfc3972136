"""Data files (.npz with x and y): sizes checked before reading, no pickle, clear refusals; labels the model
never predicts refused."""

from __future__ import annotations

import io
import logging
import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler import datasets
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.datasets import MAX_DATA_BYTES, ModelLabels, check_labels, load_data, model_labels
from lea_compiler.errors import BadDataError
from lea_compiler.ir import Graph
from lea_compiler.onnx_frontend import import_model
from lea_compiler.pipeline import CompileOptions
from tests.fuzzing import npy_header_only
from tests.helpers import make_model, mlp_model


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_model(mlp_model())


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npz(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, blob in entries.items():
            archive.writestr(name, blob)
    return path


LABELS = _npy(np.zeros(3, np.int64))


@pytest.mark.parametrize("shape", [(10**9, 64), (2**40, 4), (2**62, 2**62)])
def test_a_small_npz_declaring_a_huge_array_is_refused_without_allocating(graph, tmp_path, shape) -> None:
    path = _npz(tmp_path / "huge.npz", {"x.npy": npy_header_only(shape), "y.npy": LABELS})
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(BadDataError, match=rf"x declares .* more than leac reads at once \({MAX_DATA_BYTES} bytes"):
            load_data(path, graph)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # numpy would allocate the declared array before reading it


def test_entries_declaring_more_than_the_limit_are_refused(graph, tmp_path, monkeypatch) -> None:
    path = tmp_path / "d.npz"
    np.savez_compressed(path, x=np.zeros((100, 4), np.float32), y=np.zeros(100, np.int64))
    assert path.stat().st_size < 1000  # well under the limit as a file...
    monkeypatch.setattr(datasets, "MAX_DATA_BYTES", 1000)  # ...but 2.4 kB once uncompressed
    with pytest.raises(BadDataError, match=r"x and y hold \d+ bytes uncompressed, more than leac reads at once "
                                           r"\(1000 bytes"):
        load_data(path, graph)


def test_the_file_size_itself_is_limited(graph, tmp_path, monkeypatch) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((100, 4), np.float32), y=np.zeros(100, np.int64))
    monkeypatch.setattr(datasets, "MAX_DATA_BYTES", 100)
    with pytest.raises(BadDataError, match=r"the file has \d+ bytes, more than leac reads at once \(100 bytes"):
        load_data(path, graph)


def test_an_array_larger_than_its_entry_is_refused(graph, tmp_path) -> None:
    path = _npz(tmp_path / "short.npz", {"x.npy": npy_header_only((1000, 4)), "y.npy": LABELS})
    with pytest.raises(BadDataError, match=r"x declares \[1000, 4\] float32 \(16000 bytes\) but its entry holds"):
        load_data(path, graph)


def test_object_arrays_are_refused_without_unpickling(graph, tmp_path) -> None:
    path = _npz(tmp_path / "pickle.npz", {"x.npy": _npy(np.array([{"a": 1}, None], dtype=object)), "y.npy": LABELS})
    with pytest.raises(BadDataError, match="x holds Python objects"):
        load_data(path, graph)


@pytest.mark.parametrize("entries, message", [
    ({"x": b"hello", "y.npy": LABELS}, "not a readable .npz"),  # numpy would hand back the bytes
    ({"x.npy": _npy(np.zeros((3, 4), np.float32))}, "needs arrays 'x' and 'y'"),
    ({"x.npy": b"\x93NUMPY\x09\x00", "y.npy": LABELS}, "not a readable .npz|version"),
])
def test_damaged_entries_are_refused(graph, tmp_path, entries, message) -> None:
    with pytest.raises(BadDataError, match=message):
        load_data(_npz(tmp_path / "d.npz", entries), graph)


def test_empty_data_is_refused(graph, tmp_path) -> None:
    """Found by the fuzzer: zero samples crashed the simulator's top-1 (a traceback)."""
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.int64))
    with pytest.raises(BadDataError, match="no samples"):
        load_data(path, graph)


def test_cli_refuses_a_huge_declared_array_with_the_limit(tmp_path, capsys) -> None:
    model, chip, data = tmp_path / "mlp.onnx", tmp_path / "chip.json", tmp_path / "huge.npz"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=4, rows=16, cols=16, seed=0), chip)
    _npz(data, {"x.npy": npy_header_only((10**9, 64)), "y.npy": LABELS})
    out = tmp_path / "out.leac"
    assert main(["compile", str(model), "--chip", str(chip), "--calibrate", str(data), "-o", str(out),
                 "--placer", "greedy"]) == 3
    err = capsys.readouterr().err
    assert f"more than leac reads at once ({MAX_DATA_BYTES} bytes, 2 GiB)" in err and not out.exists()


def test_calibration_data_that_overflows_float32_is_refused(tmp_path) -> None:
    """Found by the fuzzer: x = 3e38 drives a ReLU layer's input to infinity; the compile wrote a Program with
    NaN ranges and offsets that `leac` itself could not load (now caught by Program.save too)."""
    model, data = tmp_path / "mlp.onnx", tmp_path / "big.npz"
    onnx.save(mlp_model(act="Relu"), model)
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    x[3] = 3e38
    np.savez(data, x=x, y=np.zeros(16, np.int64))
    chip = synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.1, seed=0)
    for compensate in ("columns", "none"):
        with pytest.raises(BadDataError, match="infinity or NaN"):
            compile_model(model, chip, CompileOptions(k=2, placer="greedy", compensate=compensate),
                          calibrate_on=data)


# ------------------------------------------------------------- labels against the model's classes
FIXTURES = Path(__file__).parent / "fixtures" / "exporters"


def _labels(model: onnx.ModelProto | Path, output: str | None = None) -> ModelLabels:
    return model_labels(import_model(onnx.load(model) if isinstance(model, Path) else model), output)


def _table_model(classes: list[int]) -> onnx.ModelProto:
    """x @ W, ArgMax, then a constant class table indexed by it (as skl2onnx writes a classifier's label)."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["s"]),
             helper.make_node("ArgMax", ["s"], ["i"], axis=1, keepdims=0),
             helper.make_node("ArrayFeatureExtractor", ["classes", "i"], ["c"], domain="ai.onnx.ml"),
             helper.make_node("Reshape", ["c", "flat"], ["r"]),
             helper.make_node("Cast", ["r"], ["label"], to=onnx.TensorProto.INT64)]
    inits = {"W": np.ones((4, len(classes)), np.float32), "classes": np.array(classes, np.int64),
             "flat": np.array([-1], np.int64)}
    return make_model(nodes, {"x": (np.float32, ["N", 4])}, [("label", np.int64, ["N"])], inits, ml_opset=3)


def test_the_models_classes_come_from_its_top1_output() -> None:
    mlp = _labels(mlp_model())
    assert (mlp.output, mlp.labels.tolist(), mlp.argmax) == ("y", [0, 1, 2], True)
    sklearn = _labels(FIXTURES / "sklearn_mlp.onnx")  # int64 label output: ArgMax -> classes table -> Cast
    assert (sklearn.output, sklearn.labels.tolist(), sklearn.argmax) == ("label", [0, 1, 2], False)
    scores = _labels(FIXTURES / "sklearn_mlp.onnx", output="probabilities")
    assert (scores.labels.tolist(), scores.argmax) == ([0, 1, 2], True)
    strings = _labels(FIXTURES / "sklearn_mlp_relu_strlabels.onnx")  # string labels: top-1 of the scores
    assert (strings.output, strings.labels.tolist()) == ("probabilities", [0, 1, 2])
    assert _labels(_table_model([5, -1, 2])).labels.tolist() == [-1, 2, 5]
    argmax = make_model([helper.make_node("ArgMax", ["x"], ["k"], axis=1, keepdims=1)], {"x": (np.float32, ["N", 7])},
                        ["k"])
    assert (_labels(argmax).labels.tolist(), _labels(argmax).argmax) == (list(range(7)), True)


def _data(y) -> datasets.Dataset:
    return datasets.Dataset("d.npz", np.zeros((len(y), 4), np.float32), np.asarray(y, np.int64))


@pytest.mark.parametrize("y, message", [
    ([0, 1, 2, 3], r"d.npz: y holds labels 0 to 3, but the model's output 'y' gives 3 classes \(labels 0 to 2\): "
                   r"1 of 4 samples have a label it never predicts"),
    ([5, 6, 7], r"y holds labels 5 to 7, .* 3 classes \(labels 0 to 2\): 3 of 3 samples"),
    ([-1, 0], r"y holds labels -1 to 0, .* 3 classes"),
])
def test_labels_outside_the_classes_are_refused(y, message) -> None:
    labels = _labels(mlp_model())
    with pytest.raises(BadDataError, match=message):
        check_labels(_data(y), labels)
    check_labels(_data([0, 2, 2]), labels)


def test_labels_outside_a_class_table_are_refused() -> None:
    labels = _labels(_table_model([1, 2, 5]))
    check_labels(_data([1, 5, 2]), labels)
    with pytest.raises(BadDataError, match=r"y holds labels 0 to 2, but the model's output 'label' gives only the "
                                           r"labels 1, 2, 5: 1 of 3 samples"):
        check_labels(_data([0, 1, 2]), labels)


def test_unknown_class_count_checks_only_what_is_known(caplog) -> None:
    """A float output whose class dimension is symbolic: the argmax is never negative, the top is not known."""
    graph = import_model(make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (np.float32, ["N", "C"])},
                                    ["y"]))
    labels = model_labels(graph)
    assert (labels.labels, labels.argmax) == (None, True)
    with caplog.at_level(logging.WARNING, logger="lea_compiler.datasets"):
        check_labels(_data([0, 900]), labels)
    assert "does not say which labels output 'y' gives; the labels of d.npz are checked for being non-negative" \
        in caplog.text
    with pytest.raises(BadDataError, match=r"y holds labels -2 to 900, but the model's top-1 \(the argmax of output "
                                           r"'y'\) is never negative: 1 of 2 samples"):
        check_labels(_data([-2, 900]), labels)


@pytest.mark.parametrize("shift", [1, 5, -1])
def test_cli_simulate_refuses_labels_the_model_never_predicts(tmp_path, capsys, shift) -> None:
    """Issue 12: labels 1..3 (or +5) for a 3-class model printed 2.8% / 0.0% and exited 0."""
    model, chip, program, data = (tmp_path / n for n in ("m.onnx", "chip.json", "m.leac", "d.npz"))
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=4, rows=16, cols=16, seed=0), chip)
    assert main(["compile", str(model), "--chip", str(chip), "-k", "1", "--placer", "greedy", "-o", str(program)]) == 0
    y = np.arange(30) % 3 + shift
    np.savez(data, x=np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32), y=y)
    capsys.readouterr()
    assert main(["simulate", str(program), "--data", str(data)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (f"leac: error: d.npz: y holds labels {y.min()} to {y.max()}, but the model's output 'y' "
                           f"gives 3 classes (labels 0 to 2): {np.sum((y < 0) | (y > 2))} of 30 samples have a "
                           "label it never predicts")


def test_an_npz_with_two_entries_for_one_array_is_refused(tmp_path, graph: Graph) -> None:
    """The size check must read the entry np.load would read: 'x' and 'x.npy' together are refused (issue 13)."""
    path = tmp_path / "two.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in (("x.npy", np.zeros((2, 4), np.float32)), ("x", np.zeros((3, 4), np.float32)),
                            ("y.npy", np.zeros(2, np.int64))):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            archive.writestr(name, buffer.getvalue())
    with pytest.raises(BadDataError, match="two entries for 'x'"):
        load_data(path, graph)


def test_a_data_path_that_is_a_fifo_is_named_as_such(tmp_path, graph: Graph) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(BadDataError, match="is a FIFO, not a data file"):
        load_data(tmp_path / "fifo", graph)
    with pytest.raises(BadDataError, match="no such data file"):
        load_data(tmp_path / "missing.npz", graph)
