"""The board writer: a Program as a `leac-board` file (`emit_board`) or as records in memory (`board_stream`).

It writes the header, then the records `lea_compiler.schedule.lower` makes from the Program (which checks it
against its chip first): the programming section (write-verify or skip for every device a copy half occupies)
and the inference schedule. Their encoding is in `records`; the bytes written are deterministic. The file's
version is the oldest that holds its records (`board_version`): 1 unless a region is read more than once.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lea_compiler import __version__
from lea_compiler.backends.board.records import (
    _PERIPHERY_KEYS,
    _PROGRAMMING_OPS,
    FORMAT,
    OPTIONAL_PERIPHERY_KEYS,
    RECORD_TYPES,
    STATES,
    BoardArray,
    BoardHeader,
    BoardStream,
    Record,
    Skip,
    _dumps,
    board_version,
    record_line,
)
from lea_compiler.chip import Periphery
from lea_compiler.errors import UsageError
from lea_compiler.fileio import atomic_write_text
from lea_compiler.ir import Value
from lea_compiler.program import Program
from lea_compiler.schedule.digital import dtype_name
from lea_compiler.schedule.lower import inference_records, prepare, programming_records

logger = logging.getLogger("lea_compiler.backends.board")  # the package's name, as before the split

DEFAULT_MAX_PULSES = 50
"""Write-verify pulses allowed per device unless the caller says otherwise."""
TOLERANCE_DEFAULT_RULE = "default: a quarter of the smallest gap between adjacent levels"
TOLERANCE_GIVEN_RULE = "given"


@dataclass(frozen=True)
class BoardSummary:
    """What `emit_board` wrote: record counts, the file size, the write-verify settings and the format version."""

    writes: int
    skips: int
    arrays: int
    reads: int
    records: int
    bytes: int
    tolerance_uS: float
    max_pulses: int
    version: int = 1


# --------------------------------------------------------------------------
# Emitting


def default_tolerance_uS(levels_uS: Sequence[float]) -> float:
    """A quarter of the smallest gap between adjacent levels.

    Why a quarter: the verify windows of two neighbouring levels are then at
    least half a gap apart, so a device accepted for one level can never read
    as its neighbour, with margin for read noise.
    """
    levels = np.asarray(levels_uS, dtype=np.float64)
    return float(np.min(np.diff(levels))) / 4.0


def emit_board(
    program: Program,
    path: str | os.PathLike[str],
    *,
    tolerance_uS: float | None = None,
    max_pulses: int = DEFAULT_MAX_PULSES,
) -> BoardSummary:
    """Write the Program as a `leac-board` instruction stream, atomically.

    Args:
        program: The compiled Program.
        path: The file to write (replaced atomically; never half-written).
        tolerance_uS: Write-verify acceptance half-width in uS; None takes
            `default_tolerance_uS` of the chip's levels.
        max_pulses: Programming pulses allowed per device.

    Returns:
        The counts of what was written and the file size.

    Raises:
        UsageError: tolerance or max_pulses out of range, or an as-programmed Program (`leac program`), whose
            levels were chosen for the noise of one programming.
        InvalidInputError: the Program contradicts its own chip (a damaged or
            hand-edited Program); every problem is listed.
    """
    if program.as_programmed:
        raise UsageError("the Program is as-programmed (leac program): its levels were chosen for the noise of one "
                         "programming of one chip; emit the Program leac compile wrote")
    header, lines = _emit_lines(program, tolerance_uS, max_pulses)
    text = "\n".join([_dumps(header.to_json()), *lines]) + "\n"
    data_bytes = len(text.encode("ascii"))
    atomic_write_text(path, text)
    counts = header.counts
    summary = BoardSummary(
        writes=counts["write"],
        skips=counts["skip"],
        arrays=counts["select_array"],
        reads=counts["read"],
        records=header.records,
        bytes=data_bytes,
        tolerance_uS=header.tolerance_uS,
        max_pulses=header.max_pulses,
        version=header.version,
    )
    logger.info("wrote %s: %s", os.fspath(path), summary)
    return summary


def board_stream(
    program: Program, *, tolerance_uS: float | None = None, max_pulses: int = DEFAULT_MAX_PULSES
) -> BoardStream:
    """The stream `emit_board` would write, as records in memory (for tools and tests)."""
    tolerance, rule = _tolerance(program, tolerance_uS, max_pulses)
    records = tuple(_records(program, tolerance, max_pulses))
    counts = Counter(r.op for r in records)
    skipped = Counter(r.state for r in records if isinstance(r, Skip))
    version = board_version(records)
    return BoardStream(_header(program, tolerance, rule, max_pulses, counts, skipped, version), records)


def _emit_lines(
    program: Program, tolerance_uS: float | None, max_pulses: int
) -> tuple[BoardHeader, list[str]]:
    tolerance, rule = _tolerance(program, tolerance_uS, max_pulses)
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    lines = []
    schedule: list[Record] = []  # encoded once the version is known (the programming records are alike in all)
    for record in _records(program, tolerance, max_pulses):
        counts[record.op] += 1
        if isinstance(record, Skip):
            skipped[record.state] += 1
        if record.op in _PROGRAMMING_OPS:
            lines.append(record_line(record))
        else:
            schedule.append(record)
    version = board_version(schedule)
    lines += [record_line(record, version) for record in schedule]
    return _header(program, tolerance, rule, max_pulses, counts, skipped, version), lines


def _tolerance(program: Program, tolerance_uS: float | None, max_pulses: int) -> tuple[float, str]:
    problems = []
    if (
        isinstance(max_pulses, bool)
        or not isinstance(max_pulses, (int, np.integer))
        or max_pulses < 1
    ):
        problems.append(f"max_pulses must be an integer >= 1, got {max_pulses!r}")
    levels = program.chip.device.levels_uS
    if tolerance_uS is None:
        tolerance, rule = default_tolerance_uS(levels), TOLERANCE_DEFAULT_RULE
    else:
        tolerance, rule = tolerance_uS, TOLERANCE_GIVEN_RULE
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, (int, float))
            or not (math.isfinite(tolerance) and tolerance > 0)
        ):
            problems.append(f"tolerance_uS must be a positive number, got {tolerance_uS!r}")
    if problems:
        raise UsageError("; ".join(problems))
    half_gap = 2 * default_tolerance_uS(levels)
    if tolerance >= half_gap:
        logger.warning(
            "tolerance %g uS is at least half the smallest level gap (%g uS): neighbouring levels' "
            "verify windows overlap",
            tolerance,
            half_gap,
        )
    return float(tolerance), rule


def _header(
    program: Program,
    tolerance: float,
    rule: str,
    max_pulses: int,
    counts: Mapping[str, int],
    skipped: Mapping[str, int],
    version: int,
) -> BoardHeader:
    chip = program.chip
    arrays = tuple(
        BoardArray(a, chip.array(a).rows, chip.array(a).cols) for a in program.arrays_used
    )
    periphery = {key: getattr(chip.periphery, key) for key in _PERIPHERY_KEYS
                 if key not in OPTIONAL_PERIPHERY_KEYS or getattr(chip.periphery, key) != getattr(Periphery(), key)}
    model = program.model
    return BoardHeader(
        format=FORMAT,
        version=version,
        leac_version=__version__,
        model={"name": model.get("name"), "file": model.get("file"), "sha256": model.get("sha256")},
        program_leac_version=program.leac_version,
        compile_options=dict(program.options),
        chip={"name": chip.display_name, "fingerprint": program.chip_fingerprint},
        arrays=arrays,
        levels_uS=tuple(chip.device.levels_uS),
        periphery=periphery,
        tolerance_uS=tolerance,
        tolerance_rule=rule,
        max_pulses=int(max_pulses),
        inputs=tuple(_value_info(v) for v in program.graph.inputs),
        outputs=tuple(_value_info(v) for v in program.graph.outputs),
        counts={op: int(counts.get(op, 0)) for op in RECORD_TYPES},
        records=int(sum(counts.values())),
        skipped={state: int(skipped.get(state, 0)) for state in STATES},
    )


def _value_info(value: Value) -> dict[str, Any]:
    return {
        "name": value.name,
        "dtype": dtype_name(value.dtype),
        "shape": None if value.shape is None else tuple(value.shape),
    }


def _records(program: Program, tolerance: float, max_pulses: int) -> Iterator[Record]:
    """Every record after the header: programming first, then the inference schedule (`lea_compiler.schedule`).

    The Program is checked against its chip before the first record comes out.
    """
    lowered = prepare(program)
    yield from programming_records(lowered, tolerance, max_pulses)
    yield from inference_records(lowered)
