"""`leac compile` end to end: Program contents, determinism, round trip, errors that write nothing."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.chip import Array, Chip, Defect, load_chip, save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model, prepare
from lea_compiler.errors import CompileError, DoesNotFitError, InvalidInputError, InvalidModelError, UsageError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import require_mvm
from lea_compiler.passes.quantize import crossbar_matrix, quantize_matrix
from lea_compiler.passes.tile import Tile
from lea_compiler.pipeline import PASSES, CompileOptions, default_pipeline
from lea_compiler.program import Program
from tests.helpers import cnn_model, make_model, mlp_model, random_feeds, save_mlp_and_chip, zipmap_classifier


@pytest.fixture
def files(tmp_path):
    return save_mlp_and_chip(tmp_path)


def test_registry_names_match_and_every_pass_is_in_the_pipeline() -> None:
    chip = synth_chip(arrays=2, rows=4, cols=4, seed=0)
    data = np.zeros((3, 4), np.float32)
    network = default_pipeline(chip, CompileOptions(ensemble="network"), data)
    assert [p.name for p in network] == list(PASSES)
    layer = default_pipeline(chip, CompileOptions())
    assert [p.name for p in layer] == [name for name in PASSES if name not in ("replicate_network", "compensate")]
    # compensate runs only with calibration data and compensate="columns"
    assert "compensate" in [p.name for p in default_pipeline(chip, CompileOptions(), data)]
    assert "compensate" not in [p.name for p in default_pipeline(chip, CompileOptions(compensate="none"), data)]
    for name, cls in PASSES.items():
        assert cls.__dataclass_fields__["name"].default == name


def test_program_describes_every_copy_and_fits_the_chip(files) -> None:
    model, chip_path = files
    result = compile_model(model, chip_path, CompileOptions(k=3, beta=2))
    program = result.program
    assert [layer.name for layer in program.layers] == ["fc0", "fc1", "fc2"]
    occupied: dict[int, np.ndarray] = {}
    for layer in program.layers:
        assert (layer.alpha, layer.beta) == (3, 2)
        for block in layer.blocks:
            assert block.selection.shape == (3, block.shape[1])
            assert np.all(block.selection.sum(axis=0) == 2)
            for copy in block.copies:
                for half in (copy.pos, copy.neg):
                    array = program.chip.array(half.region.array)
                    grid = occupied.setdefault(array.id, np.zeros((array.rows, array.cols), int))
                    r, c = half.region.row, half.region.col
                    assert r + block.shape[0] <= array.rows and c + block.shape[1] <= array.cols
                    grid[r:r + block.shape[0], c:c + block.shape[1]] += 1
                    state, _ = program.chip.stuck_map(array.id)
                    window = state[r:r + block.shape[0], c:c + block.shape[1]]
                    assert np.array_equal(half.levels == -1, window != 0)  # stuck devices are skipped
    assert all(grid.max() <= 1 for grid in occupied.values())  # no overlap
    assert program.devices_used == 2 * 3 * (4 * 12 + 12 * 6 + 6 * 3)
    assert program.placement["status"] == "OPTIMAL"


def test_save_load_round_trip_and_determinism(files, tmp_path) -> None:
    model, chip = files
    first = compile_model(model, chip, CompileOptions(k=2, seed=7)).program
    second = compile_model(model, chip, CompileOptions(k=2, seed=7)).program
    assert first.to_bytes() == second.to_bytes()
    path = tmp_path / "p.leac"
    first.save(path)
    loaded = Program.load(path)
    assert loaded.to_bytes() == path.read_bytes()
    assert loaded.chip == first.chip and loaded.options == first.options
    feeds = random_feeds(mlp_model(), batch=4)
    np.testing.assert_array_equal(interpreter.run(loaded.graph, feeds)["y"], interpreter.run(first.graph, feeds)["y"])


def test_cnn_compiles_with_block_override(tmp_path) -> None:
    model = tmp_path / "cnn.onnx"
    onnx.save(cnn_model(), model)
    chip = synth_chip(arrays=12, rows=16, cols=16, seed=1)
    program = compile_model(model, chip, CompileOptions(k=2, block_rows=8, block_cols=8)).program
    conv2 = program.layer("conv2")
    assert (conv2.rows, conv2.cols) == (36, 6) and len(conv2.blocks) == 5


@pytest.mark.parametrize("rows, cols", [(0, 7), (7, 0), (0, 0)])
def test_api_block_of_zero_is_refused_not_taken_as_the_default(files, rows, cols) -> None:
    """block=(0, 7) tiled as the chip's 25 x 7 and the Program recorded block_rows 0: a 0 is a block of no rows,
    refused as the options are made (a wrong call), and by the tile pass itself when it is made by hand."""
    _, chip = files
    which = "rows" if rows == 0 else "cols"
    with pytest.raises(UsageError, match=rf"block's {which} must be an integer >= 1, got 0"):
        CompileOptions(k=1, block_rows=rows, block_cols=cols)
    with pytest.raises(CompileError, match=rf"block shape {rows} x {cols} must be positive"):
        Tile(load_chip(chip), rows=rows, cols=cols).block_limit()


def test_defect_free_chip_has_no_mapping_error(files) -> None:
    model, _ = files
    chip = Chip(arrays=tuple(Array(i, 25, 25) for i in range(4)))
    simple = compile_model(model, chip, CompileOptions(k=2, encoding="simple")).program
    assert simple.mapping_error_uS == 0.0
    assert all(layer.effective_error_uS == 0.0 for layer in simple.layers)
    # joint (the default): no mapping error either; the averaged copies miss W s only by the mean's quantization
    joint = compile_model(model, chip, CompileOptions(k=2)).program
    assert joint.mapping_error_uS == 0.0
    for layer in joint.layers:
        q = quantize_matrix(crossbar_matrix(joint.graph.node(layer.name), layer.bias_row), layer.levels_uS, "joint",
                            False, layer.bias_row, copies=2)
        assert q.exact_uS is not None
        assert layer.effective_error_uS == pytest.approx(np.abs(q.dequantized() * q.scale - q.exact_uS).sum(),
                                                         rel=1e-9)


def test_does_not_fit_names_the_numbers(files) -> None:
    model, _ = files
    chip = Chip(arrays=(Array(0, 25, 25),))
    with pytest.raises(DoesNotFitError, match="devices"):
        compile_model(model, chip, CompileOptions(k=6))


def test_cli_compile_text_and_json(files, tmp_path, capsys, monkeypatch) -> None:
    model, chip = files
    monkeypatch.chdir(tmp_path)
    assert main(["compile", str(model), "--chip", str(chip), "-k", "2", "--time-passes"]) == 0
    out = capsys.readouterr().out
    assert "fc0    4 x 12" in out and "pass place" in out and (tmp_path / "mlp.leac").exists()
    # three blocks, k = 2: the summary said "12 block copies", which `leac show` calls 6 (12 halves)
    assert "arrays; 6 block copies (12 halves)" in out
    assert main(["compile", str(model), "--chip", str(chip), "-k", "2", "--json", "-o", "b.leac",
                 "--placer", "greedy", "--dump-ir", "ir"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("devices_used", "devices_total", "mapping_error_uS", "solver_status", "optimality_gap",
                "compile_seconds"):
        assert key in report
    assert report["devices_used"] == 2 * 2 * 138 and report["devices_total"] == 16 * 625
    assert report["copies"] == 12  # copy halves (docs/reports.md)
    assert sorted(p.name for p in (tmp_path / "ir").iterdir())[:2] == ["00-input.txt", "01-canonicalize.txt"]
    assert "MVM" in (tmp_path / "ir" / "07-select.txt").read_text()


def test_cli_does_not_fit_exits_4_and_writes_nothing(files, tmp_path, capsys) -> None:
    model, _ = files
    small = tmp_path / "small.json"
    save_chip(Chip(arrays=(Array(0, 25, 25),), defects=(Defect(0, 1, 1, "stuck_high"),)), small)
    out = tmp_path / "out.leac"
    assert main(["compile", str(model), "--chip", str(small), "-k", "6", "-o", str(out)]) == 4
    err = capsys.readouterr().err
    assert "need 1656" in err and "the chip has 625 devices" in err and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["-k", "0"], "-k must be at least 1"),
    (["-k", "2", "--beta", "3"], "--beta must be between 1 and k"),
    (["--block", "25by25"], "--block takes ROWSxCOLS"),
    # a 0 was taken as "not given": 0x7 tiled as 25 x 7 and the Program recorded block_rows 0
    (["--block", "0x7"], "--block takes ROWSxCOLS of at least 1 each, e.g. 25x25, got '0x7'"),
    (["--block", "7x0"], "--block takes ROWSxCOLS of at least 1 each"),
    (["--time-limit", "0"], "--time-limit must be a finite number of seconds above 0 and at most 86400"),
    # issue 13, item 16: inf and nan passed, then failed in the placer as "a bug in leac"
    (["--time-limit", "inf"], "--time-limit must be a finite number of seconds above 0 and at most 86400 (one day), "
                              "got inf"),
    (["--time-limit", "nan"], "--time-limit must be a finite number"),
    (["--seed", "-1"], "--seed takes a non-negative integer, got -1"),  # it compiled, recording seed -1
    (["--time-limit", "1e9"], "at most 86400 (one day), got 1000000000.0"),
])
def test_cli_usage_errors_exit_2(files, tmp_path, capsys, argv, message) -> None:
    model, chip = files
    out = tmp_path / "x.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-o", str(out), *argv]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_cli_bad_chip_exits_3_and_writes_nothing(files, tmp_path, capsys) -> None:
    model, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "leac-chip", "version": 1, "arrays": {"count": 0, "rows": 2, "cols": 2}}')
    out = tmp_path / "x.leac"
    assert main(["compile", str(model), "--chip", str(bad), "-o", str(out)]) == 3
    assert "arrays.count" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("damage", ["truncate", "not_zip", "wrong_format", "newer_version", "missing_array"])
def test_damaged_program_files_are_refused(files, tmp_path, damage) -> None:
    model, chip = files
    path = tmp_path / "p.leac"
    compile_model(model, chip, CompileOptions(k=1)).program.save(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "not_zip":
        path.write_text("hello")
    else:
        with zipfile.ZipFile(path) as z:
            entries = {name: z.read(name) for name in z.namelist()}
        header = json.loads(entries["program.json"])
        if damage == "wrong_format":
            header["format"] = "other"
        elif damage == "newer_version":
            header["version"] = 3
        else:
            del entries[next(n for n in entries if n.startswith("arrays/"))]
        entries["program.json"] = json.dumps(header).encode()
        with zipfile.ZipFile(path, "w") as z:
            for name, blob in entries.items():
                z.writestr(name, blob)
    with pytest.raises(InvalidInputError):
        Program.load(path)


def test_calibration_is_stored_and_shared_by_both_backends(files, tmp_path) -> None:
    from lea_compiler.backends.board import Convert, Scale, emit_board, read_board
    from lea_compiler.backends.sim import simulate, stored_calibration
    from lea_compiler.datasets import load_data

    model, chip = files
    data = tmp_path / "cal.npz"
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    np.savez(data, x=x, y=np.zeros(64, np.int64))
    program = compile_model(model, chip, CompileOptions(k=2), calibrate_on=data).program
    path = tmp_path / "p.leac"
    program.save(path)
    loaded = Program.load(path)
    ranges = stored_calibration(loaded)
    assert ranges is not None and "cal.npz, 64 samples" in loaded.extra["calibration"]
    assert ranges.input_full_scale["fc0"] == pytest.approx(float(np.max(np.abs(x))))
    emit_board(loaded, tmp_path / "b.jsonl")
    records = read_board(tmp_path / "b.jsonl").records
    scales = {r.layer: r.x_fs for r in records if isinstance(r, Scale)}
    assert scales == ranges.input_full_scale
    converts = {(r.layer, r.block): r.full_scale_uA for r in records if isinstance(r, Convert)}
    for layer in loaded.layers:
        for block, fs in zip(layer.blocks, ranges.adc_full_scale_uA[layer.name], strict=True):
            assert converts[(layer.name, block.index)] == fs
    report = simulate(loaded, [load_data(data, loaded.graph)])
    assert report.calibration.startswith("compile time") and report.input_full_scale == ranges.input_full_scale
    uncalibrated = compile_model(model, chip, CompileOptions(k=2)).program
    assert stored_calibration(uncalibrated) is None
    assert simulate(uncalibrated, [load_data(data, uncalibrated.graph)]).calibration.startswith("none: each input")


F = np.float32


def _relu_only() -> onnx.ModelProto:
    return make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], {"x": (F, ["N", 4])}, ["y"])


def _dropout_in_training() -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Dropout", ["h", "r", "t"], ["y"], name="drop")]
    inits = {"W": np.ones((4, 3), F), "r": np.array(0.5, F), "t": np.array(True)}
    return make_model(nodes, {"x": (F, ["N", 4])}, ["y"], inits)


def _dynamic_matmul() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    return make_model(nodes, {"x": (F, ["N", 4]), "w": (F, [4, 3])}, ["y"])


@pytest.mark.parametrize("make, message", [
    (_relu_only, "the model has no matrix product (Gemm, MatMul or Conv), so it has no layer to map onto crossbars"),
    (_dropout_in_training, "node 'drop' (Dropout): training_mode=true is not supported"),
    (zipmap_classifier, "re-export without it: convert_sklearn(..., options={id(clf): {'zipmap': False}})"),
], ids=["no_matrix_product", "dropout_training", "zipmap"])
@pytest.mark.parametrize("chips", ["--chip", "--chip-dir"])
def test_cli_models_leac_cannot_map_exit_3_and_write_nothing(files, tmp_path, capsys, make, message, chips) -> None:
    _, chip = files
    model = tmp_path / "m.onnx"
    onnx.save(make(), model)
    out = tmp_path / "out"
    where = str(chip) if chips == "--chip" else str(chip.parent)
    assert main(["compile", str(model), chips, where, "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"leac: error: {model}: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def _left_constant_matmul() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["w", "x"], ["y"], name="mm")]
    return make_model(nodes, {"x": (F, [4, "N"])}, ["y"], {"w": np.ones((3, 4), np.float32)})


def _vector_weight_matmul() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    return make_model(nodes, {"x": (F, ["N", 4])}, ["y"], {"w": np.ones(4, np.float32)})


def _batched_weight_matmul() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    return make_model(nodes, {"x": (F, [2, "N", 4])}, ["y"], {"w": np.ones((2, 4, 3), np.float32)})


def _transposed_input_gemm() -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="mm", transA=1)]
    return make_model(nodes, {"x": (F, [4, "N"])}, ["y"], {"w": np.ones((4, 3), np.float32)})


def _matrix_c_gemm() -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="mm")]
    return make_model(nodes, {"x": (F, [5, 4])}, ["y"], {"w": np.ones((4, 3), np.float32),
                                                       "c": np.arange(15, dtype=np.float32).reshape(5, 3)})


def _computed_bias_conv() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="mm")]
    return make_model(nodes, {"x": (F, ["N", 1, 5, 5]), "b": (F, [2])}, ["y"], {"w": np.ones((2, 1, 3, 3), np.float32)})


@pytest.mark.parametrize("make, reason", [
    (_dynamic_matmul, "its right operand is computed, not a constant weight (an initializer or a Constant node)"),
    # review: without these reasons transA was mapped as if the input were not transposed, and a C of one value
    # per sample and column hit an assert (a bug in leac)
    (_transposed_input_gemm, "it is a Gemm with transA=1 (the data transposed)"),
    (_matrix_c_gemm, "its C is not a constant bias of one value per output column"),
    (_computed_bias_conv, "its bias is computed, not a constant"),
    # the weight is constant, but on the left: the old message ("by constant weights") said the opposite
    (_left_constant_matmul, "its constant is the left operand (W @ x); a crossbar computes x @ W, the data on the "
                            "left"),
    (_vector_weight_matmul, "its constant weight is 1-D; a crossbar holds a matrix (2-D)"),
    (_batched_weight_matmul, "its constant weight is 3-D; a crossbar holds a matrix (2-D)"),
], ids=["computed", "transA", "matrix_c", "conv_bias", "left_constant", "vector", "batched"])
@pytest.mark.parametrize("chips", ["--chip", "--chip-dir"])
def test_cli_products_that_cannot_map_exit_1_naming_pass_node_and_why(files, tmp_path, capsys, chips, make,
                                                                      reason) -> None:
    """A product canonicalize cannot lower is named with why, not with "run canonicalize first" (which a user of
    `leac compile` cannot do and which was not the cause)."""
    _, chip = files
    model = tmp_path / "m.onnx"
    onnx.save(make(), model)
    out = tmp_path / "out"
    where = str(chip) if chips == "--chip" else str(chip.parent)
    assert main(["compile", str(model), chips, where, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    after = "pass quantize (after: canonicalize): quantize" if chips == "--chip" else "compiling after canonicalize"
    assert err.startswith(f"leac: error: {after} found no matrix product that maps onto crossbars")
    op = {"_transposed_input_gemm": "Gemm", "_matrix_c_gemm": "Gemm", "_computed_bias_conv": "Conv"}.get(
        make.__name__, "MatMul")
    assert err.rstrip().endswith(f"node 'mm' ({op}): {reason}") and err.count("\n") == 1
    assert "canonicalize first" not in err and not out.exists()


def test_quantize_without_canonicalize_says_to_run_it(files) -> None:
    """Through the API, passes run by hand: a product canonicalize would lower but did not (it did not run), also
    beside one it could not lower."""
    model, _ = files
    graph = import_model(onnx.load(model))
    with pytest.raises(CompileError, match=r"quantize needs leac.MVM nodes \(run canonicalize first\)"):
        require_mvm(graph, "quantize")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mapped"),
             helper.make_node("MatMul", ["h", "v"], ["y"], name="computed")]
    mixed = import_model(make_model(nodes, {"x": (F, ["N", 4]), "v": (F, [3, 2])}, ["y"],
                                    {"w": np.ones((4, 3), np.float32)}))
    with pytest.raises(CompileError, match=r"\(run canonicalize first\).*node 'mapped' \(MatMul\)"):
        require_mvm(mixed, "quantize")


def test_prepare_refuses_a_model_without_matrix_products_before_any_chip(tmp_path) -> None:
    model = tmp_path / "relu.onnx"
    onnx.save(_relu_only(), model)
    with pytest.raises(InvalidModelError, match="no layer to map onto crossbars"):
        prepare(model)  # no device: canonicalize only, as a compile for many chips starts
    with pytest.raises(CompileError, match=r"node 'mm' \(MatMul\)"):
        prepare(import_model(_dynamic_matmul()))


def test_dump_ir_naming_an_existing_file_is_a_usage_error(tmp_path, capsys) -> None:
    """It was a FileExistsError traceback (issue 13, item 11)."""
    from lea_compiler.cli import main
    from tests.helpers import save_mlp_and_chip

    model, chip = save_mlp_and_chip(tmp_path)
    (tmp_path / "dump").write_text("a file")
    out = tmp_path / "out.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-o", str(out), "--dump-ir", str(tmp_path / "dump")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "dump").read_text() == "a file"


# Issue 13, item 17: every --json report is strict JSON. The chip's ranges keep the numbers finite; behind
# them, a report holding NaN or Infinity is an error naming the value's path, never `Infinity` on stdout.
def test_a_report_with_a_non_finite_number_is_an_error_not_invalid_json() -> None:
    from lea_compiler.report_json import NonFiniteReportError, dumps_report

    assert json.loads(dumps_report({"report": "leac-x", "a": [1.0, 2]})) == {"report": "leac-x", "a": [1.0, 2]}
    with pytest.raises(NonFiniteReportError, match=r"the leac-x report holds .* at \$\.layers\[1\]\.e"):
        dumps_report({"report": "leac-x", "layers": [{"e": 1.0}, {"e": float("inf")}]})
    with pytest.raises(NonFiniteReportError, match=r"at \$\.nan"):
        dumps_report({"nan": float("nan")})


def test_cli_json_report_with_infinity_fails_with_a_strict_json_error(files, tmp_path, capsys, monkeypatch) -> None:
    import lea_compiler.compiler as compiler  # leac compile takes compile_summary from there when it runs

    model, chip = files
    out = tmp_path / "x.leac"
    monkeypatch.setattr(compiler, "compile_summary",
                        lambda result, output: {"report": "leac-compile", "compile_seconds": float("inf")})
    assert main(["compile", str(model), "--chip", str(chip), "-o", str(out), "-k", "1", "--json"]) == 1
    captured = capsys.readouterr()
    assert ": Infinity" not in captured.out
    error = json.loads(captured.out)  # strict: the one leac-error object
    assert error["report"] == "leac-error" and "$.compile_seconds" in error["error"]
    assert "Traceback" not in captured.err and not out.exists()


# Issue 13, item 19: -k 100000 ran quantize for over 100 s before place said the chip was too small. The
# device count (the one `leac inspect` prints) is checked against the chip right after canonicalize.
def test_too_many_copies_are_refused_before_quantize(files, tmp_path, capsys, monkeypatch) -> None:
    import lea_compiler.passes.quantize as quantize

    def never(*args, **kwargs):
        raise AssertionError("quantize ran before the device check")

    monkeypatch.setattr(quantize.Quantize, "run", never)
    model, chip = files
    out = tmp_path / "x.leac"
    assert main(["inspect", str(model), "-k", "100000", "--json"]) == 0
    needed = json.loads(capsys.readouterr().out)["devices"]
    assert main(["compile", str(model), "--chip", str(chip), "-o", str(out), "-k", "100000"]) == 4
    err = capsys.readouterr().err
    assert f"need {needed} devices at k = 100000" in err and "the chip has 10000 devices in 16 arrays" in err
    assert not out.exists()
    # the same check for each chip of a batch (and no shared quantize for a chip that cannot hold the model)
    with pytest.raises(DoesNotFitError, match=f"need {needed} devices"):
        from lea_compiler.compiler import compile_prepared
        compile_prepared(prepare(model, CompileOptions(k=100000)), chip)


# Issue 13, item 8: the placer costs every offset of every array, so 14 arrays of 8192 x 8192 (a 90-byte file)
# allocated 7 GiB at once. On a chip that large it sees a view (placement_view) whose size follows the model.
def _big_chip() -> Chip:
    defects = (
        Defect(0, 5, 5, "stuck_high"),  # inside the view's cut of array 0
        Defect(0, 2000, 2000, "stuck_high"),  # outside it
        Defect(1, 3, None, "stuck_low"),  # a dead row inside the cut of array 1
        Defect(2, None, 1500, "stuck_low"),  # a dead column outside the cut of array 2
    )
    return Chip(arrays=tuple(Array(i, 2048, 2048) for i in range(3)), defects=defects)


def test_the_placement_view_of_a_large_chip_is_cut_to_the_model() -> None:
    from lea_compiler.placement.view import VIEW_MIN_SIDE, placement_view

    chip = _big_chip()
    # 4 patterns on 12.6 million devices: about 1.2 GB of cost maps and temporaries, over the 1 GiB budget
    view = placement_view(chip, [(12, 4), (12, 4), (6, 12), (6, 12)], [(12, 4)] * 6 + [(6, 12)] * 6)
    assert not view.whole and "view of 3 of 3 arrays, at most 256 x 256 each" in view.description
    assert view.chip.arrays == tuple(Array(i, VIEW_MIN_SIDE, VIEW_MIN_SIDE) for i in range(3))
    assert view.chip.defects == (Defect(0, 5, 5, "stuck_high"), Defect(1, 3, None, "stuck_low"))
    assert (view.chip.device, view.chip.periphery) == (chip.device, chip.periphery)
    # a small chip is placed whole, as before
    small = synth_chip(arrays=16, rows=25, cols=25, seed=3)
    assert placement_view(small, [(12, 4)], [(12, 4)]).chip is small


def test_a_view_keeps_the_healthiest_arrays(monkeypatch) -> None:
    import lea_compiler.placement.view as placement_view_module

    monkeypatch.setattr(placement_view_module, "VIEW_BYTES", 0)  # every chip is seen through a view
    chip = synth_chip(arrays=8, rows=25, cols=25, stuck_high=0.05, seed=1)
    stuck = {a.id: chip.defect_counts(a.id)["stuck_high"] for a in chip.arrays}
    view = placement_view_module.placement_view(chip, [(10, 10)], [(10, 10)] * 2)
    # need 200 devices, x4 = 800: two 625-device arrays, the two with the fewest stuck devices (first on ties)
    kept = [a.id for a in view.chip.arrays]
    assert kept == sorted(sorted(stuck, key=lambda i: (stuck[i], i))[:2])


def test_compile_on_a_large_chip_places_on_a_view_of_it(tmp_path, monkeypatch) -> None:
    import lea_compiler.placement.context as placement_context

    real = placement_context.cost_maps

    def bounded(problem):  # before the view: 3 x 2048 x 2048 devices, about 1.4 GB for the placer
        assert problem.chip.device_count <= 2**20, f"the placer costs {problem.chip.device_count} devices"
        return real(problem)

    monkeypatch.setattr(placement_context, "cost_maps", bounded)  # where the placers look it up
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), model)
    chip = _big_chip()
    program = compile_model(model, chip, CompileOptions(k=3)).program
    assert "on a view of 3 of 3 arrays" in program.placement["method"]
    assert program.placement["bound_uS"] == 0.0
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for half in (copy.pos, copy.neg):
                    r, c = half.region.row, half.region.col
                    assert r + block.shape[0] <= 256 and c + block.shape[1] <= 256
