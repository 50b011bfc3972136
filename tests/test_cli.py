"""The `leac` command line: inspect, help on every command, exit statuses, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import build_parser, main
from tests.helpers import cnn_model, make_model, mlp_model

EXPORTERS = Path(__file__).parent / "fixtures" / "exporters"


def _subcommands(parser=None, prefix=()):
    parser = parser or build_parser()
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommands(sub, (*prefix, name))


@pytest.mark.parametrize("command", list(_subcommands()), ids=" ".join)
def test_every_command_has_help(command, capsys) -> None:
    assert main([*command, "--help"]) == 0
    assert "usage: leac" in capsys.readouterr().out


def test_inspect_prints_ir_and_device_table(tmp_path, capsys) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "%h0: float32[N, 12] = Gemm(%x, %W0, %b0) {transB=1}  # fc0" in out
    # 4-12-6-3 with digital biases: (4*12 + 12*6 + 6*3) weights, two devices each
    assert "fc0   Gemm  4 x 12              digital  1             1  96" in out
    assert "total: 276 devices for 3 crossbar layers at k = 1" in out
    assert main(["inspect", str(path), "--bias", "row"]) == 0
    out = capsys.readouterr().out
    assert "fc0   Gemm  5 x 12              row   1             1  120" in out
    assert "total: 318 devices for 3 crossbar layers at k = 1" in out


def test_inspect_json_costs_k_copies(tmp_path, capsys) -> None:
    path = tmp_path / "cnn.onnx"
    onnx.save(cnn_model(), path)
    assert main(["inspect", str(path), "-k", "3", "--json", "--bias", "row"]) == 0
    report = json.loads(capsys.readouterr().out)
    layers = {layer["node"]: layer for layer in report["crossbar_layers"]}
    assert layers["conv1"]["rows"] == 10 and layers["conv1"]["cols"] == 4
    assert layers["conv1"]["reads_per_sample"] == 64
    assert layers["conv2"]["rows"] == 36 and layers["conv2"]["bias_row"] is False
    assert report["devices"] == sum(2 * 3 * layer["rows"] * layer["cols"] for layer in layers.values())


@pytest.mark.parametrize("bias", ["digital", "row"])
@pytest.mark.parametrize("model", ["torch_mlp.onnx", "sklearn_mlp.onnx", "torch_cnn.onnx"],
                         ids=["Gemm", "MatMul+Add", "Conv"])
def test_inspect_predicts_the_devices_compile_uses(model, bias, tmp_path, capsys) -> None:
    """inspect costs the layers compile makes: skl2onnx's MatMul + Add has its bias row too (issue 12)."""
    chip = tmp_path / "chip.json"
    save_chip(synth_chip(arrays=32, rows=25, cols=25, seed=0), chip)
    path = str(EXPORTERS / model)
    assert main(["inspect", path, "-k", "2", "--bias", bias, "--json"]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert main(["compile", path, "--chip", str(chip), "-k", "2", "--bias", bias, "--placer", "greedy",
                 "-o", str(tmp_path / "p.leac"), "--json"]) == 0
    compiled = json.loads(capsys.readouterr().out)
    assert inspected["devices"] == compiled["devices_used"]
    assert [(c["node"], c["rows"], c["cols"], c["devices"]) for c in inspected["crossbar_layers"]] == [
        (c["name"], c["rows"], c["cols"], c["devices"]) for c in compiled["layers"]]
    assert all(c["bias"] for c in inspected["crossbar_layers"])  # every layer of these models has a bias


def test_bad_model_exits_3_without_traceback(tmp_path, capsys) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x01garbage")
    assert main(["inspect", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("leac: error: ") and "Traceback" not in err


def test_usage_errors_exit_2(capsys) -> None:
    assert main([]) == 2
    assert main(["inspect"]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["inspect", "m.onnx", "-k", "0"]) == 2
    assert "-k must be at least 1" in capsys.readouterr().err


def test_console_script_runs_as_a_process(tmp_path) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), path)
    done = subprocess.run(
        [sys.executable, "-m", "lea_compiler", "inspect", str(path), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["devices"] == 276
    missing = subprocess.run([sys.executable, "-m", "lea_compiler", "inspect", str(tmp_path / "nope.onnx")],
                             capture_output=True, text=True)
    assert missing.returncode == 3 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_exit_statuses_match_the_error_classes() -> None:
    from lea_compiler import cli
    from lea_compiler.errors import DoesNotFitError, InvalidInputError, LeacError, UsageError

    assert (cli.EXIT_BUG, cli.EXIT_USAGE, cli.EXIT_INVALID_INPUT, cli.EXIT_DOES_NOT_FIT) == (
        LeacError.exit_status, UsageError.exit_status, InvalidInputError.exit_status, DoesNotFitError.exit_status
    )


def test_inspect_a_model_without_matrix_products_says_nothing_maps(tmp_path, capsys) -> None:
    # compile refuses such a model (exit 3, tests/test_compile.py); inspect shows it and says so
    path = tmp_path / "relu.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], {"x": (np.float32, ["N", 4])}, ["y"]),
              path)
    assert main(["inspect", str(path)]) == 0
    assert "no matrix product maps to crossbars (every op runs digitally)" in capsys.readouterr().out
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["crossbar_layers"] == [] and report["devices"] == 0


@pytest.mark.parametrize("make", ["synth", "import"])
def test_an_unnamed_chip_is_reported_by_its_file_name(make, tmp_path, capsys) -> None:
    """A chip made without --name is `chip 'c.json'` in compile, simulate and emit, never `chip None` (issue 12)."""
    model, data, chip = tmp_path / "mlp.onnx", tmp_path / "d.npz", tmp_path / "c.json"
    onnx.save(mlp_model(), model)
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal((8, 4)).astype(np.float32), y=rng.integers(0, 3, 8))
    if make == "synth":
        assert main(["chip", "synth", "--arrays", "8", "--rows", "16", "--cols", "16", "--seed", "1",
                     "-o", str(chip)]) == 0
    else:
        maps = []
        for i in range(8):
            maps.append(tmp_path / f"map{i}.txt")
            np.savetxt(maps[-1], np.full((16, 16), 100e-6))
        assert main(["chip", "import", *map(str, maps), "-o", str(chip)]) == 0
    assert "name" not in json.loads(chip.read_text())
    program, other = tmp_path / "p.leac", tmp_path / "other.json"
    compile_argv = ["compile", str(model), "--chip", str(chip), "-k", "2", "--placer", "greedy", "-o", str(program)]
    capsys.readouterr()
    assert main(compile_argv) == 0
    assert "for chip 'c.json' ->" in capsys.readouterr().out
    assert main([*compile_argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chip"] == "c.json"
    chip.rename(other)  # the Program remembers the file it was compiled from
    assert main(["simulate", str(program), "--data", str(data)]) == 0
    assert "on chip 'c.json' (the chip it was compiled for)" in capsys.readouterr().out
    assert main(["simulate", str(program), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chip"] == "c.json"
    assert main(["simulate", str(program), "--data", str(data), "--chip", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chip"] == "other.json"
    board = tmp_path / "p.board.jsonl"
    assert main(["emit", str(program), "-o", str(board)]) == 0
    assert "on chip 'c.json'" in capsys.readouterr().out
    assert main(["emit", str(program), "-o", str(board), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chip"] == "c.json"
    assert main(["board", "validate", str(board)]) == 0
    assert "on chip 'c.json'" in capsys.readouterr().out


def test_the_compile_summary_names_its_error_columns(tmp_path, capsys) -> None:
    """The columns say what they measure (issue 12): placement cost and weight error, each explained under the
    table and in --help, never "mapping error" then "after selection"."""
    model, chip = tmp_path / "mlp.onnx", tmp_path / "chip.json"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.0, stuck_low=0.0, seed=0), chip)
    assert main(["compile", str(model), "--chip", str(chip), "-k", "2", "--placer", "greedy",
                 "-o", str(tmp_path / "p.leac")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("layer"))
    assert header.split("  ")[-3:] == ["quant. error", "placement cost uS", "weight error uS"]
    assert "after selection" not in out and "mapping error" not in out
    for note in ("  quant. error: ", "  placement cost: what the placer minimised", "  weight error: sum of |"):
        assert note in out
    assert "placement cost 0.0 uS, bound 0.0 uS" in out  # a defect-free chip: nothing for the placer to avoid
    assert main(["compile", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for column in ("quant. error:", "placement cost uS: what the placer minimised", "weight error uS: what the chip"):
        assert column in help_text
    assert "not comparable with the placement cost" in help_text


HOSTILE = "fc0\x1b[2J\x1b]0;owned\x07\nleac: forged line\u202e"


def _hostile_names(tmp_path: Path) -> Path:
    """The MLP with a node, a value and the graph named with terminal escapes, a newline and a bidi override."""
    model = mlp_model()
    model.graph.name = "g\x1b[31m\r\n"
    model.graph.node[0].name = HOSTILE
    path = tmp_path / "hostile.onnx"
    onnx.save(model, path)
    return path


def _assert_escaped(out: str) -> None:
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    assert not any(line.startswith("leac: forged") for line in out.splitlines())


def test_inspect_and_compile_escape_control_characters_in_names(tmp_path, capsys) -> None:
    """Names from the model are printed with control characters escaped; --json keeps them exact (issue 13)."""
    path = _hostile_names(tmp_path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    _assert_escaped(out)
    assert "# fc0\\x1b[2J\\x1b]0;owned\\x07\\nleac: forged line\\u202e" in out  # the IR printer
    assert "graph g\\x1b[31m\\r\\n (opset" in out
    assert "fc0\\x1b[2J\\x1b]0;owned\\x07\\nleac: forged line\\u202e  Gemm" in out  # the device table
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["crossbar_layers"][0]["node"] == HOSTILE
    chip = tmp_path / "chip.json"
    save_chip(synth_chip(arrays=16, rows=16, cols=16, seed=0), chip)
    assert main(["compile", str(path), "--chip", str(chip), "--placer", "greedy", "-o",
                 str(tmp_path / "p.leac")]) == 0
    out = capsys.readouterr().out
    _assert_escaped(out)
    assert "fc0\\x1b[2J\\x1b]0;owned\\x07\\nleac: forged line\\u202e" in out
    assert main(["compile", str(path), "--chip", str(chip), "--placer", "greedy", "-o",
                 str(tmp_path / "p.leac"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][0]["name"] == HOSTILE


@pytest.mark.parametrize("shape", [(0, 4), (4, 0)], ids=["no-inputs", "no-outputs"])
def test_zero_width_gemm_exits_3_and_writes_nothing(shape, tmp_path, capsys) -> None:
    """A Gemm whose weight has no rows or no columns is an invalid model, not a traceback (issue 13 item 11)."""
    rows, cols = shape
    weight = onnx.numpy_helper.from_array(np.zeros(shape, np.float32), "W")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", rows])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", cols])], [weight])
    model, chip = tmp_path / "zero.onnx", tmp_path / "chip.json"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    save_chip(synth_chip(arrays=8, rows=16, cols=16, seed=0), chip)
    out = tmp_path / "out.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert err == (f"leac: error: node 'fc' (leac.MVM): its weight matrix is {rows} x {cols} (no "
                   f"{'inputs' if rows == 0 else 'outputs'}); leac maps only layers with at least one input and "
                   "one output\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.json", "zero.onnx"]


def _compiled_mlp(tmp_path: Path, x: np.ndarray) -> tuple[Path, Path]:
    """The test MLP compiled (greedy) for a 16-array chip, and a data file of `x` with labels 0."""
    model, chip = tmp_path / "mlp.onnx", tmp_path / "chip.json"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=16, rows=16, cols=16, seed=0), chip)
    program, data = tmp_path / "p.leac", tmp_path / "d.npz"
    assert main(["compile", str(model), "--chip", str(chip), "--placer", "greedy", "-o", str(program)]) == 0
    np.savez(data, x=x, y=np.zeros(len(x), np.int64))
    return program, data


def test_simulate_negative_seed_is_a_usage_error(tmp_path, capsys) -> None:
    """--seed -1 exits 2 with one line (issue 13 item 11), for one Program and for many."""
    program, data = _compiled_mlp(tmp_path, np.zeros((4, 4), np.float32))
    capsys.readouterr()
    for programs in ([str(program)], [str(program), str(program)]):
        assert main(["simulate", *programs, "--data", str(data), "--seed", "-1"]) == 2
        assert capsys.readouterr().err == "leac: error: --seed takes a non-negative integer, got -1\n"


@pytest.mark.parametrize("text, status, message", [
    (None, 2, "is a chip file, not a Program: compile a model for it (leac compile MODEL --chip {path}) and simulate "
              "that Program, or give it as --chip to simulate a Program on it"),
    ('{"format": "leac-report", "x": 1}', 3, "is neither a Program (a .leac file of leac compile) nor a board file "
                                             "(leac emit): a JSON file of format 'leac-report'"),
    ('{"a": 1}', 3, "is neither a Program (a .leac file of leac compile) nor a board file (leac emit): it starts "
                    "like JSON"),
    ("{not json", 3, "is neither a Program (a .leac file of leac compile) nor a board file (leac emit): it starts "
                     "like JSON"),
], ids=["chip", "other_format", "no_format", "not_json"])
def test_simulate_of_a_json_file_that_is_no_board_file_says_what_it_is(tmp_path, capsys, text, status,
                                                                      message) -> None:
    """Any file starting with '{' was called a board file that needed its --program; a chip file given as the
    Program is named as one, and other JSON as neither a Program nor a board file (and nothing is written)."""
    path = tmp_path / "given.json"
    if text is None:
        save_chip(synth_chip(arrays=2, rows=4, cols=4, seed=0), path)
    else:
        path.write_text(text)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((4, 4), np.float32), y=np.zeros(4, np.int64))
    before = sorted(tmp_path.iterdir())
    assert main(["simulate", str(path), "--data", str(data)]) == status
    assert capsys.readouterr().err == f"leac: error: {path} {message.format(path=path)}\n"
    assert sorted(tmp_path.iterdir()) == before


def test_verbose_simulate_logs_its_steps_to_stderr_and_only_with_v(tmp_path) -> None:
    """`leac -v simulate` logged nothing (docs/cli.md: -v logs progress to stderr); the report on stdout is the
    same with and without it."""
    program, data = _compiled_mlp(tmp_path, np.ones((4, 4), np.float32))
    runs = {}
    for flags in ([], ["-v"]):
        done = subprocess.run([sys.executable, "-m", "lea_compiler", *flags, "simulate", str(program), "--data",
                               str(data), "--trials", "2"], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        runs[bool(flags)] = done
    assert runs[False].stderr == ""
    lines = runs[True].stderr.splitlines()
    assert lines[0].startswith("leac: software baseline (onnxruntime on the embedded model): ")
    assert [line.split(":")[1] for line in lines[1:]] == [" seed 0", " seed 0", " seed 1", " seed 1"]
    assert "programmed 3 crossbar layers" in lines[1] and "d.npz: 4 samples simulated, accuracy" in lines[2]
    strip = [line for line in runs[True].stdout.splitlines() if "time" not in line and " s" not in line]
    assert strip == [line for line in runs[False].stdout.splitlines() if "time" not in line and " s" not in line]
