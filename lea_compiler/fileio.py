"""Writing output files so that a reader never sees half of one.

Every file leac produces goes through `atomic_write_bytes`: the data lands in a
temporary file in the destination folder and is renamed over the target only
once complete, so an error or an interrupt leaves either the old file or none.
A rename replaces whatever the target is, so an existing target that is not a
regular file (a device such as /dev/null, a FIFO, a socket, a folder) is refused
before anything is written: leac never replaces a device node with a file.
A command with several outputs writes them inside `written_together`, which renames
them all into place only once every one is complete: it leaves all of them or none.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from lea_compiler.errors import InvalidInputError, UsageError

MAX_MODEL_BYTES = 2 * 1024**3
"""Most bytes of a model read, the file and its external data together: ONNX's 2 GiB protobuf limit, which a
Program's embedded model (its external data inline) must meet. The front end's limit (`onnx_frontend` uses it);
defined here so that reading a Program bounds its model without importing onnx."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(path: Path) -> str | None:
    """What `path` is when it exists and is not a regular file (symlinks followed), else None."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return "not readable as a file"
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def check_output(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None],
                 option: str = "-o", outputs: Mapping[str, str | os.PathLike[str] | None] | None = None) -> None:
    """Refuse an output path before any work: empty or naming a folder (`check_file_name`), an input file, the
    same file as another of the command's `outputs` (option -> path, checked before it), an existing non-regular
    file, in a missing folder, or in a folder where no file can be made (permissions, a read-only mount: a file
    is made there and removed).

    Raises:
        UsageError: naming `option` and what is wrong with the path.
    """
    check_file_name(output, option)
    out = Path(output)
    for other_option, other in (outputs or {}).items():
        if other is not None and _same_file(other, out):
            raise UsageError(f"{option} {output}: the same file as {other_option} {other}; the two outputs need "
                             "different names")
    for given in inputs:
        if given is not None and _same_file(given, out):
            raise UsageError(f"{option} {output}: refusing to write over the input file {given}")
    kind = _not_regular(out)
    if kind is not None:
        raise UsageError(f"{option} {output}: is {kind}; leac writes only regular files and never replaces "
                         "anything else")
    folder = out.parent
    if not folder.is_dir():
        if folder.exists():
            raise UsageError(f"{option} {output}: {folder} is not a folder")
        raise UsageError(f"{option} {output}: the folder {folder} does not exist")
    try:  # a real file, as the write will make: permissions, read-only mounts and ACLs all answer
        fd, probe = tempfile.mkstemp(prefix=_partial_prefix(out.name, os.getpid()), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"{option} {output}: cannot write in the folder {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _same_file(given: str | os.PathLike[str], out: Path) -> bool:
    """Whether `given` and `out` are one file: the same path once resolved, or (both existing) one inode."""
    same = os.path.realpath(given) == os.path.realpath(out)  # Path.resolve raises on a symlink loop
    if not same and out.exists() and Path(given).exists():
        same = os.path.samefile(given, out)
    return same


def check_file_name(output: str | os.PathLike[str], option: str = "-o") -> None:
    """Refuse an output path that is empty or names a folder by its form (`newdir/`, `out/.`, `..`): `Path` drops
    a trailing slash, so `newdir/` would be written as a file named `newdir`.

    Raises:
        UsageError: naming `option`.
    """
    text = os.fspath(output)
    if not text:
        raise UsageError(f"{option}: the path is empty; give a file name")
    if os.path.basename(text) in ("", ".", ".."):
        raise UsageError(f"{option} {text}: the path names a folder; give a file name")


_STAGED: ContextVar[list[tuple[str, Path]] | None] = ContextVar("leac_staged_writes", default=None)
"""The temporary files written inside `written_together`, with their targets; None outside it."""


@contextmanager
def written_together() -> Iterator[None]:
    """Write a command's outputs all or none: every `atomic_write_bytes` inside the block stays in its temporary
    file, and they are renamed over their targets only when the block ends without an error. A failure writing
    the second output (or any error or interrupt before the end) removes the first's temporary file, so no
    output is left; a rename that fails after others succeeded (rare: the renames are within folders that took a
    probe file, `check_output`) removes the outputs already renamed, so an old file one of them had replaced is
    lost with it, while the old files of the outputs not yet renamed stay as they were.

    Raises:
        UsageError: a rename failed (the outputs renamed before it are removed).
    """
    staged: list[tuple[str, Path]] = []
    token = _STAGED.set(staged)
    try:
        yield
    except BaseException:
        for tmp_name, _ in staged:
            _unlink_quietly(tmp_name)
        raise
    finally:
        _STAGED.reset(token)
    done: list[Path] = []
    try:
        for tmp_name, target in staged:
            os.replace(tmp_name, target)
            done.append(target)
    except BaseException as exc:
        for tmp_name, _ in staged[len(done):]:
            _unlink_quietly(tmp_name)
        for target in done:
            _unlink_quietly(target)
        if isinstance(exc, OSError):
            failed = staged[len(done)][1]
            raise UsageError(f"cannot write {failed}: {exc.strerror or exc}") from None
        raise


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file in the same folder, then rename; inside
    `written_together`, the rename waits for the block's end).

    Raises:
        UsageError: `path` is empty or names a folder (`check_file_name`), or exists and is not a regular file (it
            is never replaced).
    """
    check_file_name(path, "output")
    target = Path(path)
    kind = _not_regular(target)
    if kind is not None:
        raise UsageError(f"{target}: is {kind}; leac writes only regular files and never replaces anything else")
    folder = target.parent if str(target.parent) else Path(".")
    _remove_stale_partials(folder, target.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_partial_prefix(target.name, os.getpid()), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for sharing
        staged = _STAGED.get()
        if staged is None:
            os.replace(tmp_name, target)
        else:
            staged.append((tmp_name, target))  # renamed by written_together, with the command's other outputs
    except BaseException as exc:
        _unlink_quietly(tmp_name)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise


def _partial_prefix(name: str, pid: int) -> str:
    """Temporary files are named `.NAME.leac-partial-PID-XXXX.tmp`: a user who finds one left by a killed
    leac (SIGKILL during the write) knows what it is, and the next write of NAME removes it."""
    return f".{name}.leac-partial-{pid}-"


def _remove_stale_partials(folder: Path, name: str) -> None:
    """Remove partial files of `name` whose writer process no longer runs (never a live writer's)."""
    prefix = f".{name}.leac-partial-"
    try:
        candidates = [entry for entry in os.scandir(folder) if entry.name.startswith(prefix)
                      and entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False)]
    except OSError:
        return
    for entry in candidates:
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or _process_runs(int(pid_text)):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number no process has: leave the file alone
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def input_kind(path: str | os.PathLike[str]) -> str | None:
    """None when `path` is a regular file (symlinks followed), else what it is, for a message:
    "no such file", "is a FIFO", "is a character device", ..."""
    if not os.path.lexists(path) or not os.path.exists(path):
        return "no such file"
    kind = _not_regular(Path(path))
    return None if kind is None else f"is {kind}"


def read_input(path: str | os.PathLike[str], limit: int, what: str,
               error: type[InvalidInputError] = InvalidInputError) -> bytes:
    """The bytes of an input file, at most `limit`: refused unless it is a regular file (a symlink to
    /dev/zero reports size 0 and would be read forever), and read with that bound whatever its size says.

    Raises:
        `error` (an InvalidInputError): missing, not a regular file, unreadable, or larger than `limit`.
    """
    source = os.fspath(path)
    with open_input(source, limit, what, error) as handle:
        try:
            data = _read_bounded(handle, os.fstat(handle.fileno()).st_size, limit)
        except OSError as exc:
            raise error(f"{source}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise too_large(source, limit, what, error)
    return data


@contextmanager
def open_input(path: str | os.PathLike[str], limit: int, what: str,
               error: type[InvalidInputError] = InvalidInputError) -> Iterator[BinaryIO]:
    """An input file opened for reading in binary, for a reader that streams it (see `read_input`): refused
    unless it is a regular file whose size is at most `limit`. The reader still counts what it reads (a file
    can grow) and raises `too_large` past `limit`.

    Raises:
        `error` (an InvalidInputError): missing, not a regular file, unreadable, or larger than `limit`.
    """
    source = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore the flag)
        handle = os.fdopen(os.open(source, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except FileNotFoundError:
        raise error(f"{source}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{source}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{source}: cannot read the {what} ({exc.strerror or exc})") from None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            kind = next((kind for test, kind in _KINDS if test(info.st_mode)), "not a regular file")
            raise error(f"{source}: is {kind}, not a {what}")
        if info.st_size > limit:
            raise too_large(source, limit, what, error)
        yield handle


def too_large(source: str, limit: int, what: str,
              error: type[InvalidInputError] = InvalidInputError) -> InvalidInputError:
    """The error for an input file larger than `limit` bytes."""
    return error(f"{source}: larger than {limit} bytes ({limit / 2**20:g} MiB), more than leac reads for a {what}")


def _read_bounded(handle: BinaryIO, size: int, limit: int) -> bytes:
    """At most `limit` + 1 bytes of `handle`: first what the file's size says (so that reading a small file
    never asks for `limit` bytes of memory at once, which fails under a memory cap), then in chunks in case
    the file grew since."""
    parts = [handle.read(min(size, limit) + 1)]
    total = len(parts[0])
    while total <= limit and len(parts[-1]):
        parts.append(handle.read(min(limit + 1 - total, 2**24)))
        total += len(parts[-1])
    return parts[0] if len(parts) == 1 else b"".join(parts)
