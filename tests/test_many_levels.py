"""Devices with many conductance levels (fine analog devices: 256 to 65,535 programmable states).

Level indices used to be int8, so a 256-level chip passed `leac chip validate` and then `leac compile`
exited 1 with "target_pos has a level index outside 0..255 (a bug in leac)". These tests run the whole
tool chain (compile, simulate --ideal, emit, board validate) on 256- and 4096-level chips and compare the
simulated top-1 with onnxruntime's; they check the one dtype rule (`level_index_dtype`), the chip limit
(`MAX_LEVELS`), that the Program loader checks level indices against the chip's level count whatever
their integer type, and that rme's level-pair table stays bounded.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from lea_compiler.chip import MAX_LEVELS, DeviceModel, level_index_dtype, save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.passes.quantize import RME_MAX_PAIRS, PairCode
from lea_compiler.program import Program, program_problems

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
SAMPLES = 200
"""Test samples per run (of 540): enough that 99% agreement allows two disagreements."""


def _levels(count: int) -> list[float]:
    """`count` evenly spaced levels over the seed paper's range, as a chip file would give them (6 decimals)."""
    return [round(float(v), 6) for v in np.linspace(133.0, 233.0, count)]


def _chip(tmp_path: Path, count: int) -> Path:
    """A 64-array chip with 4% stuck devices, stuck at the ends of the level range (as worn-out devices
    often are), so `--ideal` with joint encoding (stuck devices included) can still reach the weights."""
    device = DeviceModel(levels_uS=tuple(_levels(count)), stuck_high_uS=233.0, stuck_low_uS=133.0)
    chip = synth_chip(arrays=64, rows=32, cols=32, stuck_high=0.03, stuck_low=0.01, seed=7, device=device)
    path = tmp_path / f"chip{count}.json"
    save_chip(chip, path)
    return path


def _data(tmp_path: Path, name: str) -> Path:
    with np.load(DATA / name) as data:
        x, y = data["x"][:SAMPLES], data["y"][:SAMPLES]
    path = tmp_path / name
    np.savez(path, x=x, y=y)
    return path


def _onnxruntime_top1(model: Path, data: Path) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    with np.load(data) as d:
        out = session.run(None, {session.get_inputs()[0].name: d["x"]})[0]
    return np.argmax(out, axis=1)


def _level_arrays(program_path: Path) -> dict[str, np.ndarray]:
    """The level-index arrays stored in a Program file (targets and programmed levels), by entry name: each
    layer's packed ones (version 2), or each block's and copy half's (version 1)."""
    with zipfile.ZipFile(program_path) as archive:
        return {name: np.load(io.BytesIO(archive.read(name))) for name in archive.namelist()
                if name.endswith((".levels.npy", ".targets.npy", ".pos.npy", ".neg.npy", ".target_pos.npy",
                                  ".target_neg.npy"))}


@pytest.mark.parametrize(
    ("model", "data", "count", "encoding"),
    [
        ("digits_mlp_float.onnx", "digits_test.npz", 256, "joint"),
        ("digits_mlp_float.onnx", "digits_test.npz", 4096, "joint"),
        ("digits_cnn_float.onnx", "digits_test_images.npz", 256, "joint"),
        ("digits_cnn_float.onnx", "digits_test_images.npz", 4096, "joint"),
        ("digits_mlp_float.onnx", "digits_test.npz", 4096, "rme"),
    ],
)
def test_many_level_chips_compile_simulate_and_emit(tmp_path, capsys, model, data, count, encoding) -> None:
    chip, samples = _chip(tmp_path, count), _data(tmp_path, data)
    program, board = tmp_path / "p.leac", tmp_path / "p.jsonl"
    assert main(["chip", "validate", str(chip)]) == 0
    assert main(["compile", str(DATA / model), "--chip", str(chip), "-k", "2", "--placer", "greedy",
                 "--encoding", encoding, "-o", str(program)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(program), "--ideal", "--data", str(samples), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["data"][0]
    reference = _onnxruntime_top1(DATA / model, samples)
    with np.load(samples) as d:
        assert report["software_accuracy"] == pytest.approx(np.mean(reference == d["y"]))  # its reference is ours
    # 98%, not more: without calibration data the ADC ranges are the worst case (docs/simulator.md), coarser than
    # a range fitted on the data; rme at 4096 levels loses 2 of 100 samples to it
    assert report["agreement"] >= 0.98
    assert main(["emit", str(program), "-o", str(board)]) == 0
    assert main(["board", "validate", str(board)]) == 0
    arrays = _level_arrays(program)
    assert arrays and all(a.dtype == np.int16 for a in arrays.values())
    assert max(int(a.max()) for a in arrays.values()) >= 128  # the indices int8 could not hold are used
    header = json.loads(board.read_text().splitlines()[0])
    writes = [json.loads(line) for line in board.read_text().splitlines()[1:] if '"op":"write"' in line]
    assert len(header["levels_uS"]) == count and max(w["level"] for w in writes) >= 128
    assert all(w["target_uS"] == header["levels_uS"][w["level"]] for w in writes)


@pytest.mark.parametrize("count", [2, 4, 127, 128, 129, 256, 4096, 32767, 32768, 32769, 65535])
def test_level_index_dtype_is_the_smallest_signed_type_holding_every_index_and_minus_one(count) -> None:
    dtype = level_index_dtype(count)
    assert dtype.kind == "i" and np.iinfo(dtype).min <= -1 and np.iinfo(dtype).max >= count - 1
    smaller = [np.dtype(t) for t in (np.int8, np.int16, np.int32) if np.dtype(t).itemsize < dtype.itemsize]
    assert all(np.iinfo(t).max < count - 1 for t in smaller)


def test_the_chip_validator_accepts_the_most_levels_and_refuses_more(tmp_path, capsys) -> None:
    chip = json.loads(_chip(tmp_path, 4).read_text())
    for count, status in ((MAX_LEVELS, 0), (MAX_LEVELS + 1, 3)):
        chip["device"]["levels_uS"] = [100.0 + i / 1000 for i in range(count)]
        path = tmp_path / f"chip{count}.json"
        path.write_text(json.dumps(chip))
        assert main(["chip", "validate", str(path)]) == status
    err = capsys.readouterr().err
    assert f"device.levels_uS: {MAX_LEVELS + 1} levels is more than leac supports ({MAX_LEVELS})" in err
    assert MAX_LEVELS >= 65535


def test_the_most_levels_compile_to_int32_indices_and_emit(tmp_path, capsys) -> None:
    chip = json.loads(_chip(tmp_path, 4).read_text())
    chip["device"]["levels_uS"] = _levels(MAX_LEVELS)
    path, program, board = tmp_path / "chip.json", tmp_path / "p.leac", tmp_path / "p.jsonl"
    path.write_text(json.dumps(chip))
    assert main(["compile", str(DATA / "digits_cnn_float.onnx"), "--chip", str(path), "-k", "1",
                 "--placer", "greedy", "-o", str(program)]) == 0
    assert all(a.dtype == np.int32 for a in _level_arrays(program).values())
    assert main(["emit", str(program), "-o", str(board)]) == 0
    assert main(["board", "validate", str(board)]) == 0


@pytest.fixture(scope="module")
def program_256(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("levels")
    path = folder / "p.leac"
    assert main(["compile", str(DATA / "digits_cnn_float.onnx"), "--chip", str(_chip(folder, 256)), "-k", "1",
                 "--placer", "greedy", "-o", str(path)]) == 0
    return path.read_bytes()


def _with_arrays(data: bytes, change) -> bytes:
    """The Program file with every level-index array (version 2's packed ones, or version 1's per block and
    copy half) replaced by change(name, array)."""
    source, buffer = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with source, zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name in source.namelist():
            blob = source.read(name)
            if name.endswith((".levels.npy", ".targets.npy", ".pos.npy", ".neg.npy", ".target_pos.npy",
                              ".target_neg.npy")):
                array = io.BytesIO()
                np.save(array, change(name, np.load(io.BytesIO(blob))))
                blob = array.getvalue()
            out.writestr(name, blob)
    return buffer.getvalue()


def test_programs_with_other_integer_types_load_and_indices_are_checked_against_the_chip(program_256) -> None:
    def widen(name: str, array: np.ndarray) -> np.ndarray:  # targets (never -1) as uint16, copies as int64
        return array.astype(np.uint16 if "target" in name else np.int64)

    program = Program.from_bytes(_with_arrays(program_256, widen))
    assert program_problems(program) == []
    original = Program.from_bytes(program_256)
    for a, b in zip(program.layers, original.layers, strict=True):
        for x, y in zip(a.blocks, b.blocks, strict=True):
            np.testing.assert_array_equal(x.target_pos, y.target_pos)
            np.testing.assert_array_equal(x.copies[0].pos.levels, y.copies[0].pos.levels)

    def past_the_top(name: str, array: np.ndarray) -> np.ndarray:  # index 256 of 256 levels: fits int16
        return np.full_like(array, 256) if name.endswith(("c0.pos.npy", ".levels.npy")) else array

    with pytest.raises(InvalidInputError, match=r"level index outside -1\.\.255"):
        Program.from_bytes(_with_arrays(program_256, past_the_top))


def test_programs_written_with_int8_indices_still_load(tmp_path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    path = folder / "p.leac"
    assert main(["compile", str(DATA / "digits_cnn_float.onnx"), "--chip", str(_chip(folder, 4)), "-k", "1",
                 "--placer", "greedy", "-o", str(path)]) == 0
    assert all(a.dtype == np.int8 for a in _level_arrays(path).values())  # 4 levels: as before, int8
    data = _with_arrays(path.read_bytes(), lambda name, a: a.astype(np.uint8) if "target" in name else a)
    assert program_problems(Program.from_bytes(data)) == []


def test_rme_pairs_stay_bounded() -> None:
    even = tuple(_levels(4096))
    rme, simple = PairCode.build(even, "rme"), PairCode.build(even, "simple")
    assert len(rme.diffs_uS) == 2 * 4096 - 1  # evenly spaced: simple's differences, not 4096^2 pairs
    np.testing.assert_array_equal(rme.pos, simple.pos)
    np.testing.assert_array_equal(rme.neg, simple.neg)
    uneven = tuple(float(v) for v in np.cumsum(np.random.default_rng(0).uniform(0.5, 1.5, 4096)))
    assert 4096**2 > RME_MAX_PAIRS
    with pytest.raises(UsageError, match="4096 unevenly spaced levels"):
        PairCode.build(uneven, "rme")
    small = tuple(float(v) for v in np.cumsum(np.random.default_rng(1).uniform(0.5, 1.5, 200)))
    code = PairCode.build(small, "rme")
    levels = np.asarray(small)
    every = np.subtract.outer(levels, levels).ravel()  # the reference: every pair's difference
    assert len(code.diffs_uS) == len(np.unique(np.round(every, 9)))
    np.testing.assert_allclose(code.diffs_uS, levels[code.pos] - levels[code.neg])
