"""`leac compile`: model + chip -> Program file, with a summary (text or JSON)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lea_compiler.chip_limits import time_limit_problem
from lea_compiler.cli.batch import first_line, run_batch
from lea_compiler.errors import UsageError
from lea_compiler.fileio import check_file_name, check_output
from lea_compiler.layer_sizes import AUTO
from lea_compiler.options import add_arguments as add_options
from lea_compiler.options import from_keywords, keywords_from_args
from lea_compiler.program.checks import reads_problem
from lea_compiler.report_json import dumps_report
from lea_compiler.tables import format_table

if TYPE_CHECKING:  # the compiler is imported by the commands that run it: it loads onnx (~1 s to import)
    from lea_compiler.batch import BatchResult
    from lea_compiler.options import CompileOptions

COLUMNS: dict[str, tuple[str, str]] = {
    "quant. error": (
        "RMS error of the weights the levels can represent, over the RMS weight",
        "RMS error of the weights the device levels can represent (joint: the mean of the beta averaged copies on "
        "defect-free devices), over the RMS weight (JSON quantization_relative_rms_error)",
    ),
    "placement cost uS": (
        "what the placer minimised: |G_stuck - G_target| over every copy's stuck devices (+ IR drop with lines)",
        "what the placer minimised: the sum of |G_stuck - G_target| over the stuck devices of every copy, both "
        "devices of every pair (healthy devices cost 0); with joint encoding and beta >= 2 only what the other "
        "copies cannot absorb; on a chip whose lines have resistance (periphery.lines) plus each copy's expected "
        "IR-drop loss of conductance at its place (at most the copy's total conductance, docs/architecture.md); "
        "0 means every copy sits on defect-free devices (and ideal lines); the bound and gap refer to it "
        "(JSON mapping_error_uS)",
    ),
    "weight error uS": (
        "sum of |averaged copies' G+ - G- - aim| over weights (joint: aim = float weight)",
        "what the chip then represents: the sum over the weights of |mean of the beta averaged copies' G+ - G- "
        "minus the difference aimed at|, stuck devices at their real conductance; simple and rme aim at the "
        "quantized targets (0 on defect-free devices), joint at the unquantized weights, so it includes the "
        "rounding left after averaging and is not 0 even on a perfect chip; per weight after averaging, so not "
        "comparable with the placement cost (JSON effective_error_uS)",
    ),
}
"""The error columns of the `leac compile` summary, name -> (the note under the table, the full text in
`leac compile --help`): what each measures."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac compile`."""
    p = commands.add_parser(
        "compile",
        help="map a model onto one chip (or many) with k copies per layer and write the Program",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Compile an ONNX model for one chip: quantize weights to the chip's conductance levels, "
            "tile matrices into blocks that fit its arrays, make k copies of every block (layer "
            "ensemble averaging) and place them on the least-defective regions with OR-Tools. "
            "With --ensemble network, make k copies of the whole network instead, averaged only at the outputs "
            "(a committee machine, the scheme LEA is compared against at equal device count). "
            "Writes the Program (default: MODEL's name + .leac in the current folder) and prints a summary.",
        ),
        epilog=_paragraphs(
            "The summary's error columns (their JSON keys: docs/reports.md, leac-compile):",
            *(f"{name}: {text}." for name, (_, text) in COLUMNS.items()),
            "Many chips: with --chip-dir DIR (every DIR/*.json, sorted by name), --chip given more than once, "
            "or --jobs / --scheduler, leac compiles the model for every chip and -o names the output folder "
            "(required; made if missing). For each chip it writes OUTDIR/STEM.leac (the Program, byte for byte "
            "what a one-chip compile writes) and OUTDIR/STEM.json (the --json report, plus chip_file, status, "
            "exit_status, error and shared_passes), where STEM is the chip file's name without .json. "
            "The model is read, canonicalized and quantized once (for the device levels of the first chip; "
            "a chip with other levels quantizes for itself) and shared with --jobs worker processes "
            "(default: the CPU count; each uses one BLAS thread), or with the workers of a Dask cluster "
            "(--scheduler, the 'distributed' extra; they must be able to read the chip files). Progress goes "
            "to stderr when it is a terminal or with leac -v (never with --json); at the end a table lists every "
            "chip, or --json prints one object {\"report\": \"leac-compile-batch\", \"version\": 1, ..., "
            "\"chips\": [every chip's report]}.",
            "A chip that fails (an invalid chip file, a model that does not fit it, a compile error) gets its "
            "report with the error and no Program, and does not stop the others. The exit status is 0 when "
            "every chip compiled, else the most serious chip failure, i.e. the smallest non-zero status: "
            "1 (a compile error or a bug) before 3 (an invalid chip file) before 4 (does not fit). A bad model "
            "or bad options stop the whole batch before any chip, with the one-chip statuses.",
        ),
    )
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    p.add_argument("--chip", action="append", metavar="CHIP.json",
                   help="the chip file (leac-chip format); give it again for more chips")
    p.add_argument("--chip-dir", metavar="DIR", help="compile for every chip file DIR/*.json (see below)")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="worker processes for many chips (default: the CPU count; 1: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the chips on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786; "
                        "needs pip install 'lea-compiler[distributed]')")
    p.add_argument("-o", "--output", metavar="OUT.leac",
                   help="Program file to write; with many chips, the output folder")
    p.add_argument("--calibrate", metavar="DATA.npz",
                   help="set the DAC and ADC ranges from this data (x, y) and store them in the Program, so the "
                        "board and the simulator use the same ranges (default: the simulator calibrates on the "
                        "data it simulates; the board scales each input vector by its own maximum)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--dump-ir", metavar="DIR", help="write the IR after each pass to DIR as numbered text files")
    p.add_argument("--time-passes", action="store_true",
                   help="print each pass's time (many chips: summed over the chips; shared passes once)")
    add_options(p.add_argument_group(
        "compile options",
        "the keyword arguments of leac.compile and leac.compile_many, named as the flags without the dashes "
        "(time_limit_s for --time-limit, block=(rows, cols) for --block)"))
    p.set_defaults(func=run)


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(text, width=100) for text in texts)


def run(args: argparse.Namespace) -> int:
    from lea_compiler.backends.sim import simulate
    from lea_compiler.compiler import compile_model, compile_summary
    from lea_compiler.datasets import load_data

    keywords = keywords_from_args(args)  # -k and --beta parsed: a count, or per-layer counts
    k, beta = keywords["k"], keywords["beta"]
    if beta is not None and args.ensemble == "network":
        raise UsageError("--beta applies to --ensemble layer only: the network ensemble averages all k copies "
                         "at the outputs")
    if not isinstance(k, int) and args.ensemble == "network":
        raise UsageError(f"--ensemble network takes one -k for the whole network, not per-layer counts ({k})")
    if isinstance(k, int) and isinstance(beta, int) and not 1 <= beta <= k:
        raise UsageError(f"--beta must be between 1 and k = {k}, got {beta}")
    if (problem := time_limit_problem(args.time_limit_s)) is not None:
        raise UsageError(f"--time-limit {problem}")
    if args.seed < 0:  # as simulate, report and program say it
        raise UsageError(f"--seed takes a non-negative integer, got {args.seed}")
    if (problem := reads_problem(args.reads)) is not None:
        raise UsageError(f"--reads {problem}")
    options = from_keywords(keywords)
    chips = args.chip or []
    if args.chip_dir is not None or len(chips) > 1 or args.jobs is not None or args.scheduler is not None:
        return _run_many(args, options)
    if not chips:
        raise UsageError("give the chip: --chip CHIP.json (again for more chips), or --chip-dir DIR")
    chip = chips[0]
    given = args.output if args.output is not None else Path(args.model).stem + ".leac"
    check_file_name(given)  # before Path(given), which drops a trailing slash
    output = Path(given)
    if output.is_dir():
        raise UsageError(f"the output {output} is a folder; with one chip, -o names the Program file "
                         "(for an output folder, add --jobs N or use --chip-dir)")
    check_output(given, [args.model, chip, args.calibrate])
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(name: str, seconds: float) -> None:
            print(f"  {name} done ({seconds:.2f} s)", file=sys.stderr)
    result = compile_model(args.model, chip, options, dump_dir=args.dump_ir, on_pass=progress,
                           calibrate_on=args.calibrate)
    report = compile_summary(result, output)
    if "allocation" in report and args.calibrate is not None:  # -k auto: what the choice does
        data = load_data(args.calibrate, result.program.graph)
        report["allocation"]["simulated_agreement"] = simulate(result.program, [data], seed=options.seed).agreement
    text = dumps_report(report) if args.json else None  # a report that cannot be strict JSON: no Program either
    result.program.save(output)
    if text is not None:
        print(text)
    else:
        print_summary(report, time_passes=args.time_passes)
    return 0


def print_summary(report: dict[str, Any], *, time_passes: bool) -> None:
    rows = [("layer", "matrix", "blocks", "alpha/beta", "devices", *COLUMNS)]
    for layer in report["layers"]:
        rows.append((
            layer["name"], f"{layer['rows']} x {layer['cols']}", str(layer["blocks"]),
            f"{layer['alpha']}/{layer['beta']}", str(layer["devices"]),
            f"{100 * layer['quantization_relative_rms_error']:.2f}%",
            f"{layer['mapping_error_uS']:.1f}", f"{layer['effective_error_uS']:.1f}",
        ))
    print(f"compiled {report['model']} for chip {report['chip']!r} -> {report['program']}")
    if report["ensemble"] == "network":
        print(f"network ensemble: {report['k']} copies of the whole network, averaged at the outputs")
    print(format_table(rows))
    for name, (note, _) in COLUMNS.items():
        print(f"  {name.removesuffix(' uS')}: {note}")
    print("  (leac compile --help says more)")
    used, total = report["devices_used"], report["devices_total"]
    print(f"devices used: {used} of {total} ({100 * used / total:.1f}%), on {report['arrays_used']} of "
          f"{report['arrays_total']} arrays; {report['copies'] // 2} block copies ({report['copies']} halves)")
    allocation = report.get("allocation")
    if allocation is not None:
        chosen = ", ".join(f"{name}={count}" for name, count in allocation["counts"].items())
        simulated = allocation.get("simulated_agreement")
        print(f"-k auto within {allocation['budget']} devices: {chosen} ({allocation['devices']} devices); "
              f"predicted agreement with the software answers {100 * allocation['predicted_agreement']:.1f}%"
              + ("" if simulated is None else f", simulated on the calibration data {100 * simulated:.1f}%"))
    compensated = sum(layer["compensated_columns"] for layer in report["layers"])
    if compensated:
        print(f"stuck-device compensation: digital gain and offset on {compensated} of "
              f"{sum(layer['cols'] for layer in report['layers'])} output columns")
    gap = report["optimality_gap"]
    print(f"placement: {report['placer']} ({report['solver_method']}) {report['solver_status']}, placement cost "
          f"{report['mapping_error_uS']:.1f} uS, bound {report['solver_bound_uS']:.1f} uS, "
          f"gap {100 * gap:.2f}%")
    if report["analog_time_ns"] is not None:
        print(f"analog time ({report['objective']} objective): {report['analog_time_ns']:.1f} ns per sample "
              f"(every crossbar layer's busiest array), bound {report['analog_time_bound_ns']:.1f} ns, "
              f"gap {100 * report['analog_time_gap']:.2f}%")
    if report.get("placement_wall_clock_limited"):
        print(f"warning: CP-SAT's {' and '.join(report['placement_wall_clock_limited'])} stopped at its wall-clock "
              "safety limit (a loaded machine), so this placement may not reproduce; a longer --time-limit or an "
              "idle machine avoids it")
    if time_passes:
        width = max(13, *(len(name) for name in report["pass_seconds"]))
        for name, seconds in report["pass_seconds"].items():
            print(f"  pass {name:<{width}} {seconds:8.3f} s")
    print(f"compile time: {report['compile_seconds']:.2f} s")


def _run_many(args: argparse.Namespace, options: CompileOptions) -> int:
    """`leac compile` for many chips (see the epilog of `leac compile --help`)."""
    from lea_compiler.batch import chip_files, compile_many

    if not args.output:
        raise UsageError("with many chips, -o OUTDIR names the output folder for the Programs and reports"
                         + (" (-o is empty)" if args.output == "" else ""))
    if args.dump_ir is not None:
        raise UsageError("--dump-ir works with one chip (--chip CHIP.json once)")
    if options.k == AUTO:
        raise UsageError("-k auto chooses the counts for one chip (its devices and noise): give one --chip, "
                         "without --jobs, --chip-dir or --scheduler")
    chips = [Path(c) for c in args.chip or []]
    if args.chip_dir is not None:
        chips += chip_files(args.chip_dir)
    return run_batch(args, lambda progress: compile_many(args.model, chips, args.output, options, jobs=args.jobs,
                                                         scheduler=args.scheduler, calibrate_on=args.calibrate,
                                                         on_result=progress),
                     lambda result: print_batch(result, time_passes=args.time_passes))


def print_batch(result: BatchResult, *, time_passes: bool) -> None:
    """The batch summary: one row per chip, then the totals."""
    rows = [("chip", "status", "devices", "placement cost uS", "gap", "seconds", "error")]
    for chip in result.chips:
        report = chip.report
        ok = chip.ok
        rows.append((
            Path(chip.chip_file).stem, chip.status.replace("_", " "),
            f"{report['devices_used']}/{report['devices_total']}" if ok else "",
            f"{report['mapping_error_uS']:.1f}" if ok else "",
            f"{100 * report['optimality_gap']:.2f}%" if ok and report["optimality_gap"] is not None else "",
            f"{chip.seconds:.2f}", first_line(chip.error),
        ))
    print(f"{Path(result.model).name} for {len(result.chips)} chips -> {result.out_dir}")
    print(format_table(rows))
    failed = len(result.failed)
    where = f"{result.jobs} worker process{'es' if result.jobs != 1 else ''}" if result.scheduler is None else \
        f"the Dask cluster at {result.scheduler}"
    print(f"{len(result.chips) - failed} of {len(result.chips)} chips compiled, {failed} failed; "
          f"shared front end ({', '.join(result.shared_passes)}) {result.shared_seconds:.2f} s; "
          f"{result.wall_seconds:.1f} s on {where}")
    if time_passes:
        shared: dict[str, float] = {}
        totals: dict[str, float] = {}
        for chip in result.chips:
            for name, seconds in (chip.report["pass_seconds"] or {}).items():
                if name in chip.report["shared_passes"]:
                    shared[name] = seconds
                else:
                    totals[name] = totals.get(name, 0.0) + seconds
        width = max(13, *(len(name) for name in [*shared, *totals]))
        for name, seconds in shared.items():
            print(f"  pass {name:<{width}} {seconds:8.3f} s once, shared")
        for name, seconds in totals.items():
            print(f"  pass {name:<{width}} {seconds:8.3f} s summed over the chips")
