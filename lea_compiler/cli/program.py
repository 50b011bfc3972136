"""`leac program`: program a chip with a Program and write the as-programmed Program (and the read-back).

    leac program PROGRAM.leac [--board sim] [--strategy open-loop|closed-loop] [--seed S] [--chip CHIP.json]
                 [--attempts N] [--tolerance-uS X] [--max-pulses N] [--readback-reads N] [--calibrate DATA.npz]
                 -o PROGRAMMED.leac [--readback OUT] [--json]

Both outputs are checked before anything runs (never over an input, never a device node, only in a folder
where a file can be made) and written together: both or neither. Only this module prints; errors are raised
as `LeacError`s and turned into a message and an exit status by `lea_compiler.cli.main`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from lea_compiler.backends.board import DEFAULT_MAX_PULSES
from lea_compiler.chip import load_chip
from lea_compiler.chip_limits import MAX_READBACK_READS
from lea_compiler.datasets import load_data
from lea_compiler.errors import UsageError
from lea_compiler.fileio import check_output, written_together
from lea_compiler.program import Program
from lea_compiler.programming.board import open_board, with_readback_reads
from lea_compiler.programming.loop import MAX_ATTEMPTS, STRATEGIES, Programmed, program_chip
from lea_compiler.programming.readback import save_readback
from lea_compiler.report_json import dumps_report


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac program`."""
    parser = commands.add_parser(
        "program",
        help="program a chip with a Program (the simulated board by default) and write the as-programmed Program",
        description=(
            "Program a chip with a compiled Program through a board, read every device back, and write the "
            "as-programmed Program: the levels written and what each device holds, which `leac simulate` then "
            "runs with read noise only. closed-loop (the default) programs the copies of each column one after "
            "the other and re-encodes the later copies to cancel the error read back from the earlier ones; "
            "open-loop writes the Program as it is. See docs/programming.md."
        ),
    )
    parser.add_argument("program", metavar="PROGRAM.leac", help="the Program (from leac compile)")
    parser.add_argument("--board", default="sim", metavar="NAME",
                        help="sim (the simulated board), an entry point of the group leac.boards, or "
                             "module:callable (default: %(default)s)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="closed-loop",
                        help="how to program (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the simulated board's programming and read noise (default: %(default)s)")
    parser.add_argument("--chip", metavar="CHIP.json",
                        help="the chip the board programs (default: the chip the Program was compiled for)")
    parser.add_argument("--attempts", type=int, default=1, metavar="N",
                        help="writes allowed per device while its read-back is outside the tolerance, "
                             f"1..{MAX_ATTEMPTS} (default: %(default)s, no re-programming)")
    parser.add_argument("--tolerance-uS", dest="tolerance_uS", type=float, metavar="X",
                        help="a write is done when the device reads within +-X uS of its level (default: a quarter "
                             "of the smallest gap between adjacent levels)")
    parser.add_argument("--max-pulses", type=int, default=DEFAULT_MAX_PULSES, metavar="N",
                        help="programming pulses allowed per write (default: %(default)s)")
    parser.add_argument("--readback-reads", type=int, metavar="N",
                        help="reads averaged per read-back, 1..64 (default: the chip's device.programming."
                             "readback_reads, else 1); more reads make closed loop's corrections more precise")
    parser.add_argument("--calibrate", metavar="DATA.npz",
                        help="refit each layer's per-column gain and offset on what the board read back, over the "
                             "layers' inputs on this data (x; as leac compile --calibrate)")
    parser.add_argument("-o", "--output", required=True, metavar="PROGRAMMED.leac",
                        help="the as-programmed Program to write")
    parser.add_argument("--readback", metavar="OUT.json",
                        help="also write what the board read back, per device (docs/readback-format.md)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object (report leac-program, docs/reports.md)")
    parser.set_defaults(func=run_program)


def run_program(args: argparse.Namespace) -> int:
    """`leac program`: check the options and outputs, program, write, print a summary."""
    if args.tolerance_uS is not None and not (math.isfinite(args.tolerance_uS) and args.tolerance_uS > 0):
        raise UsageError(f"--tolerance-uS must be a positive number of uS, got {args.tolerance_uS}")
    if args.max_pulses < 1:
        raise UsageError(f"--max-pulses must be at least 1, got {args.max_pulses}")
    if not 1 <= args.attempts <= MAX_ATTEMPTS:
        raise UsageError(f"--attempts must be in 1..{MAX_ATTEMPTS}, got {args.attempts}")
    if args.readback_reads is not None and not 1 <= args.readback_reads <= MAX_READBACK_READS:
        raise UsageError(f"--readback-reads must be in 1..{MAX_READBACK_READS}, got {args.readback_reads}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    inputs = [args.program, args.chip, args.calibrate]
    check_output(args.output, inputs)
    if args.readback is not None:
        check_output(args.readback, inputs, option="--readback", outputs={"-o": args.output})
    start = time.perf_counter()
    program = Program.load(args.program)
    chip = program.chip if args.chip is None else load_chip(args.chip)
    calibration = None if args.calibrate is None else load_data(args.calibrate, program.graph).x
    board = open_board(args.board, with_readback_reads(chip, args.readback_reads), args.seed)
    progress = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    done = program_chip(program, board, strategy=args.strategy, attempts=args.attempts,
                        tolerance_uS=args.tolerance_uS, max_pulses=args.max_pulses, progress=progress,
                        board_name=args.board, calibration=calibration,
                        chip_fingerprint=chip.fingerprint())  # --readback-reads is the session's, not the chip's
    with written_together():  # both outputs or neither
        done.program.save(args.output)
        if args.readback is not None:
            save_readback(done.readback, args.readback)
    report = program_report(done, args, time.perf_counter() - start)
    if args.json:
        print(dumps_report(report))
        return 0
    cost = done.cost
    print(f"programmed {report['chip']!r} {args.strategy} on board {args.board} (seed {args.seed}): "
          f"{cost.devices} devices, {cost.writes} writes ({report['writes_per_device']:.2f} per device), "
          f"{cost.pulses} pulses, {cost.readbacks} read-backs, {cost.rounds} rounds, {cost.failed} devices outside "
          f"+-{report['tolerance_uS']:g} uS; {cost.time_s:.3g} s and {cost.energy_uJ:.3g} uJ of programming; "
          f"{done.reencoded_pairs} pairs re-encoded, {done.reselected_columns} columns' copies chosen again")
    print(f"wrote {args.output}" + (f" and {args.readback}" if args.readback else ""))
    return 0


def program_report(done: Programmed, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """The `leac program --json` object (report leac-program, keys documented in docs/reports.md)."""
    settings = done.program.extra["programming"]
    return {
        "report": "leac-program",
        "version": 1,
        "output": args.output,
        "readback": args.readback,
        "strategy": done.strategy,
        "board": args.board,
        "seed": args.seed,
        "chip": settings["chip"]["name"] or done.program.chip.display_name,
        "chip_fingerprint": settings["chip"]["fingerprint"],
        "programming_model": settings["programming_model"],
        "attempts": settings["attempts"],
        "tolerance_uS": settings["tolerance_uS"],
        "max_pulses": settings["max_pulses"],
        "readback_reads": settings["readback_reads"],
        "reencoded_pairs": done.reencoded_pairs,
        "reselected_columns": done.reselected_columns,
        **done.cost.to_json(),
        "seconds": seconds,
    }
