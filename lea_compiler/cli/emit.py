"""`leac emit` and `leac board validate`: a Program as board instructions, and their check.

    leac emit PROGRAM.leac [--target board] -o FILE [--tolerance-uS X] [--max-pulses N] [--json]
    leac board validate FILE [--json]

`emit` writes the output atomically, never over its input, and nothing at all
when the Program cannot be read (exit 3) or the options are wrong (exit 2).
`board validate` lists every problem of a board file with its line number and
exits 3 if there is any. Only this module prints; errors are raised as
`LeacError`s and turned into a message and an exit status by
`lea_compiler.cli.main`.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from lea_compiler.backends import BACKENDS
from lea_compiler.backends.board import (
    DEFAULT_MAX_PULSES,
    FORMAT,
    BoardSummary,
    check_board,
)
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.fileio import check_output
from lea_compiler.program import Program
from lea_compiler.report_json import dumps_report

EXIT_INVALID_INPUT = InvalidInputError.exit_status


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac emit` and the `leac board` command group."""
    emit = commands.add_parser(
        "emit",
        help="write a compiled Program as board instructions (programming + inference schedule)",
        description=(
            "Turn a compiled Program into what a board controller (FPGA + DAC/ADC board driving "
            "the crossbars) executes: a leac-board file (JSON Lines, see docs/board-format.md). "
            "First the programming section: for every device the Program uses, one write-verify "
            "instruction (array, row, column, target conductance, tolerance, maximum pulses), "
            "array by array; stuck devices are skipped and listed. Then the inference schedule in "
            "graph order: digital ops, and per crossbar layer the array regions read with their "
            "input slices, the columns converted, the beta-of-alpha averaging, partial sums, "
            "scaling and bias. The same Program and options always give the same bytes. Check a "
            "written file with `leac board validate FILE`."
        ),
    )
    emit.add_argument("program", metavar="PROGRAM.leac", help="the Program (from leac compile)")
    emit.add_argument(
        "--target",
        choices=sorted(BACKENDS),
        default="board",
        help="what to emit (default: board)",
    )
    emit.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
    emit.add_argument(
        "--tolerance-uS",
        dest="tolerance_uS",
        type=float,
        metavar="X",
        help=(
            "write-verify acceptance: a device is done when it reads within +-X uS of its target "
            "(default: a quarter of the smallest gap between adjacent device levels)"
        ),
    )
    emit.add_argument(
        "--max-pulses",
        type=int,
        default=DEFAULT_MAX_PULSES,
        metavar="N",
        help="programming pulses allowed per device (default: %(default)s)",
    )
    emit.add_argument("--json", action="store_true",
                      help="print the summary as one JSON object (report leac-emit, docs/reports.md)")
    emit.set_defaults(func=run_emit)

    board = commands.add_parser(
        "board",
        help="check board instruction files (leac-board)",
        description="Check files written by `leac emit --target board` (leac-board format).",
    )
    sub = board.add_subparsers(dest="board_command", metavar="SUBCOMMAND")
    sub.required = True
    validate = sub.add_parser(
        "validate",
        help="check a board file and list every problem",
        description=(
            "Check a board file against the leac-board format: the header, every record's keys "
            "and types, coordinates inside the arrays, no device written twice, write targets "
            "equal to device levels, each array selected before its writes, the schedule's "
            "references, and the header's counts. Prints a one-line summary and exits 0 if the "
            "file is valid; otherwise lists every problem (line number and field) and exits 3."
        ),
    )
    validate.add_argument("file", metavar="FILE", help="board file to check")
    validate.add_argument(
        "--json", action="store_true",
        help="print {file, valid, problems} as one JSON object (report leac-board-validate, docs/reports.md)"
    )
    validate.set_defaults(func=run_validate)


def run_emit(args: argparse.Namespace) -> int:
    """`leac emit`: check the options, load the Program, write the output, print a summary."""
    if args.tolerance_uS is not None and not (
        math.isfinite(args.tolerance_uS) and args.tolerance_uS > 0
    ):
        raise UsageError(f"--tolerance-uS must be a positive number of uS, got {args.tolerance_uS}")
    if args.max_pulses < 1:
        raise UsageError(f"--max-pulses must be at least 1, got {args.max_pulses}")
    check_output(args.output, [args.program])
    program = Program.load(args.program)
    emit = BACKENDS[args.target]
    summary: BoardSummary = emit(
        program, args.output, tolerance_uS=args.tolerance_uS, max_pulses=args.max_pulses
    )
    report = emit_report(program, summary, args.output, args.target)
    if args.json:
        print(dumps_report(report))
    else:
        print(
            f"wrote {report['output']}: {FORMAT} v{summary.version} for {report['model']} on chip "
            f"{report['chip']!r}: {summary.writes} writes and {summary.skips} skipped stuck "
            f"devices on {summary.arrays} arrays, {summary.reads} reads; "
            f"{summary.records} records, {summary.bytes} bytes "
            f"(tolerance {summary.tolerance_uS:g} uS, at most {summary.max_pulses} pulses)"
        )
    return 0


def emit_report(
    program: Program, summary: BoardSummary, output: str, target: str
) -> dict[str, Any]:
    """The `leac emit --json` object (report leac-emit, keys documented in docs/reports.md)."""
    return {
        "report": "leac-emit",
        "version": 1,
        "output": output,
        "target": target,
        "format": FORMAT,
        "format_version": summary.version,
        "model": program.model.get("file") or program.model.get("name"),
        "chip": program.chip.display_name,
        "chip_fingerprint": program.chip_fingerprint,
        "writes": summary.writes,
        "skips": summary.skips,
        "arrays": summary.arrays,
        "reads": summary.reads,
        "records": summary.records,
        "bytes": summary.bytes,
        "tolerance_uS": summary.tolerance_uS,
        "max_pulses": summary.max_pulses,
    }


def run_validate(args: argparse.Namespace) -> int:
    """`leac board validate`: 0 and a summary for a valid file, 3 and its problems otherwise (the first
    `MAX_PROBLEMS` in file order, and how many there are in all), streaming the file."""
    check = check_board(args.file)
    if args.json:
        report = {"report": "leac-board-validate", "version": 1, "file": args.file, "valid": not check.total,
                  "problems": check.listing, "problem_count": check.total}
        print(dumps_report(report))
        return EXIT_INVALID_INPUT if check.total else 0
    check.raise_if_invalid()
    header = check.header
    assert header is not None
    counts = header.counts
    print(
        f"{args.file}: valid {FORMAT} v{header.version} for {header.model['name']} on chip "
        f"{header.chip['name']!r}: {header.records} records ({counts['write']} writes, "
        f"{counts['skip']} skips on {counts['select_array']} arrays, {counts['read']} reads)"
    )
    return 0
