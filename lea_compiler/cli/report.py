"""`leac report`: one self-contained HTML page per Program (lea_compiler/report_html.py), and its facts as JSON.

    leac report PROGRAM.leac [--data DATA.npz ...] [--trials N] [--seed S] [--threads N] [--model-output NAME]
                [--per-page N] [--all-arrays] -o REPORT.html [--json]

The output is checked before anything runs and written atomically. Only this module prints; errors are raised
as `LeacError`s and turned into a message and an exit status by `lea_compiler.cli.main`.
"""

from __future__ import annotations

import argparse
from typing import Any

from lea_compiler.backends.sim import load_data
from lea_compiler.cli.simulate import DEFAULT_THREADS
from lea_compiler.errors import UsageError
from lea_compiler.fileio import atomic_write_text, check_output
from lea_compiler.plot_placement import DEFAULT_PER_PAGE, MAX_PER_PAGE
from lea_compiler.program import Program
from lea_compiler.report_html import make_report
from lea_compiler.report_json import dumps_report
from lea_compiler.tables import printable

DEFAULT_TRIALS = 5
"""Noise draws simulated with --data: enough for a spread, quick for a report."""
MAX_TRIALS = 100


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac report`."""
    p = commands.add_parser(
        "report",
        help="write one self-contained HTML page about a Program: compile summary, placement picture, "
             "per-layer errors, cost and (with --data) simulated accuracy",
        description=(
            "Write one HTML page about a compiled Program that opens offline (images inlined, no script): the "
            "compile summary (layers, devices, placement solver status and gap), the placement picture (leac "
            "show --png; needs the plot extra, else the page says so), each layer's quantization and mapping "
            "error and the stuck devices under its copies, the cost model's latency, energy and programming "
            "cost, and with --data the simulated accuracy against onnxruntime's with its spread over --trials "
            "noise draws (leac simulate --trials). See docs/cli.md."
        ),
    )
    p.add_argument("program", metavar="PROGRAM.leac", help="the compiled Program (leac compile or leac program)")
    p.add_argument("--data", action="append", metavar="DATA.npz",
                   help=".npz with x and y to simulate on (as leac simulate --data); repeat for several sets")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS, metavar="N",
                   help=f"with --data: independent noise draws, seeds S .. S+N-1, 1..{MAX_TRIALS} "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the first draw (default: 0)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="simulator worker threads (default: min(4, CPUs)); results do not depend on it")
    p.add_argument("--model-output", metavar="NAME",
                   help="model output to take the top-1 from (as leac simulate --output)")
    p.add_argument("--per-page", type=int, default=DEFAULT_PER_PAGE, metavar="N",
                   help=f"arrays per picture page, 1..{MAX_PER_PAGE} (as leac show; default: %(default)s)")
    p.add_argument("--all-arrays", action="store_true",
                   help="draw every array, also on a chip larger than a page (as leac show)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.html", help="the HTML page to write")
    p.add_argument("--json", action="store_true",
                   help="print the page's facts as one JSON object (report leac-report, docs/reports.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`leac report`: check the options and output, load, simulate, draw, write, print."""
    if args.data is None and args.trials != DEFAULT_TRIALS:
        raise UsageError("--trials goes with --data")
    if not 1 <= args.trials <= MAX_TRIALS:
        raise UsageError(f"--trials must be in 1..{MAX_TRIALS}, got {args.trials}")
    if args.seed < 0:
        raise UsageError(f"--seed takes a non-negative integer, got {args.seed}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if not 1 <= args.per_page <= MAX_PER_PAGE:
        raise UsageError(f"--per-page must be in 1..{MAX_PER_PAGE}, got {args.per_page}")
    check_output(args.output, [args.program, *(args.data or [])])
    program = Program.load(args.program)
    datasets = [load_data(path, program.graph) for path in args.data or []]
    facts, page = make_report(program, source=args.program, output=args.output, datasets=datasets,
                              trials=args.trials, seed=args.seed,
                              threads=DEFAULT_THREADS if args.threads is None else args.threads,
                              model_output=args.model_output, per_page=args.per_page, all_arrays=args.all_arrays)
    atomic_write_text(args.output, page)
    if args.json:
        print(dumps_report(facts, ensure_ascii=False))
        return 0
    print_summary(facts)
    return 0


def print_summary(facts: dict[str, Any]) -> None:
    """What the page says, in three lines, and the file written."""
    print(f"{printable(facts['program'])}: {printable(facts['model'])} on chip {printable(facts['chip'])}, "
          f"{len(facts['layers'])} crossbar layers, {facts['devices_used']} of {facts['devices_total']} devices; "
          f"placement {facts['solver_status']}, gap {100 * (facts['optimality_gap'] or 0):.2f}%")
    sim = facts["simulation"]
    if sim is not None:
        trials = sim.get("trials")
        spread = "" if trials is None else (f", {100 * trials['mean']:.1f}% +- {100 * trials['std']:.1f}% over "
                                            f"{trials['count']} noise draws")
        software = "-" if sim["software_accuracy"] is None else f"{100 * sim['software_accuracy']:.1f}%"
        print(f"accuracy {100 * sim['accuracy']:.1f}% (seed {sim['seed']}){spread}; software {software}")
    if not facts["placement"]["picture"]:
        print(f"no placement picture: {facts['placement']['note']}")
    print(f"wrote {printable(facts['output'])}")
