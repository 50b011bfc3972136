"""The one dtype rule (lea_compiler/dtypes.py): what data files, API arrays and interpreter feeds convert."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from lea_compiler import interpreter
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.datasets import from_arrays, load_data
from lea_compiler.dtypes import convert
from lea_compiler.errors import BadDataError
from lea_compiler.onnx_frontend import import_model
from tests.helpers import mlp_model

X = np.arange(-6, 6).reshape(3, 4)  # small whole numbers: exact in every type below
Y = np.array([0, 1, 2])


@pytest.fixture(scope="module")
def graph():
    return import_model(mlp_model())


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int8, np.int16, np.int64, np.uint8, np.uint32])
def test_integer_and_float_data_is_converted_to_the_models_float32(graph, tmp_path, dtype) -> None:
    x = np.abs(X).astype(dtype) if np.dtype(dtype).kind == "u" else X.astype(dtype)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=Y)
    data = load_data(path, graph)
    assert data.x.dtype == np.float32 and data.y.dtype == np.int64
    np.testing.assert_array_equal(data.x, x.astype(np.float32))


def test_float64_is_rounded_to_the_nearest_float32(graph) -> None:
    x = np.full((3, 4), 0.1)  # not a float32 value
    np.testing.assert_array_equal(from_arrays(x, Y, graph).x, np.full((3, 4), np.float32(0.1)))


@pytest.mark.parametrize("x, message", [
    (X.astype(np.complex64), "x: got complex64 data, which leac does not convert to float32"),
    (X > 0, "x: got bool data, which leac does not convert to float32"),
    (X.astype("<U2"), "x: got <U2 data, which leac does not convert to float32"),
    (np.where(X == 2, 1e40, X), r"x\[2, 0\] = 1e\+40 is out of float32's range \(\+-3.403e\+38\)"),
    (np.where(X == 2, -1e39, X), r"x\[2, 0\] = -1e\+39 is out of float32's range"),
])
def test_other_dtypes_and_overflowing_values_are_refused(graph, tmp_path, x, message) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=Y)
    with pytest.raises(BadDataError, match=f"d.npz: input {message}"):
        load_data(path, graph)


@pytest.mark.parametrize("y, message", [
    (np.array([0.0, 1.0, 2.0]), None),
    (np.array([0, 1, 2], np.uint8), None),
    (np.array([0.0, 1.5, 2.0]), r"y\[1\] = 1.5 is not a whole number, so it does not convert to int64"),
    (np.array([0.0, np.nan, 2.0]), r"y\[1\] = nan is not a whole number"),
    (np.array([0.0, 1e19, 2.0]), r"y\[1\] = 1e\+19 is out of int64's range"),
    (np.array([0, 2**63, 1], np.uint64), r"y\[1\] = 9223372036854775808 is out of int64's range"),
    (np.array([True, False, True]), "y: got bool data, which leac does not convert to int64"),
])
def test_labels_are_whole_numbers_converted_to_int64(graph, y, message) -> None:
    x = np.zeros((3, 4), np.float32)
    if message is None:
        data = from_arrays(x, y, graph)
        assert data.y.dtype == np.int64 and data.y.tolist() == [0, 1, 2]
    else:
        with pytest.raises(BadDataError, match=f"^data: {message}"):
            from_arrays(x, y, graph)


@pytest.mark.parametrize("array, dtype, message", [
    (np.array([1.0, -3.0]), np.int32, None),
    (np.array([255, 0], np.int64), np.uint8, None),
    (np.array([2.0**31, 0.0]), np.int32, r"x\[0\] = 2.14748e\+09 is out of int32's range"),
    (np.array([-(2.0**31), 0.0]), np.int32, None),
    (np.array([0, 256], np.int64), np.uint8, r"x\[1\] = 256 is out of uint8's range \(0 to 255\)"),
    (np.array([-1, 0], np.int8), np.uint64, r"x\[0\] = -1 is out of uint64's range"),
    (np.array([np.inf]), np.int64, r"x\[0\] = inf is not a whole number"),
    (np.array([70000.0], np.float32), np.float16, r"x\[0\] = 70000 is out of float16's range"),
])
def test_integer_targets_take_whole_numbers_in_range(array, dtype, message) -> None:
    if message is None:
        converted = convert(array, dtype, "x")
        assert converted.dtype == dtype and converted.tolist() == array.tolist()
    else:
        with pytest.raises(BadDataError, match=f"^{message}"):
            convert(array, dtype, "x")


def test_nan_passes_conversion_and_data_files_refuse_it(graph) -> None:
    assert np.isnan(convert(np.array([np.nan]), np.float32, "x")).all()
    with pytest.raises(BadDataError, match="x contains NaN or infinity"):
        from_arrays(np.full((3, 4), np.nan), Y, graph)


def test_the_interpreter_feeds_follow_the_same_rule(graph) -> None:
    x = np.abs(X).astype(np.uint8)
    expected = interpreter.run(graph, {"x": x.astype(np.float32)})["y"]
    np.testing.assert_array_equal(interpreter.run(graph, {"x": x})["y"], expected)  # same float32 input
    with pytest.raises(BadDataError, match="out of float32's range"):
        interpreter.run(graph, {"x": np.full((1, 4), 1e300)})


@pytest.mark.parametrize("x, code, message", [
    (np.abs(X).astype(np.uint8), 0, None),
    (np.where(X == 2, 1e40, X), 3, "calib.npz: input x[2, 0] = 1e+40 is out of float32's range"),
    (X.astype(np.complex128), 3, "calib.npz: input x: got complex128 data"),
])
def test_compile_calibrate_data_follows_the_rule(tmp_path, capsys, x, code, message) -> None:
    model, chip, data, out = tmp_path / "m.onnx", tmp_path / "chip.json", tmp_path / "calib.npz", tmp_path / "m.leac"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=4, rows=16, cols=16, seed=0), chip)
    np.savez(data, x=x, y=Y)
    args = ["compile", str(model), "--chip", str(chip), "-k", "1", "--placer", "greedy", "--calibrate", str(data),
            "-o", str(out)]
    assert main(args) == code
    err = capsys.readouterr().err
    if message is None:
        assert out.exists()
    else:
        assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()
