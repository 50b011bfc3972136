"""Atomic output: a reader sees the whole file or none, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from lea_compiler.errors import InvalidInputError
from lea_compiler.fileio import atomic_write_bytes, atomic_write_text, read_input


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


def test_a_partial_file_left_by_a_killed_writer_is_named_and_removed_by_the_next_write(tmp_path) -> None:
    """SIGKILL during the fsync left `.NAME.XXXX.tmp` behind (issue 13, item 18)."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has ended
    stale = tmp_path / f".out.leac.leac-partial-{dead_pid}-abcd.tmp"
    stale.write_bytes(b"half")
    live = tmp_path / f".out.leac.leac-partial-{os.getpid()}-efgh.tmp"  # a running writer's: kept
    live.write_bytes(b"writing")
    other = tmp_path / f".other.leac-partial-{dead_pid}-ijkl.tmp"  # another output's: kept
    other.write_bytes(b"other")
    atomic_write_bytes(tmp_path / "out.leac", b"new")
    assert sorted(os.listdir(tmp_path)) == sorted(["out.leac", live.name, other.name])


def test_a_folder_that_cannot_hold_files_is_a_usage_error(tmp_path, monkeypatch) -> None:
    """`-o` into /proc was a traceback (issue 13, item 11); /proc is not touched here: the folder's refusal
    (EROFS, as /proc and read-only mounts answer) is simulated."""
    import errno

    from lea_compiler import fileio
    from lea_compiler.errors import UsageError

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    with pytest.raises(UsageError, match="cannot write .*Read-only file system"):
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert os.listdir(tmp_path) == []


def test_read_input_allocates_what_the_file_holds_not_the_limit(tmp_path) -> None:
    """A 3-byte file read with a 1 TiB limit: read(limit + 1) allocated the limit (MemoryError under ulimit -v;
    here, a terabyte, always)."""
    path = tmp_path / "small.bin"
    path.write_bytes(b"abc")
    assert read_input(path, 2**40, "file") == b"abc"


def test_read_input_still_bounds_a_file_larger_than_the_limit(tmp_path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 100)
    with pytest.raises(InvalidInputError, match="larger than 99 bytes"):
        read_input(path, 99, "file")
    assert read_input(path, 100, "file") == b"x" * 100
