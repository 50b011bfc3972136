"""The Program file: a damaged or hand-edited `.leac` is refused at load with what is wrong, never a crash.

Each case below is a corruption the fuzzer (tests/fuzzing.py) found crashing
`leac emit` or `leac simulate` with a traceback before `program_problems`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from lea_compiler.chip import synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import CompileError, InvalidInputError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program, program_problems
from lea_compiler.program import file as program_file
from tests.helpers import archive_entries as _entries
from tests.helpers import assert_program_refused, mlp_model
from tests.helpers import edit_npy as _array
from tests.helpers import edit_program_json as _header
from tests.helpers import zip_archive as _archive

Entries = dict[str, bytes]


@pytest.fixture(scope="module")
def program_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("program")
    model = folder / "mlp.onnx"
    onnx.save(mlp_model(), model)
    chip = synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.05, stuck_low=0.02, seed=5)
    return compile_model(model, chip, CompileOptions(k=2, placer="greedy")).program.to_bytes()


@pytest.fixture(scope="module")
def program_bytes_v1(program_bytes: bytes) -> bytes:
    """The same Program as a version-1 file (one array per copy half and per block), which leac still reads."""
    return program_file.program_bytes(Program.from_bytes(program_bytes), version=1)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(header: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = header
        for key in parents:
            node = node[int(key) if key.isdigit() else key]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()
_REGION = "layers/2/blocks/0/copies/0/neg/region"


def _model_sha(entries: Entries) -> None:
    model = onnx.load_from_string(entries["model.onnx"])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 0  # onnxruntime then refuses 24 samples
    entries["model.onnx"] = model.SerializeToString()


def _same_region(header: dict[str, Any]) -> None:
    copies = header["layers"][0]["blocks"][0]["copies"]
    copies[1]["pos"]["region"] = copies[0]["pos"]["region"]


def _allocation(**changes: Any) -> Callable[[Entries], None]:
    """An `extra.allocation` of the shape `-k auto` writes (allocate.Allocation.to_json), with `changes`."""
    allocation: dict[str, Any] = {
        "counts": {"fc0": 2, "fc1": 2, "fc2": 2}, "devices": 400, "budget": 500, "predicted_error": 0.01,
        "predicted_agreement": 0.97, "status": "OPTIMAL", "baseline": 2, "margin": 0.004,
        "error": {"fc0": [0.02, 0.01], "fc1": [0.03, 0.01], "fc2": [0.01, 0.005]},
        "disagreement": {"fc0": [0.02, 0.01], "fc1": [0.04, 0.02], "fc2": [0.0, 0.0]}}
    allocation.update(changes)
    return _header(_set("extra/allocation", {k: v for k, v in allocation.items() if v is not _DELETE}))


DAMAGES: dict[str, tuple[Callable[[Entries], None], str]] = {
    # found by the fuzzer: each crashed emit or simulate with a traceback
    "region_nested": (_header(_set(f"{_REGION}/0", [0])), "not three non-negative integers"),
    "levels_other_shape": (_array("layer1.b0.c1.pos", lambda a: np.resize(a, (a.shape[0] + 1, a.shape[1]))),
                           "not an integer"),
    "levels_float": (_array("layer2.b0.c0.neg", lambda a: a.astype(np.float64)), "not an integer"),
    "levels_scalar": (_array("layer0.b0.c0.neg", lambda a: np.asarray(a.flat[0])), "not an integer"),
    "levels_out_of_range": (_array("layer0.b0.c0.pos", lambda a: np.full_like(a, 100)), "outside -1.."),
    "rows_not_an_int": (_header(_set("layers/0/blocks/0/rows/1", "x")), "not an integer"),
    "node_name_not_a_string": (_header(_set("graph/nodes/5/name", -1)), "graph: a name"),
    "model_name_missing": (_header(_set("model/name", _DELETE)), "model.name must be a string"),
    "options_not_finite": (_header(_set("options/time_limit_s", float("inf"))), "options holds a number"),
    "bias_not_finite": (_array("graph.init1", lambda a: np.full_like(a, np.inf)), "finite numbers"),
    "graph_inconsistent": (_header(_set("graph/nodes/0/outputs/0/shape/0", _DELETE)), "graph is inconsistent"),
    "model_onnx_replaced": (_model_sha, "does not match its sha256"),
    # and the checks around them
    "alpha_mismatch": (_header(_set("layers/0/alpha", 3)), "copies, not alpha = 3"),
    # emit wrote a board file whose header counts disagreed with its records (found by bench_fuzz)
    "block_index_not_its_position": (_header(_set("layers/0/blocks/0/index", 7)),
                                     "blocks are numbered in order from 0"),
    "beta_above_alpha": (_header(_set("layers/0/beta", 5)), "beta 5 is more than alpha 2"),
    "block_outside_matrix": (_header(_set("layers/0/blocks/0/rows", [0, 99])),
                             r"rows \[0, 99\] is outside the layer's 4"),
    "region_off_the_chip": (_header(_set(f"{_REGION}/0", 99)), "array 99 is not on the chip"),
    "layer_without_node": (_header(_set("layers/0/name", "nope")), "no leac.MVM node"),
    "regions_overlap": (_header(_same_region), "copy 1 pos: its region on array .* overlaps layer 'fc0' block 0 "
                                               "copy 0 pos"),
    # leac report put these in its page unescaped, or crashed on them (review of leac report)
    "allocation_markup_count": (_allocation(counts={"fc0": '<meta http-equiv="refresh" content="0;url=x">'}),
                                r"extra.allocation.counts\['fc0'\] must be an integer >= 1, got '<meta"),
    "allocation_markup_budget": (_allocation(budget='<a href="https://example.invalid/">click</a>'),
                                 "extra.allocation.budget must be an integer >= 0, got '<a href="),
    "allocation_counts_a_list": (_allocation(counts=["x"]), "extra.allocation.counts must be a non-empty object"),
    "allocation_counts_no_layer": (_allocation(counts={"nope": 2}),
                                   "extra.allocation.counts names 'nope', not a crossbar layer"),
    "allocation_count_zero": (_allocation(counts={"fc0": 0}), r"counts\['fc0'\] must be an integer >= 1, got 0"),
    "allocation_count_bool": (_allocation(counts={"fc0": True}), r"counts\['fc0'\] must be an integer >= 1"),
    "allocation_agreement_text": (_allocation(predicted_agreement="high"),
                                  "extra.allocation.predicted_agreement must be a number in 0..1, got 'high'"),
    "allocation_agreement_above_1": (_allocation(predicted_agreement=1.5), "predicted_agreement must be a number"),
    "allocation_devices_missing": (_allocation(devices=_DELETE), "extra.allocation.devices must be an integer"),
    "allocation_baseline_negative": (_allocation(baseline=-1), "extra.allocation.baseline must be an integer >= 0"),
    "allocation_margin_text": (_allocation(margin="0"), "extra.allocation.margin must be a finite number >= 0"),
    "allocation_error_negative": (_allocation(predicted_error=-0.5), "predicted_error must be a finite number >= 0"),
    "allocation_status_number": (_allocation(status=3), "extra.allocation.status must be a string, got 3"),
    "allocation_series_text": (_allocation(error={"fc0": ["<b>"]}), "extra.allocation.error must be an object"),
    "allocation_series_other_layer": (_allocation(disagreement={"fc9": [0.1]}),
                                      "extra.allocation.disagreement must be an object of the Program's layer"),
    "allocation_not_an_object": (_header(_set("extra/allocation", [1])),
                                 "extra.allocation must be a JSON object, got list"),
    "placement_gap_markup": (_header(_set("placement/gap", "<b>x</b>")),
                             "placement.gap must be a finite number >= 0, got '<b>x</b>'"),
    "placement_gap_negative": (_header(_set("placement/gap", -0.5)), "placement.gap must be a finite number >= 0"),
    "placement_bound_a_list": (_header(_set("placement/bound_uS", [1])),
                               r"placement.bound_uS must be a finite number, got \[1\]"),
    "placement_status_object": (_header(_set("placement/status", {"a": 1})), "placement.status must be a string"),
    "placement_copies_float": (_header(_set("placement/copies", 2.5)), "placement.copies must be an integer >= 0"),
}


VERSION_1_ARRAYS = {"levels_other_shape", "levels_float", "levels_scalar", "levels_out_of_range"}
"""The damages that edit a copy half's own array, which only version 1 has (tests/test_program_format.py damages
version 2's packed arrays); the others are made to both versions."""


@pytest.mark.parametrize("damage, version", [(d, v) for d in DAMAGES for v in (1, 2)
                                             if v == 1 or d not in VERSION_1_ARRAYS])
def test_damaged_programs_are_refused_naming_the_problem(program_bytes, program_bytes_v1, damage, version, tmp_path,
                                                         capsys) -> None:
    edit, message = DAMAGES[damage]
    entries = _entries(program_bytes_v1 if version == 1 else program_bytes)
    edit(entries)
    assert_program_refused(_archive(entries), message, tmp_path, capsys)


def test_a_well_formed_allocation_and_an_older_one_without_baseline_and_margin_load(program_bytes) -> None:
    """The checks refuse what leac never writes, not what it does: the full record, and the one before
    `baseline` and `margin` were added; a placement record without a solver's numbers (null) loads too."""
    for edit in (_allocation(), _allocation(baseline=_DELETE, margin=_DELETE),
                 _header(_set("placement/gap", None)), _header(_set("placement/bound_uS", None))):
        entries = _entries(program_bytes)
        edit(entries)
        program = Program.from_bytes(_archive(entries))
        assert program_problems(program) == []
    assert Program.from_bytes(_archive(entries)).placement["bound_uS"] is None


def test_a_broken_deflate_stream_is_invalid_input(program_bytes) -> None:
    """A bit flip inside a compressed entry raised zlib.error from zipfile (a traceback) before."""
    archive = zipfile.ZipFile(io.BytesIO(program_bytes))
    info = archive.getinfo("program.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(program_bytes)
    for offset in range(start + 40, start + 200, 7):
        data[offset] ^= 0xA5
    with pytest.raises(InvalidInputError, match="not a leac Program file"):
        Program.from_bytes(bytes(data))


def test_entries_declaring_more_than_the_limit_are_refused_before_reading(program_bytes, monkeypatch) -> None:
    monkeypatch.setattr(program_file, "MAX_PROGRAM_BYTES", 1000)
    with pytest.raises(InvalidInputError, match="declare .* bytes uncompressed, more than leac reads"):
        Program.from_bytes(program_bytes)


def test_an_onnxruntime_failure_in_simulate_is_invalid_input(program_bytes, tmp_path, capsys) -> None:
    """A Program whose embedded model (with a matching sha256) onnxruntime cannot run on the data."""
    entries = _entries(program_bytes)
    _model_sha(entries)
    header = json.loads(entries["program.json"])
    header["model"]["sha256"] = hashlib.sha256(entries["model.onnx"]).hexdigest()
    header["model_bytes"] = len(entries["model.onnx"])
    entries["program.json"] = json.dumps(header).encode()
    path, data = tmp_path / "p.leac", tmp_path / "d.npz"
    path.write_bytes(_archive(entries))
    np.savez(data, x=np.zeros((3, 4), np.float32), y=np.zeros(3, np.int64))
    assert main(["simulate", str(path), "--data", str(data)]) == 3
    assert "onnxruntime cannot run the model" in capsys.readouterr().err


def test_compiled_programs_have_no_problems_and_save_refuses_one_that_has(program_bytes, tmp_path) -> None:
    program = Program.from_bytes(program_bytes)
    assert program_problems(program) == []
    layer = dataclasses.replace(program.layers[0], scale=-program.layers[0].scale)
    broken = dataclasses.replace(program, layers=(layer, *program.layers[1:]))
    with pytest.raises(CompileError, match="scale is not 12 positive numbers"):
        broken.save(tmp_path / "broken.leac")
    assert list(tmp_path.iterdir()) == []


def test_save_load_round_trip_keeps_bytes(program_bytes, tmp_path: Path) -> None:
    path = tmp_path / "p.leac"
    Program.from_bytes(program_bytes).save(path)
    assert path.read_bytes() == program_bytes


def test_loading_and_simulating_a_program_never_makes_its_chip_s_defect_objects(program_bytes) -> None:
    """Issue 19: a Program's chip is checked and fingerprinted from its defect table, and simulating reads only
    the stuck maps, so no Defect object is made per entry of the chip's defect list (84,000 took 0.1 s)."""
    from lea_compiler.backends.sim import simulate
    from lea_compiler.datasets import Dataset

    program = Program.from_bytes(program_bytes)
    assert program.chip.defect_counts()["stuck_high"] > 0
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    simulate(program, [Dataset("d", x, np.zeros(16, np.int64))], seed=0)
    assert "defects" not in program.chip.__dict__
    assert program.to_bytes() == program_bytes  # saving makes them: the same file


def test_a_program_with_an_unknown_conv_dimension_is_invalid_input_in_simulate(tmp_path, capsys) -> None:
    """Found by the fuzzer (bench_fuzz, program case 1192): exit 2, a usage error, for a damaged file."""
    from tests.helpers import cnn_model

    model = tmp_path / "cnn.onnx"
    onnx.save(cnn_model(), model)
    chip = synth_chip(arrays=12, rows=16, cols=16, seed=5)
    entries = _entries(compile_model(model, chip, CompileOptions(k=1, placer="greedy")).program.to_bytes())
    _header(_set("graph/nodes/0/outputs/0/shape/1", "x"))(entries)  # the patches' height: symbolic
    path, data = tmp_path / "p.leac", tmp_path / "d.npz"
    path.write_bytes(_archive(entries))
    np.savez(data, x=np.zeros((3, 1, 8, 8), np.float32), y=np.zeros(3, np.int64))
    assert main(["simulate", str(path), "--data", str(data)]) == 3
    assert "is not fully known" in capsys.readouterr().err


# ------------------------------------------------------------- bounded reads (issue 13, items 5, 6 and 19)
def _without_model_bytes(entries: Entries) -> None:
    """A Program written before issue 13, which did not record its model's size."""
    _header(_set("model_bytes", _DELETE))(entries)


def _refused_within(data: bytes, message: str, peak_bytes: int) -> None:
    """Loading `data` is refused with `message` and never holds more than `peak_bytes` of new Python memory."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError, match=message):
            Program.from_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < peak_bytes, f"loading held {peak / 2**20:.1f} MiB"


def test_a_model_inflating_past_its_recorded_size_is_refused_before_reading(program_bytes) -> None:
    """Item 5: a 64 MiB model.onnx of zeros (64 kB compressed) in a Program recording 1005 bytes; before, it
    was inflated whole and hashed ("does not match its sha256")."""
    entries = _entries(program_bytes)
    entries["model.onnx"] = bytes(64 * 2**20)
    _refused_within(_archive(entries), r"damaged Program: model.onnx declares 67108864 bytes, more than the "
                                       r"\d+ its Program allows", 8 * 2**20)


def test_the_model_of_an_older_program_is_hashed_streaming_within_the_front_end_limit(program_bytes,
                                                                                      monkeypatch) -> None:
    """A Program without `model_bytes` still loads; its model is bounded by the front end's model limit, and
    its sha256 is checked a chunk at a time (before, the whole model was inflated into memory first)."""
    from lea_compiler import fileio

    entries = _entries(program_bytes)
    _without_model_bytes(entries)
    Program.from_bytes(_archive(entries))  # loadable
    entries["model.onnx"] = bytes(32 * 2**20)
    _refused_within(_archive(entries), "the embedded model.onnx does not match its sha256", 8 * 2**20)
    monkeypatch.setattr(fileio, "MAX_MODEL_BYTES", 2**20)
    _refused_within(_archive(entries), "model.onnx declares 33554432 bytes, more than the 1048576", 8 * 2**20)


def test_a_model_other_than_its_recorded_size_is_refused(program_bytes) -> None:
    entries = _entries(program_bytes)
    _header(_set("model_bytes", len(entries["model.onnx"]) - 1))(entries)
    with pytest.raises(InvalidInputError, match="model.onnx declares 1005 bytes, more than the 1004"):
        Program.from_bytes(_archive(entries))
    _header(_set("model_bytes", len(entries["model.onnx"]) + 1))(entries)
    with pytest.raises(InvalidInputError, match="model.onnx has 1005 bytes, not the 1006 it records"):
        Program.from_bytes(_archive(entries))
    _header(_set("model_bytes", -1))(entries)
    with pytest.raises(InvalidInputError, match="model_bytes -1 is not a size"):
        Program.from_bytes(_archive(entries))


@pytest.mark.parametrize("array, shape, message", [
    ("layer0.b0.c0.pos", (2**40,), r"array layer0.b0.c0.pos is int\d+\[1099511627776\], not an integer 4 x 12"),
    ("graph.init1", (2**40,), r"array graph.init1 declares float32\[1099511627776\] \(4398046511104 bytes\) but "
                              r"its entry holds 64"),
])
def test_an_npy_header_declaring_a_huge_shape_is_refused_before_allocating(program_bytes_v1, array, shape, message,
                                                                           tmp_path, capsys) -> None:
    """Item 6: before, numpy allocated the declared 2 TiB (a MemoryError traceback in emit and simulate)."""
    entries = _entries(program_bytes_v1)
    dtype = np.load(io.BytesIO(entries[f"arrays/{array}.npy"])).dtype
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype.str, "fortran_order": False, "shape": shape})
    entries[f"arrays/{array}.npy"] = header.getvalue() + bytes(64)
    path, out = tmp_path / "p.leac", tmp_path / "b.jsonl"
    path.write_bytes(_archive(entries))
    assert main(["emit", str(path), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.leac"]


def _count_array_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        member = name.filename if isinstance(name, zipfile.ZipInfo) else name
        if member.startswith("arrays/"):
            opened.append(member)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


def test_many_copies_of_one_array_are_refused_before_reading_any_array(program_bytes, monkeypatch) -> None:
    """Item 6: 300,000 copies all referencing one array took 51 s (every copy read the array) before
    "damaged Program"; now the references are checked first."""
    entries = _entries(program_bytes)

    def many(header: dict[str, Any]) -> None:
        block = header["layers"][0]["blocks"][0]
        block["copies"] = [block["copies"][0]] * 1000

    _header(many)(entries)
    data = _archive(entries)
    opened = _count_array_reads(monkeypatch)
    with pytest.raises(InvalidInputError, match="damaged Program: layer 'fc0' block 0 has 1000 copies, not alpha"):
        Program.from_bytes(data)
    assert opened == []


def test_an_array_referenced_twice_is_refused_before_reading_any_array(program_bytes_v1, monkeypatch) -> None:
    entries = _entries(program_bytes_v1)
    _header(_set("layers/0/blocks/0/copies/1/pos/levels", "layer0.b0.c0.pos"))(entries)
    data = _archive(entries)
    opened = _count_array_reads(monkeypatch)
    with pytest.raises(InvalidInputError, match="array layer0.b0.c0.pos is referenced twice"):
        Program.from_bytes(data)
    assert opened == []


def test_nan_in_a_crossbar_layers_weights_is_a_damaged_program(program_bytes, tmp_path, capsys) -> None:
    """Item 19: NaN in the weights made simulate say "scale the data down"; the Program is damaged."""
    entries = _entries(program_bytes)
    _array("graph.init0", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a).astype(a.dtype))(
        entries)
    path, data = tmp_path / "p.leac", tmp_path / "d.npz"
    path.write_bytes(_archive(entries))
    np.savez(data, x=np.zeros((3, 4), np.float32), y=np.zeros(3, np.int64))
    assert main(["simulate", str(path), "--data", str(data)]) == 3
    err = capsys.readouterr().err
    assert "damaged Program: array graph.init0 holds NaN or infinity" in err and "scale the data" not in err


def test_loading_a_small_program_does_not_ask_for_the_whole_limit_in_memory(program_bytes, tmp_path,
                                                                            monkeypatch) -> None:
    """Reading a file asked for `limit` + 1 bytes at once (4 GiB for a Program): a MemoryError under any memory
    cap (`ulimit -v`) below that, whatever the file's size."""
    monkeypatch.setattr(program_file, "MAX_PROGRAM_BYTES", 256 * 2**20)
    path = tmp_path / "p.leac"
    path.write_bytes(program_bytes)
    tracemalloc.start()
    try:
        Program.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"loading held {peak / 2**20:.1f} MiB"



def test_graph_constants_larger_than_the_model_could_give_are_refused_before_reading(program_bytes) -> None:
    """A 32 MiB constant (32 kB compressed) in a Program whose model has about 1 kB: before, it was allocated
    whole (a 3 GiB one was a MemoryError in emit and simulate; bench_fuzz program bomb 'array:graph.init*')."""
    entries = _entries(program_bytes)
    dtype = np.load(io.BytesIO(entries["arrays/graph.init1.npy"])).dtype
    big = io.BytesIO()
    np.lib.format.write_array(big, np.zeros(32 * 2**20 // dtype.itemsize, dtype))
    entries["arrays/graph.init1.npy"] = big.getvalue()
    _refused_within(_archive(entries), r"its graph's constants declare \d+ bytes, more than its model of at most "
                                       r"\d+ bytes could give", 8 * 2**20)
