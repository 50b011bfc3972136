"""Copy counts per crossbar layer: `-k fc1=4,fc2=2,default=3`, parsed, resolved, compiled, run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lea_compiler as leac
from lea_compiler.backends.board import board_schedule, emit_board, read_board, validate_board
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.layer_sizes import canonical, counts, ensemble_counts, pairs_of
from lea_compiler.program import Program
from tests.helpers import mlp_model

NAMES = ["fc0", "fc1", "fc2"]  # mlp_model's crossbar layers, as leac inspect prints them


def test_a_spec_is_read_and_kept_in_one_canonical_form() -> None:
    assert canonical(3) == 3 and canonical("4") == 4
    assert canonical("fc2=2, default=3 ,fc0=4") == "fc0=4,fc2=2,default=3"
    assert canonical({"default": 3, "fc2": 2, "fc0": 4}) == "fc0=4,fc2=2,default=3"
    for bad, message in ((0, "at least 1"), (True, "count >= 1"), ("fc0", "neither a count"), ("fc0=x", "neither"),
                         ("fc0=1,fc0=2", "more than once"), ({"fc0": 0}, "not a count"), ("", "neither"),
                         (2.5, "float")):
        with pytest.raises(UsageError, match=message):
            canonical(bad)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.@]{0,8}", fullmatch=True), st.integers(1, 64), min_size=1))
def test_the_canonical_form_reads_back_as_the_same_counts(given_counts: dict[str, int]) -> None:
    spec = canonical(given_counts)
    assert canonical(spec) == spec and pairs_of(spec) == given_counts


def test_counts_name_the_layers_and_fall_back() -> None:
    assert counts("fc1=4,default=2", NAMES) == {"fc0": 2, "fc1": 4, "fc2": 2}
    assert counts("fc1=1", NAMES, "beta", fallback={"fc0": 3, "fc1": 3, "fc2": 5}) == {"fc0": 3, "fc1": 1, "fc2": 5}
    with pytest.raises(UsageError, match="no crossbar layer named 'fc9'; the layers are fc0, fc1, fc2"):
        counts("fc9=2,default=1", NAMES)
    with pytest.raises(UsageError, match="layer 'fc0' has no count"):
        counts("fc1=2", NAMES)
    assert ensemble_counts("fc1=4,default=2", "fc1=3", NAMES) == ({"fc0": 2, "fc1": 4, "fc2": 2},
                                                                    {"fc0": 2, "fc1": 3, "fc2": 2})
    with pytest.raises(UsageError, match="fc0 \\(beta 3, k 2\\)"):
        ensemble_counts("fc1=4,default=2", 3, NAMES)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sizes")
    paths = {"model": folder / "mlp.onnx", "chip": folder / "chip.json"}
    onnx.save(mlp_model((4, 12, 6, 3)), paths["model"])
    save_chip(synth_chip(arrays=8, rows=25, cols=25, stuck_high=0.03, stuck_low=0.01, seed=2), paths["chip"])
    return paths


def test_a_per_layer_program_round_trips_emits_validates_and_simulates(files: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    program = leac.compile(files["model"], files["chip"], k={"fc0": 4, "default": 2}, beta="fc0=3", time_limit_s=2)
    assert [(layer.alpha, layer.beta) for layer in program.layers] == [(4, 3), (2, 2), (2, 2)]
    assert program.options["k"] == "fc0=4,default=2" and program.options["beta"] == "fc0=3"
    assert program.devices_used == 2 * (4 * 4 * 12 + 2 * 12 * 6 + 2 * 6 * 3)
    path = tmp_path / "p.leac"
    program.save(path)
    loaded = Program.load(path)
    assert loaded.to_bytes() == program.to_bytes()
    board = tmp_path / "p.board.jsonl"
    emit_board(loaded, board)
    assert not validate_board(board)
    data = [Dataset("d", np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32),
                    np.random.default_rng(1).integers(0, 3, 64))]
    direct = simulate(loaded, data, seed=3)
    through = simulate(loaded, data, seed=3, board=board_schedule(read_board(board)))
    assert through.accuracy == direct.accuracy and through.layer_error == direct.layer_error


def test_leac_compile_takes_per_layer_counts_and_refuses_unknown_layers(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.leac"
    assert main(["compile", str(files["model"]), "--chip", str(files["chip"]), "-k", "fc2=3,default=1",
                 "--time-limit", "2", "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["k"] == "fc2=3,default=1" and [layer["alpha"] for layer in report["layers"]] == [1, 1, 3]
    for argv, message in ((["-k", "fc9=2,default=1"], "no crossbar layer named 'fc9'; the layers are fc0, fc1, fc2"),
                          (["-k", "fc0=2"], "layer 'fc1' has no count"),
                          (["-k", "fc0=two"], "neither a count nor layer=count pairs"),
                          (["-k", "2", "--beta", "fc0=3"], "fc0 \\(beta 3, k 2\\)"),
                          (["-k", "fc0=2,default=1", "--ensemble", "network"], "one -k for the whole network")):
        bad = tmp_path / "bad.leac"
        assert main(["compile", str(files["model"]), "--chip", str(files["chip"]), *argv, "-o", str(bad)]) == 2
        assert __import__("re").search(message, capsys.readouterr().err), argv
        assert not bad.exists()


def test_when_k_does_not_fit_the_message_says_what_would(files: dict[str, Path]) -> None:
    per_copy = 2 * (4 * 12 + 12 * 6 + 6 * 3)  # 276 devices; the chip has 8 x 625 = 5000
    with pytest.raises(DoesNotFitError, match=f"at most k = {5000 // per_copy} fits by device count "
                                              f"\\({per_copy} devices per copy.*-k auto --calibrate DATA.npz "
                                              f"choose them within 4500 devices"):
        leac.compile(files["model"], files["chip"], k=40)
    with pytest.raises(DoesNotFitError, match="per copy of every layer\\)$"):  # one count for the network ensemble
        leac.compile(files["model"], files["chip"], k=40, ensemble="network")
    with pytest.raises(DoesNotFitError, match="k = fc0=100,default=1"):
        leac.compile(files["model"], files["chip"], k="fc0=100,default=1")


def test_the_network_ensemble_takes_one_count(files: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="one k for the whole network"):  # a wrong call, as -k is on the CLI
        leac.compile(files["model"], files["chip"], k="fc0=2,default=1", ensemble="network")


def test_inspect_costs_per_layer_counts(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(files["model"]), "-k", "fc1=3,default=1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [layer["k"] for layer in report["crossbar_layers"]] == [1, 3, 1]
    assert report["devices"] == 2 * (4 * 12 + 3 * 12 * 6 + 6 * 3)
