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


def test_written_together_renames_every_output_only_at_the_end(tmp_path) -> None:
    from lea_compiler.fileio import written_together

    first, second = tmp_path / "a.leac", tmp_path / "b.json"
    with written_together():
        atomic_write_bytes(first, b"a")
        assert not first.exists()  # staged: a reader sees nothing until both are complete
        atomic_write_text(second, "b")
    assert first.read_bytes() == b"a" and second.read_text() == "b"
    assert sorted(os.listdir(tmp_path)) == ["a.leac", "b.json"]


def test_a_failed_second_output_leaves_neither_and_keeps_an_old_first(tmp_path) -> None:
    """The second output's folder is a regular file: its write fails, and the first is neither written nor
    replaced (no temporary file left)."""
    from lea_compiler.errors import UsageError
    from lea_compiler.fileio import written_together

    afile = tmp_path / "afile"
    afile.write_bytes(b"")
    old = tmp_path / "old.leac"
    old.write_bytes(b"old")
    for first in (tmp_path / "new.leac", old):
        with pytest.raises(UsageError, match=f"^cannot write {afile / 'r.json'}: Not a directory$"):
            with written_together():
                atomic_write_bytes(first, b"new")
                atomic_write_bytes(afile / "r.json", b"r")
        assert sorted(os.listdir(tmp_path)) == ["afile", "old.leac"] and old.read_bytes() == b"old"
    with pytest.raises(KeyboardInterrupt):  # an interrupt between the writes: nothing either
        with written_together():
            atomic_write_bytes(tmp_path / "new.leac", b"new")
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["afile", "old.leac"]


def test_a_rename_failing_after_another_removes_the_outputs_renamed(tmp_path, monkeypatch) -> None:
    from lea_compiler import fileio
    from lea_compiler.errors import UsageError

    real, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", second_fails)
    with pytest.raises(UsageError, match="^cannot write .*b.json: No space left on device$"):
        with fileio.written_together():
            atomic_write_bytes(tmp_path / "a.leac", b"a")
            atomic_write_bytes(tmp_path / "b.json", b"b")
    assert os.listdir(tmp_path) == []


def test_check_output_refuses_a_folder_that_cannot_hold_a_file_before_any_work(tmp_path, monkeypatch) -> None:
    """Permissions cannot be tested as root (root writes anywhere): the folder's refusal is simulated; a parent
    that is a regular file is real. A folder that can hold the file is left as it was."""
    from lea_compiler import fileio
    from lea_compiler.errors import UsageError

    fileio.check_output(tmp_path / "out.leac", [])
    assert os.listdir(tmp_path) == []  # the probe file is removed
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(UsageError, match=f"^--readback {tmp_path}/afile/r.json: {tmp_path}/afile is not a folder$"):
        fileio.check_output(tmp_path / "afile" / "r.json", [], "--readback")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    with pytest.raises(UsageError, match=f"^-o {tmp_path}/out.leac: cannot write in the folder {tmp_path} "
                                         r"\(Permission denied\)$"):
        fileio.check_output(tmp_path / "out.leac", [])
    assert os.listdir(tmp_path) == ["afile"]
