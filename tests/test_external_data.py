"""ONNX external data: loaded from the model's folder, and refused when it leaves it, is missing or is short."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from lea_compiler.cli import main
from lea_compiler.errors import InvalidModelError
from lea_compiler.interpreter import run
from lea_compiler.onnx_frontend import load_model
from lea_compiler.reference import run_onnxruntime
from tests.helpers import mlp_model, swap_embedded_model


def external_model(folder: Path, location: str = "weights.bin") -> Path:
    """An MLP whose initializers live in `location` next to the model file."""
    folder.mkdir(parents=True, exist_ok=True)
    model = mlp_model(sizes=(8, 16, 4), seed=1)
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=0)
    return path


def set_location(path: Path, location: str, **extra: str) -> None:
    """Rewrite every external tensor's location (and other keys) without touching the data file."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
            elif entry.key in extra:
                entry.value = extra[entry.key]
    path.write_bytes(model.SerializeToString())


def test_external_data_is_loaded_and_agrees_with_onnxruntime(tmp_path) -> None:
    path = external_model(tmp_path / "m")
    graph = load_model(path)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    expected = run_onnxruntime(str(path), {"x": x})
    got = run(graph, {"x": x})
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("location, message", [
    ("/etc/passwd", "is an absolute path"),
    ("../weights.bin", "leaves the model's folder"),
    ("sub/../../weights.bin", "leaves the model's folder"),
    ("missing.bin", "no such file next to the model"),
])
def test_bad_locations_are_refused(tmp_path, location: str, message: str) -> None:
    path = external_model(tmp_path / "m")
    (tmp_path / "weights.bin").write_bytes((tmp_path / "m" / "weights.bin").read_bytes())  # bait outside
    set_location(path, location)
    with pytest.raises(InvalidModelError, match=message):
        load_model(path)


def test_a_link_out_of_the_folder_is_refused(tmp_path) -> None:
    path = external_model(tmp_path / "m")
    os.replace(tmp_path / "m" / "weights.bin", tmp_path / "outside.bin")
    (tmp_path / "m" / "weights.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(InvalidModelError, match="through a link"):
        load_model(path)


def test_a_short_data_file_is_refused_and_nothing_is_written(tmp_path, capsys) -> None:
    path = external_model(tmp_path / "m")
    data = tmp_path / "m" / "weights.bin"
    data.write_bytes(data.read_bytes()[:-4])
    with pytest.raises(InvalidModelError, match="declares bytes .* but the file has"):
        load_model(path)
    chip = tmp_path / "chip.json"
    assert main(["chip", "synth", "--arrays", "8", "--rows", "16", "--cols", "16", "--seed", "0", "-o", str(chip)]) == 0
    out = tmp_path / "out.leac"
    assert main(["compile", str(path), "--chip", str(chip), "-o", str(out)]) == 3
    assert "declares bytes" in capsys.readouterr().err
    assert not out.exists()


def test_bad_offset_is_refused(tmp_path) -> None:
    path = external_model(tmp_path / "m")
    set_location(path, "weights.bin", offset="-5")
    with pytest.raises(InvalidModelError, match="negative offset"):
        load_model(path)


# ---- the model a Program embeds (issue 13, item 3)


def _compile(model: Path, out: Path) -> Path:
    from lea_compiler.chip import save_chip, synth_chip

    chip = out.parent / "chip.json"
    save_chip(synth_chip(arrays=8, rows=25, cols=25, stuck_high=0.0, stuck_low=0.0, seed=0), chip)
    assert main(["compile", str(model), "--chip", str(chip), "-k", "1", "-o", str(out)]) == 0
    return out


def test_a_program_embeds_its_external_data_and_never_reads_files_later(tmp_path, monkeypatch, capsys) -> None:
    from lea_compiler.program import Program

    (tmp_path / "out").mkdir()
    program = _compile(external_model(tmp_path / "m"), tmp_path / "out" / "p.leac")

    embedded = onnx.load_model_from_string(Program.load(program).source_model)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in embedded.graph.initializer)
    os.remove(tmp_path / "m" / "weights.bin")  # the Program no longer needs the model's folder
    x = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.zeros(20, np.int64))
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", str(program), "--data", str(tmp_path / "data.npz"), "--ideal"]) == 0


def test_a_program_whose_model_names_external_data_is_refused(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "out").mkdir()
    program = _compile(external_model(tmp_path / "m"), tmp_path / "out" / "p.leac")
    # the crafted model points at weights.bin, which a victim's current folder holds
    swap_embedded_model(program, (tmp_path / "m" / "model.onnx").read_bytes())
    x = np.zeros((4, 8), np.float32)
    np.savez(tmp_path / "m" / "data.npz", x=x, y=np.zeros(4, np.int64))
    monkeypatch.chdir(tmp_path / "m")
    capsys.readouterr()
    assert main(["simulate", str(program), "--data", "data.npz"]) == 3
    err = capsys.readouterr().err
    assert "names external data" in err and "Traceback" not in err


def test_onnxruntime_is_never_given_in_memory_models_with_external_data(tmp_path, monkeypatch) -> None:
    path = external_model(tmp_path / "m")
    monkeypatch.chdir(tmp_path / "m")
    with pytest.raises(InvalidModelError, match="names external data"):
        run_onnxruntime(path.read_bytes(), {"x": np.zeros((1, 8), np.float32)})
    with pytest.raises(InvalidModelError, match="names external data"):
        run_onnxruntime(onnx.load(str(path), load_external_data=False), {"x": np.zeros((1, 8), np.float32)})


def test_external_data_larger_than_a_model_may_be_is_refused_before_reading(tmp_path, capsys) -> None:
    """A 152-byte model naming a 4 GiB (sparse) file pushed inspect past 9 GB (issue 13, item 9)."""
    path = external_model(tmp_path / "m")
    big = tmp_path / "m" / "big.bin"
    with open(big, "wb") as handle:  # sparse: takes no disk space
        handle.truncate(3 * 2**30)
    set_location(path, "big.bin", offset="0")
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:  # no length: each tensor would read the rest of the file
        del tensor.external_data[:]
        tensor.external_data.add(key="location", value="big.bin")
    path.write_bytes(model.SerializeToString())
    assert main(["inspect", str(path)]) == 3
    assert "more than leac reads for a model" in capsys.readouterr().err


def test_a_nul_byte_in_a_location_is_refused(tmp_path, capsys) -> None:
    path = external_model(tmp_path / "m")
    set_location(path, "weights\x00.bin")
    assert main(["inspect", str(path)]) == 3
    err = capsys.readouterr().err
    assert "holds a NUL byte" in err and "Traceback" not in err


def test_a_symlink_loop_as_the_data_file_is_refused_with_a_message(tmp_path, capsys) -> None:
    """Path.resolve() raised RuntimeError ('Symlink loop') on Python 3.11: exit 1 with a traceback."""
    path = external_model(tmp_path / "m")
    data = tmp_path / "m" / "weights.bin"
    data.unlink()
    data.symlink_to(data.name)
    with pytest.raises(InvalidModelError, match="weights.bin"):
        load_model(path)
    assert main(["inspect", str(path)]) == 3
    assert capsys.readouterr().err.startswith("leac: error: ")
