"""One fuzz case: build it, run its `leac` command, check the contract (tests/test_fuzz.py, bench_fuzz.py).

A case is a reader (onnx, chip, data, program), a class and one command:

    corrupt        a valid file corrupted at random (tests/fuzzing.py)
    bomb           an archive member that inflates to GiBs (tests/fuzzing_hostile.py)
    size_lie       sizes, shapes, names or references that lie
    special_input  the input is a FIFO, a device node, a symlink to one, a directory...
    output_path    -o is a FIFO, a device node, a socket, a directory, a missing folder, an input...

The hostile classes copy every file their command reads into the case's
folder, so that the folder holds all a command could write over. The
contract checked for every case (`check_case`):

- no traceback, no "internal error", no MemoryError: a clean status the case allows;
- a failure prints a one-line `leac: error: ...` message (further lines only
  an indented list of problems), and with `--json` one `leac-error` object;
- a failure leaves the case's folder unchanged: no file added, removed or
  rewritten, no temporary file, every FIFO, device node, socket and symlink
  still what it was;
- a success changes nothing but the output, leaves a device node a device,
  and writes a complete output (the Program loads, the board file validates)
  and one JSON report.

Commands run with the case's folder as the current directory (so that a read
or write relative to it shows). `run_case` runs in-process under a time limit
(for the test suite); bench_fuzz.py runs each command in a forked child with
memory and time limits and checks it with the same `check_case`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import select
import shutil
import signal
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto

from lea_compiler.cli import main
from tests.fuzzing import ALLOWED, COMPILE_FLAGS, READERS, Base, Bases, corrupt, make_bases
from tests.fuzzing_hostile import (
    HOSTILE_CLASSES,
    chip_size_lie,
    data_bomb,
    data_size_lie,
    make_special,
    onnx_size_lie,
    output_path,
    program_bomb,
    program_size_lie,
    special_input,
)

__all__ = ["ALLOWED", "CLASSES", "READERS", "Bases", "Case", "ContractViolation", "Outcome", "Ran", "check_case",
           "classes_for", "clear_folder", "make_bases", "make_case", "run_case", "run_in_process", "run_sandboxed",
           "snapshot"]

CLASSES = ("corrupt", *HOSTILE_CLASSES)

_SUFFIX = {"onnx": ".onnx", "chip": ".json", "data": ".npz", "program": ".leac"}


def classes_for(reader: str) -> tuple[str, ...]:
    """The case classes that apply to `reader` (only .npz data and Programs are archives that can inflate)."""
    return CLASSES if reader in ("data", "program") else tuple(c for c in CLASSES if c != "bomb")


@dataclass(frozen=True)
class Case:
    """One command on one prepared folder, and the statuses it may give."""

    reader: str
    klass: str
    model: str
    kind: str  # what the generator did
    command: str
    argv: list[str]
    folder: Path
    allowed: frozenset[int]
    output: Path | None  # where a successful command writes (None: it writes nothing)

    def describe(self) -> str:
        return f"{self.reader} {self.klass} {self.kind!r}, leac {' '.join(self.argv)}"


@dataclass(frozen=True)
class Ran:
    """What running a case's command gave."""

    status: int | None  # None: killed or timed out (see `died`)
    stdout: str
    stderr: str
    seconds: float = 0.0
    peak_rss_kb: int = 0
    died: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one case did: its reader, class, generator, command and exit status."""

    reader: str
    klass: str
    model: str
    corruption: str
    command: str
    argv: list[str] = field(repr=False)
    status: int
    stderr: str = field(repr=False)
    seconds: float = 0.0
    peak_rss_kb: int = 0

    @property
    def label(self) -> str:
        return {0: "ok", 2: "usage", 3: "invalid_input", 4: "does_not_fit"}.get(self.status, f"status_{self.status}")


class ContractViolation(AssertionError):
    """A case broke the contract; the message says which case and how (`why` is the short reason)."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why


# --------------------------------------------------------------------------- building a case
def _command(reader: str, bases: Bases, base: Base, path: Path, out: Path,
             rnd: random.Random) -> tuple[str, list[str]]:
    compile_args = [*COMPILE_FLAGS, "-o", str(out), "--json"]
    simulate = ["--json", "--threads", "1"]
    if reader == "onnx":
        if rnd.random() < 0.75:
            return "compile", ["compile", str(path), "--chip", str(bases.chip), *compile_args]
        return "inspect", ["inspect", str(path), "--json"]
    if reader == "chip":
        which = rnd.choice(["compile", "compile", "validate", "show", "simulate"])
        if which == "compile":
            return which, ["compile", str(base.model), "--chip", str(path), *compile_args]
        if which == "validate":
            return which, ["chip", "validate", str(path)]
        if which == "simulate":
            return which, ["simulate", str(base.program), "--data", str(base.data), "--chip", str(path), *simulate]
        return which, ["chip", "show", str(path), "--json"]
    if reader == "data":
        if rnd.random() < 0.7:
            return "simulate", ["simulate", str(base.program), "--data", str(path), *simulate]
        return "calibrate", ["compile", str(base.model), "--chip", str(bases.chip), "--calibrate", str(path),
                             *compile_args]
    if rnd.random() < 0.6:
        return "emit", ["emit", str(path), "-o", str(out), "--json"]
    return "simulate", ["simulate", str(path), "--data", str(base.data), *simulate]


def _local_copies(bases: Bases, base: Base, folder: Path) -> tuple[Bases, Base]:
    """The base files a command reads, copied into the case's folder (so that a write over one shows)."""
    local = Base(folder / "model.onnx", folder / "data.npz", folder / "program.leac")
    for source, target in ((base.model, local.model), (base.data, local.data), (base.program, local.program),
                           (bases.chip, folder / "chip.json")):
        shutil.copyfile(source, target)
    return Bases(folder, folder / "chip.json", local, local), local


def _output_command(reader: str, bases: Bases, base: Base, out: Path, json_flag: list[str]) -> tuple[str, list[str]]:
    """A command of `reader` that writes `-o out`: compile (onnx, chip; data with --calibrate) or emit."""
    if reader == "program":
        return "emit", ["emit", str(base.program), "-o", str(out), *json_flag]
    argv = ["compile", str(base.model), "--chip", str(bases.chip), *COMPILE_FLAGS, "-o", str(out), *json_flag]
    if reader == "data":
        return "calibrate", [*argv, "--calibrate", str(base.data)]
    return "compile", argv


def make_case(reader: str, klass: str, bases: Bases, folder: Path, rnd: random.Random) -> Case:
    """Prepare one case of `klass` for `reader` in the empty `folder`: its files and its command."""
    base = bases.pick(rnd)
    path = folder / f"input{_SUFFIX[reader]}"
    out = folder / ("out.board.jsonl" if reader == "program" else "out.leac")
    if klass == "corrupt":
        kind, content = corrupt(reader, bases, base, rnd)
        path.write_bytes(content)
        command, argv = _command(reader, bases, base, path, out, rnd)
        return Case(reader, klass, base.model.stem, kind, command, argv, folder, frozenset(ALLOWED[reader]),
                    out if "-o" in argv else None)
    local_bases, local = _local_copies(bases, base, folder)
    if klass == "output_path":
        reader_input = {"onnx": local.model, "chip": local_bases.chip, "data": local.data,
                        "program": local.program}[reader]
        an_input = reader_input  # emit reads only the Program; compile reads the model and the chip too
        if reader != "program" and rnd.random() < 0.3:
            an_input = rnd.choice([local.model, local_bases.chip])
        kind, target, allowed = output_path(folder, out, an_input, rnd)
        command, argv = _output_command(reader, local_bases, local, target, ["--json"] if rnd.random() < 0.5 else [])
        return Case(reader, klass, base.model.stem, f"{kind}:{an_input.name}", command, argv, folder, allowed,
                    target)
    if klass == "special_input":
        if reader == "onnx" and rnd.random() < 0.3:
            kind, allowed = _external_special(local.model, path, folder, rnd), frozenset({3})
        else:
            kind, allowed = special_input(path, rnd), frozenset({3})
    else:
        generator: dict[str, Callable[[], tuple[str, bytes, frozenset[int]]]] = {
            "program": lambda: (program_bomb if klass == "bomb" else program_size_lie)(local, rnd),
            "data": lambda: (data_bomb if klass == "bomb" else data_size_lie)(local, rnd),
            "chip": lambda: chip_size_lie(rnd),
            "onnx": lambda: onnx_size_lie(local, folder, rnd),
        }
        kind, content, allowed = generator[reader]()
        path.write_bytes(content)
    command, argv = _command(reader, local_bases, local, path, out, rnd)
    if command == "compile" and reader == "chip":
        allowed |= {4}  # a valid chip may be too small
    return Case(reader, klass, base.model.stem, kind, command, argv, folder, allowed, out if "-o" in argv else None)


def _external_special(model: Path, path: Path, folder: Path, rnd: random.Random) -> str:
    """The model at `path` keeps one initializer in external data, `weights.bin`, a special file."""
    proto = onnx.load(str(model))
    init = proto.graph.initializer[0]
    init.ClearField("raw_data")
    del init.float_data[:]
    init.data_location = TensorProto.EXTERNAL
    init.external_data.add(key="location", value="weights.bin")
    path.write_bytes(proto.SerializeToString())
    kind = rnd.choice(["fifo", "dev_zero", "dev_urandom", "link_dev_zero", "dir", "loop"])
    return f"external_data:{make_special(folder / 'weights.bin', kind)}"


# --------------------------------------------------------------------------- the folder, before and after
def snapshot(folder: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under `folder` (symlinks not followed): its kind and, for a regular file, its identity
    (inode, size, modification time), for a special file its device numbers, for a symlink its target."""
    entries: dict[str, tuple[object, ...]] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            full = os.path.join(root, name)
            info = os.lstat(full)
            mode = info.st_mode
            rel = os.path.relpath(full, folder)
            if stat.S_ISREG(mode):
                entries[rel] = ("file", info.st_ino, info.st_size, info.st_mtime_ns)
            elif stat.S_ISLNK(mode):
                entries[rel] = ("symlink", os.readlink(full))
            elif stat.S_ISDIR(mode):
                entries[rel] = ("dir",)
            elif stat.S_ISCHR(mode):
                entries[rel] = ("char_device", info.st_rdev)
            elif stat.S_ISFIFO(mode):
                entries[rel] = ("fifo",)
            elif stat.S_ISSOCK(mode):
                entries[rel] = ("socket",)
            else:
                entries[rel] = ("other", mode)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return entries


def clear_folder(folder: Path) -> None:
    """Empty `folder` (create it if needed) without following symlinks: FIFOs, nodes and sockets unlinked."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


# --------------------------------------------------------------------------- running and checking
class CaseTimeout(BaseException):
    """An in-process case ran past its time limit (a BaseException: `leac`'s handlers must not catch it)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(case: Case, timeout_s: float | None = 20.0) -> Ran:
    """Run the case's command through `lea_compiler.cli.main` in this process, in the case's folder."""
    stdout, stderr = io.StringIO(), io.StringIO()
    died = None
    status: int | None = None
    with contextlib.chdir(case.folder), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            with _time_limit(timeout_s):
                status = main(case.argv)
        except CaseTimeout:
            died = f"timed out after {timeout_s} s"
    return Ran(status, stdout.getvalue(), stderr.getvalue(), died=died)


def check_case(case: Case, ran: Ran, before: dict[str, tuple[object, ...]],
               after: dict[str, tuple[object, ...]]) -> Outcome:
    """Check what `ran` did against the contract (the module docstring).

    Raises:
        ContractViolation: naming the case, its command, the problem, the status and the end of stderr.
    """
    def fail(why: str) -> ContractViolation:
        return ContractViolation(f"{case.describe()}: {why}\nstatus {ran.status}; stderr:\n{ran.stderr[-3000:]}",
                                 why)

    if ran.died is not None:
        raise fail(ran.died)
    status = ran.status
    assert status is not None
    if "MemoryError" in ran.stderr:
        raise fail("out of memory (MemoryError)")
    if "Traceback" in ran.stderr or "internal error" in ran.stderr:
        raise fail("a traceback")
    if status not in case.allowed:
        raise fail(f"status {status} is not one of {sorted(case.allowed)}")
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    out = None if case.output is None else os.path.relpath(os.path.normpath(case.output), case.folder)
    as_json = "--json" in case.argv
    if status != 0:
        lines = ran.stderr.rstrip("\n").split("\n")
        if not lines[0].startswith("leac: error: ") or len(lines[0]) <= len("leac: error: "):
            raise fail("no one-line 'leac: error: ...' message on stderr")
        if any(line and not line[0].isspace() for line in lines[1:]):
            raise fail("the message has more than one line (beyond an indented list of problems)")
        if as_json:
            report = _one_json_object(ran.stdout)
            if report is None or report.get("report") != "leac-error" or report.get("exit_status") != status:
                raise fail(f"--json did not print one leac-error object: {ran.stdout[:300]!r}")
        if changed:
            raise fail(f"the folder changed on failure: {_changes(changed, before, after)}")
        return _outcome(case, ran)
    unexpected = [name for name in changed if name != out]
    if unexpected:
        raise fail(f"the folder changed beyond the output: {_changes(unexpected, before, after)}")
    if out is not None:
        was, now = before.get(out), after.get(out)
        if was is not None and was[0] not in ("file", "symlink") and (now is None or now[0] != was[0]):
            raise fail(f"the output {out} was {was[0]} and is now {now and now[0]}")
        if now is None:
            raise fail(f"no output {out} after a success")
        if now[0] == "file":
            _check_output(case, case.output, fail)
    if as_json and case.command != "validate" and _one_json_object(ran.stdout) is None:
        raise fail(f"stdout is not one JSON object: {ran.stdout[:300]!r}")
    return _outcome(case, ran)


def _outcome(case: Case, ran: Ran) -> Outcome:
    assert ran.status is not None
    return Outcome(case.reader, case.klass, case.model, case.kind, case.command, case.argv, ran.status, ran.stderr,
                   ran.seconds, ran.peak_rss_kb)


def _one_json_object(text: str) -> dict[str, object] | None:
    try:
        report = json.loads(text)
    except ValueError:
        return None
    return report if isinstance(report, dict) and report else None


def _changes(names: list[str], before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]) -> str:
    return "; ".join(f"{name}: {before.get(name, ('absent',))[0]} -> {after.get(name, ('absent',))[0]}"
                     for name in names[:6])


def _check_output(case: Case, out: Path | None, fail: Callable[[str], ContractViolation]) -> None:
    """A successful command's output file is complete: the Program loads, the board file validates."""
    from lea_compiler.backends.board import validate_board
    from lea_compiler.errors import LeacError
    from lea_compiler.program import Program

    assert out is not None
    try:
        if case.command == "emit":
            problems = validate_board(out)
            if problems:
                raise fail(f"the board file written is invalid: {problems[:3]}")
        else:
            Program.load(out)
    except LeacError as exc:
        raise fail(f"the output written does not read back: {exc}") from None


SANDBOX_OUTPUT_LIMIT = 1 * 2**30
"""RLIMIT_FSIZE of a sandboxed case: no output of these cases comes near it; a runaway write is killed."""
HARNESS_EXIT = 199
"""A sandboxed child's exit status when the harness itself failed in it (not leac)."""
MEMORY_LIMIT = 3 * 2**30
"""RLIMIT_AS of a sandboxed case (bench_fuzz.py --memory-limit-gib): the issue's bounded-memory contract."""


def run_sandboxed(case: Case, timeout_s: float, memory_limit: int, scratch: Path,
                  target: Callable[[list[str]], int] = main) -> Ran:
    """Run `case`'s command in a forked child with an address-space limit; kill it after `timeout_s`.

    The child's stdout and stderr (Python's and the C libraries') go to files in `scratch`, outside the
    case's folder; its peak RSS comes from wait4. `target` is what the child runs (`leac`'s main).
    """
    out_file, err_file = scratch / "stdout", scratch / "stderr"
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = HARNESS_EXIT
        try:
            os.setpgid(0, 0)
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
            resource.setrlimit(resource.RLIMIT_FSIZE, (SANDBOX_OUTPUT_LIMIT, SANDBOX_OUTPUT_LIMIT))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            for fd, path in ((1, out_file), (2, err_file)):
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(handle, fd)
                os.close(handle)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child exits with os._exit
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.chdir(case.folder)
            status = target(case.argv)
        except BaseException:  # the harness failed in the child: say so on its stderr
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # also here, against the race with the child's own call
    died = _wait(pid, timeout_s)
    _, wait_status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    stdout = out_file.read_text(errors="replace")
    stderr = err_file.read_text(errors="replace")
    status = None
    if died is None:
        if os.WIFSIGNALED(wait_status):
            died = f"killed by signal {signal.Signals(os.WTERMSIG(wait_status)).name}"
        elif os.WEXITSTATUS(wait_status) == HARNESS_EXIT:
            died = f"harness error in the child: {stderr[-1500:]}"
        else:
            status = os.WEXITSTATUS(wait_status)
    return Ran(status, stdout, stderr, seconds, usage.ru_maxrss, died)


def _wait(pid: int, timeout_s: float) -> str | None:
    """Wait for the child to exit (not reaping it); kill its process group after `timeout_s`."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)
    if ready:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return f"timed out after {timeout_s:g} s (killed)"


def run_case(reader: str, bases: Bases, workdir: Path, rnd: random.Random, classes: tuple[str, ...] = ("corrupt",),
             timeout_s: float = 20.0, sandboxed: bool = False) -> Outcome:
    """Build a case of one of `classes` for `reader` in `workdir` (emptied first), run it, check it.

    In-process by default; `sandboxed`: in a forked child under `MEMORY_LIMIT` (scratch files next to `workdir`).

    Raises:
        ContractViolation: with the case, the command, its status and its stderr.
    """
    clear_folder(workdir)
    case = make_case(reader, rnd.choice(classes), bases, workdir, rnd)
    before = snapshot(workdir)
    if sandboxed:
        scratch = workdir.with_name(workdir.name + "-scratch")
        scratch.mkdir(exist_ok=True)
        ran = run_sandboxed(case, timeout_s, MEMORY_LIMIT, scratch)
    else:
        ran = run_in_process(case, timeout_s)
    return check_case(case, ran, before, snapshot(workdir))
