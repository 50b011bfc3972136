"""The exceptions leac raises, one hierarchy so callers can catch `LeacError`.

Each class carries its exit status in `exit_status` (1 cannot compile, 2 usage,
3 invalid input, 4 does not fit), which `lea_compiler.cli.main` returns after
printing the message (cli/main.py names them `EXIT_*`, with 130 and 143 for signals):
a user's bad input is never a traceback, and an unexpected exception is a bug (status 1).
"""

from __future__ import annotations


class LeacError(Exception):
    """Base of every error leac raises on purpose."""

    exit_status = 1


class UsageError(LeacError):
    """The command line or API call itself is wrong (bad option combination)."""

    exit_status = 2


class InvalidInputError(LeacError):
    """An input file (model, chip, data) cannot be used as given."""

    exit_status = 3


class InvalidModelError(InvalidInputError):
    """The ONNX model is malformed or uses something leac cannot compile."""


class InvalidChipError(InvalidInputError):
    """The chip file breaks the `leac-chip` format; `problems` lists each one.

    Every problem names the JSON path and the offending value, so a test
    station can fix all of them in one go.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: invalid chip file ({count} {noun}):\n{lines}")


class BadDataError(InvalidInputError):
    """A data file (inputs, labels, conductance map) is malformed."""


class CompileError(LeacError):
    """A compiler pass cannot do its job; the message names the ONNX node."""


class DoesNotFitError(LeacError):
    """The chip has too few usable devices or arrays for the requested mapping."""

    exit_status = 4


class IRVerificationError(LeacError):
    """The IR broke one of its invariants; always a bug in a pass or the front end."""

    exit_status = 1

    def __init__(self, problems: list[str], after: str | None = None) -> None:
        self.problems = list(problems)
        self.after = after
        where = f" after pass {after}" if after else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"IR verification failed{where}:\n{lines}")
