"""Another commit's tree beside this one, for the benchmarks that compare two trees' results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def archive_tree(commit: str, into: Path) -> Path:
    """`git archive` of `commit` of this repository unpacked into the new folder `into` (returned)."""
    into.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run_in_tree(tree: Path, script: str, *args: str) -> str:
    """The standard output of `python -c script args...` importing `tree`'s lea_compiler, one BLAS thread.

    The process runs in `tree`: `python -c` puts its working directory on sys.path before PYTHONPATH, so
    started from another tree (say this repository's root) it would import that one instead."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=tree, check=True, capture_output=True,
                          text=True).stdout
