"""The `leac` process moves what its imports made out of the garbage collector's reach (`gc.freeze`) before its
command runs; `main` called in a process of its own (tests, notebooks) leaves the collector alone."""

from __future__ import annotations

import gc

import pytest

from lea_compiler.cli import entry_point, main


def test_the_process_entry_freezes_the_imports_and_main_alone_does_not(monkeypatch, capsys) -> None:
    assert gc.get_freeze_count() == 0
    try:
        assert main(["--version"]) == 0
        assert gc.get_freeze_count() == 0  # --version exits in the parser, before anything runs
        assert main(["chip", "--help"]) == 0
        assert gc.get_freeze_count() == 0
        assert main(["inspect", "no-such.onnx", "--json"]) == 3
        assert gc.get_freeze_count() == 0  # run, but not frozen: the caller's collector is its own
        assert main(["inspect", "no-such.onnx", "--json"], freeze_imports=True) == 3
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # leac's modules, numpy's, ...
        gc.unfreeze()
        monkeypatch.setattr("sys.argv", ["leac", "inspect", "no-such.onnx"])
        with pytest.raises(SystemExit) as exit_info:
            entry_point()
        assert exit_info.value.code == 3 and gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
    assert "no-such.onnx" in capsys.readouterr().err
