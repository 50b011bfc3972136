"""Atomic output: a reader sees the whole file or none, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from lea_compiler.fileio import atomic_write_bytes, atomic_write_text


def test_writes_whole_file_with_umask_permissions(tmp_path) -> None:
    path = tmp_path / "out.txt"
    atomic_write_text(path, "hello")
    assert path.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_leaves_old_file_and_no_temporary(tmp_path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")


    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]
