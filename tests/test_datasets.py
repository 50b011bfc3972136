"""Data files (.npz with x and y): sizes checked before reading, no pickle, clear refusals."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from lea_compiler import datasets
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.datasets import MAX_DATA_BYTES, load_data
from lea_compiler.errors import BadDataError
from lea_compiler.ir import Graph
from lea_compiler.onnx_frontend import import_model
from lea_compiler.pipeline import CompileOptions
from tests.fuzzing import npy_header_only
from tests.helpers import mlp_model


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
