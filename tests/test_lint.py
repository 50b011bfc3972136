"""Type hints are checked by mypy and style by ruff (STYLE.md rule 12), as part of the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_errors_in_the_package() -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is part of the test extra")
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), str(ROOT / "lea_compiler")])
    assert status == 0, stdout + stderr


def test_ruff_finds_no_problems() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is part of the test extra")
    done = subprocess.run([ruff, "check", "lea_compiler", "tests", "benchmarks", "examples"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
