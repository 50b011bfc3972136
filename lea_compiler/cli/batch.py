"""What the batch forms of `leac compile` (many chips) and `leac simulate` (many Programs) print alike:
a progress line per finished job, and each failed job's error on stderr."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from lea_compiler.report_json import dumps_report


class JobResult(Protocol):
    """What the progress lines and error messages need of a chip's or a Program's result."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def seconds(self) -> float: ...

    @property
    def error(self) -> str | None: ...

    @property
    def traceback(self) -> str | None: ...


class Progress:
    """One line per finished job on stderr; on a terminal, one line rewritten in place."""

    def __init__(self, stream: Any, *, live: bool) -> None:
        self.stream = stream
        self.live = live
        self.start = time.perf_counter()
        self.failed = 0
        self.shown = False

    def __call__(self, result: JobResult, done: int, total: int) -> None:
        self.failed += not result.ok
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (total - done)
        what = "ok" if result.ok else result.status.replace("_", " ")
        line = (f"[{done}/{total}] {result.name}: {what} ({result.seconds:.2f} s); "
                f"{self.failed} failed so far; {elapsed:.0f} s elapsed, about {left:.0f} s left")
        if self.live:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.live and self.shown:
            self.stream.write("\n")
            self.stream.flush()


def first_line(text: str | None, width: int = 70) -> str:
    """The first line of an error message, cut to `width` characters for a table cell."""
    if not text:
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= width else line[:width - 3] + "..."


def print_failures(failed: Sequence[JobResult]) -> None:
    """Each failed job's traceback (a bug) and `leac: error: FILE: message` on stderr."""
    for result in failed:
        if result.traceback:
            print(result.traceback, end="", file=sys.stderr)
        error = result.error or ""
        print(f"leac: error: {error if result.source in error else f'{result.source}: {error}'}", file=sys.stderr)


class BatchOutcome(Protocol):
    """What `run_batch` needs of a batch's result."""

    @property
    def failed(self) -> Sequence[JobResult]: ...

    @property
    def exit_status(self) -> int: ...

    def to_json(self) -> dict[str, Any]: ...


B = TypeVar("B", bound=BatchOutcome)


def run_batch(args: argparse.Namespace, run: Callable[[Progress | None], B], print_table: Callable[[B], None]) -> int:
    """Run a batch with progress lines (on a terminal, or with -v; never with --json), print its table or its
    JSON object, then every failed job's error; the batch's exit status."""
    progress = None
    if not args.json and (sys.stderr.isatty() or bool(getattr(args, "verbose", False))):
        progress = Progress(sys.stderr, live=sys.stderr.isatty())
    try:
        result = run(progress)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print(dumps_report(result.to_json()))
    else:
        print_table(result)
    print_failures(result.failed)
    return result.exit_status
