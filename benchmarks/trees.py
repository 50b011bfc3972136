"""Another commit's tree beside this one, for the benchmarks that compare two trees' results."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def archive_tree(commit: str, into: Path) -> Path:
    """`git archive` of `commit` of this repository unpacked into the new folder `into` (returned)."""
    into.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into
