"""`leac simulate`: run a Program on a simulated chip and report accuracy, cycles, energy and device cost."""

from __future__ import annotations

import argparse
import logging
import os
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lea_compiler.backends.sim import load_data, simulate_trials
from lea_compiler.chip import load_chip
from lea_compiler.cli.batch import first_line, run_batch
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.fileio import check_output, input_kind
from lea_compiler.program import Program
from lea_compiler.report_json import dumps_report
from lea_compiler.tables import format_table, printable

if TYPE_CHECKING:  # the board files, the timeline and the batch are imported where they are used
    from lea_compiler.simulate_batch import SimulateBatchResult

logger = logging.getLogger(__name__)

DEFAULT_THREADS = min(4, os.cpu_count() or 1)
"""--threads for one Program; a batch's workers use one thread each unless told otherwise."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac simulate`."""
    p = commands.add_parser(
        "simulate",
        help="run a compiled Program (or many) on a simulated chip: accuracy, cycles, energy, device cost",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Simulate a Program (from leac compile) on its chip, or on another chip file: devices with "
            "write and read noise and stuck values, DACs and ADCs, beta-of-alpha averaging and the digital "
            "periphery. Reports top-1 accuracy per data file against onnxruntime's on the original model, "
            "per-layer output error, and the cycle, energy and programming cost model."
        ),
        epilog=_paragraphs(
            "Many Programs (one per chip, e.g. from leac compile --chip-dir): with several PROGRAM.leac, "
            "--program-dir DIR (every DIR/*.leac, sorted by name), --jobs, --scheduler or --min-accuracy, leac "
            "simulates every Program on the chip it was compiled for, with the same data and seed. Each "
            "Program's report is exactly what leac simulate PROGRAM --seed S gives (but for its wall time), "
            "whatever --jobs is. The data files are read once, and onnxruntime's baseline is computed once per "
            "distinct original model. The Programs run on --jobs worker processes (default: the CPU count; "
            "each uses --threads threads, default 1) or on the workers of a Dask cluster (--scheduler, the "
            "'distributed' extra; they must be able to read the Program files). Progress goes to stderr when "
            "it is a terminal or with leac -v (never with --json). Nothing is written: a table lists every "
            "Program and the yield, or --json prints one object {\"report\": \"leac-simulate-batch\", ...} "
            "(docs/reports.md).",
            "Yield: over the Programs that simulated, a Program's accuracy being its mean top-1 accuracy over "
            "the data files (as one simulate prints): the mean, the standard deviation (population, over the "
            "Programs), the worst and the best Program, and with --min-accuracy PCT how many Programs (and "
            "what fraction of those that simulated) reach at least PCT percent. A Program below --min-accuracy "
            "does not change the exit status: the yield is a report.",
            "A Program that fails (a damaged file, data that does not fit its model) gets its error in its row "
            "and does not stop the others. The exit status is 0 when every Program simulated, else the most "
            "serious failure, i.e. the smallest non-zero status (3 for an invalid Program or data file). A data "
            "file that cannot be read, or bad options, stop the whole batch before any Program.",
        ),
    )
    p.add_argument("program", nargs="*", metavar="PROGRAM.leac",
                   help="the compiled Program; give several to simulate them all (see below); or a board file "
                        "(leac emit) with --program")
    p.add_argument("--program", dest="board_program", metavar="PROGRAM.leac",
                   help="with a board file: the Program it was emitted from, which gives the digital reference, "
                        "the software baseline and the chip (unless --chip); the board file's records are what "
                        "runs, and the report equals the Program's")
    p.add_argument("--program-dir", metavar="DIR", help="simulate every Program DIR/*.leac (see below)")
    p.add_argument("--data", action="append", required=True, metavar="DATA.npz",
                   help=".npz with x (inputs, batch first) and y (integer labels); repeat for several sets")
    p.add_argument("--chip", metavar="CHIP.json",
                   help="simulate on this chip file instead of the one compiled for (same array ids and sizes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the write and read noise (default 0)")
    p.add_argument("--ideal", action="store_true",
                   help="no noise and no defects: every device reads its target (a joint Program: the "
                        "weights it represents on the chip it was compiled for, stuck devices included; "
                        "docs/simulator.md)")
    p.add_argument("--trials", type=int, default=1, metavar="N",
                   help="simulate N independent noise draws (seeds SEED .. SEED+N-1) and report the accuracy's mean, "
                        "standard deviation and range over them; the rest of the report is the first draw's "
                        "(default 1)")
    p.add_argument("--after", metavar="DURATION",
                   help="simulate the devices DURATION after programming (e.g. 10s, 1h, 2d, 30d, 1y; a bare number "
                        "is seconds), drifted as the chip's device.drift says (docs/chip-format.md); default 0: as "
                        "programmed")
    p.add_argument("--exact-read-noise", action="store_true",
                   help="draw every device's uniform read noise (slow) instead of its exact-variance Gaussian sum")
    p.add_argument("--threads", type=int, metavar="N",
                   help="worker threads for the crossbar layers (default: min(4, CPUs); with many Programs, 1 per "
                        "worker process); results do not depend on it")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="worker processes for many Programs (default: the CPU count; 1: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the Programs on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786; "
                        "needs pip install 'lea-compiler[distributed]')")
    p.add_argument("--min-accuracy", type=float, metavar="PCT",
                   help="with many Programs: count those whose accuracy is at least PCT percent (0-100) in the "
                        "yield")
    p.add_argument("--output", metavar="NAME", help="model output to take the top-1 from (default: see docs/cli.md)")
    p.add_argument("--timeline", metavar="OUT.png",
                   help="draw the timeline of one inference (a Gantt chart of the arrays, their ADCs and the digital "
                        "unit; needs the plot extra) to OUT.png; one Program only")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object (report leac-simulate; with many Programs "
                        "leac-simulate-batch; docs/reports.md)")
    p.set_defaults(func=run)


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(text, width=100) for text in texts)


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise UsageError(f"--seed takes a non-negative integer, got {args.seed}")
    programs = args.program
    if (args.program_dir is not None or len(programs) > 1 or args.jobs is not None or args.scheduler is not None
            or args.min_accuracy is not None):
        if args.board_program is not None:
            raise UsageError("--program goes with one board file, not with many Programs")
        if args.trials != 1:
            raise UsageError("--trials goes with one Program, not with many")
        if args.after is not None:
            raise UsageError("--after goes with one Program, not with many")
        if args.timeline is not None:
            raise UsageError("--timeline goes with one Program, not with many")
        return _run_many(args)
    if not programs:
        raise UsageError("give the Program: PROGRAM.leac (several, or --program-dir DIR, for many chips)")
    if args.timeline is not None:  # before any work: nothing is simulated for a picture that cannot be written
        from lea_compiler.plot import require_matplotlib

        require_matplotlib("leac simulate --timeline")
        check_output(args.timeline, [*programs, args.board_program, *args.data, args.chip], "--timeline")
    board = None
    if _is_board_file(programs[0]):
        if args.board_program is None:
            _refuse_json(programs[0])
        from lea_compiler.backends.board import board_schedule, periphery_differences, read_board

        stream = read_board(programs[0])
        board = board_schedule(stream)
        program = Program.load(args.board_program)
    elif args.board_program is not None:
        raise UsageError(f"--program names the Program of a board file, but {programs[0]} is not a board file")
    else:
        program = Program.load(programs[0])
    datasets = [load_data(path, program.graph) for path in args.data]
    chip = load_chip(args.chip) if args.chip else None
    if board is not None and (differ := periphery_differences(stream, (chip or program.chip).periphery)):
        logger.warning("%s assumed another periphery than the simulating chip's, whose timing and energy the "
                       "report gives: %s", printable(programs[0]), "; ".join(differ))
    threads = DEFAULT_THREADS if args.threads is None else args.threads
    if args.trials < 1:
        raise UsageError(f"--trials takes an integer >= 1, got {args.trials}")
    report = simulate_trials(program, datasets, trials=args.trials, chip=chip, seed=args.seed, ideal=args.ideal,
                             exact_read_noise=args.exact_read_noise, output=args.output, threads=threads, board=board,
                             after=0.0 if args.after is None else args.after)
    if args.timeline is not None:
        from lea_compiler.plot_timeline import draw_timeline

        draw_timeline(program, args.timeline, chip=chip, schedule=board)
    data = report.to_json()
    data["program"] = programs[0] if board is None else args.board_program
    if board is not None:
        data["board"] = programs[0]
    if args.json:
        print(dumps_report(data))
    else:
        print_report(data)
    return 0


def _is_board_file(path: str) -> bool:
    """Whether `path` starts like a board file (a JSON line) rather than a Program (a zip archive)."""
    if input_kind(path) is not None:
        return False  # not a regular file: Program.load says what it is
    try:
        with open(path, "rb") as file:
            return file.read(1) == b"{"
    except OSError:
        return False  # Program.load says what is wrong with the path


_FORMAT = re.compile(rb'"format"\s*:\s*"([^"\\]{1,64})"')


def _refuse_json(path: str) -> NoReturn:
    """Refuse a JSON file given as the Program without --program, saying what it is by the format it names near
    its start (a board file needs its Program; a chip file is no Program at all; any other JSON is neither).

    Raises:
        UsageError: a board file, or a chip file.
        InvalidInputError: another JSON file.
    """
    try:
        with open(path, "rb") as file:
            found = _FORMAT.search(file.read(4096))
    except OSError:
        found = None
    kind = found.group(1).decode("ascii", "replace") if found else None
    if kind == "leac-chip":
        raise UsageError(f"{path} is a chip file, not a Program: compile a model for it (leac compile MODEL --chip "
                         f"{path}) and simulate that Program, or give it as --chip to simulate a Program on it")
    if kind != "leac-board":
        raise InvalidInputError(f"{path} is neither a Program (a .leac file of leac compile) nor a board file "
                                f"(leac emit): {f'a JSON file of format {kind!r}' if kind else 'it starts like JSON'}")
    raise UsageError(f"{path} is a board file: give the Program it was emitted from with --program PROGRAM.leac")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def timing_text(r: dict[str, Any]) -> str:
    """The timeline's lines of a report (`latency_ns` ... `peak_buffer_words`, docs/reports.md)."""
    b = r["busy_ns"]
    layers = ", ".join(f"{printable(k)} {v / 1e3:.2f}" for k, v in r["layer_latency_ns"].items())
    return (f"latency per crossbar layer, us: {layers}\n"
            f"busy time per inference, us (summed over the resources): DAC {b['dac'] / 1e3:.2f}, reads "
            f"{b['read'] / 1e3:.2f}, ADC {b['adc'] / 1e3:.2f}, digital {b['digital'] / 1e3:.2f}; bottleneck "
            f"{r['bottleneck']} ({r['period_ns'] / 1e3:.2f} us a sample); most waiting: {r['peak_sample_holds']} "
            f"reads in one array's sample-and-hold, {r['peak_buffer_words']} converted values\n"
            f"static power of the powered hardware: {r['static_power_uW']:g} uW, {r['pipelined_static_pJ']:.1f} pJ "
            "per inference pipelined"
            + ("" if r["timing_exact"] else "\ntimeline not run: the schedule has more tasks than the limit "
               "(docs/limits.md); the busy times and the period are exact, the latencies, the peaks and the "
               "static energy of one inference upper bounds"))


def print_report(r: dict[str, Any]) -> None:
    which = "the chip it was compiled for" if r["compiled_for_chip"] else "another chip than compiled for"
    mode = "ideal devices" if r["ideal"] else f"seed {r['seed']}"
    if "after_s" in r:
        mode += f", {r['after_s']:g} s after programming (drift)"
    what = r["program"] if "board" not in r else f"board file {printable(r['board'])} (of {r['program']})"
    print(f"simulated {what} on chip {r['chip']!r} ({which}), {mode}")
    rows = [("data", "samples", "accuracy", "software", "agreement")]
    for d in r["data"]:
        rows.append((d["name"], str(d["samples"]), _pct(d["accuracy"]), _pct(d["software_accuracy"]),
                     _pct(d["agreement"])))
    if len(r["data"]) > 1:
        rows.append(("mean", "", _pct(r["accuracy"]), _pct(r["software_accuracy"]), _pct(r["agreement"])))
    print(format_table(rows))
    if "trials" in r:
        t = r["trials"]
        print(f"over {t['count']} noise draws (seeds {t['seeds'][0]}..{t['seeds'][-1]}): accuracy {_pct(t['mean'])} "
              f"+- {_pct(t['std'])} (standard deviation), range {_pct(t['min'])} .. {_pct(t['max'])}; the rest is "
              f"seed {t['seeds'][0]}'s")
    errors = ", ".join(f"{printable(k)} {100 * v:.2f}%" for k, v in r["layer_output_error"].items())
    print(f"layer output error (relative RMS against the digital reference): {errors}")
    print(f"devices used: {r['devices_used']} of {r['devices_total']} ({100 * r['utilisation']:.1f}%), "
          f"on {r['arrays_used']} of {r['arrays_total']} arrays")
    e = r["energy_breakdown_pJ"]
    print(f"per inference: {r['cycles_per_inference']:.0f} cycles, latency {r['latency_ns'] / 1e3:.2f} us, "
          f"{r['throughput_per_s']:.0f} inferences/s pipelined, {r['energy_pJ_per_inference']:.1f} pJ "
          f"(device reads {e['device_reads']:.1f}, ADC {e['adc']:.1f}, DAC {e['dac']:.1f}, "
          f"digital {e['digital']:.1f}, static {e['static']:.1f})")
    print(timing_text(r))
    layers = ", ".join(f"{printable(k)} {sum(v.values()):.1f} ({v['device_reads']:.1f} + {v['adc']:.1f} + "
                       f"{v['dac']:.1f} + {v['digital']:.1f})" for k, v in r["energy_by_layer_pJ"].items())
    print(f"energy per crossbar layer, pJ (device reads + ADC + DAC + digital; device reads "
          f"{r['device_energy']}): {layers}")
    print(f"programming: {r['program_pulses']} write-verify pulses, {1e3 * r['program_time_s']:.2f} ms, "
          f"{r['program_energy_uJ']:.3f} uJ")


def _run_many(args: argparse.Namespace) -> int:
    """`leac simulate` for many Programs (see the epilog of `leac simulate --help`)."""
    from lea_compiler.simulate_batch import SimulateOptions, program_files, simulate_many

    if args.chip is not None:
        raise UsageError("--chip works with one Program; with many, each is simulated on the chip it was "
                         "compiled for")
    if args.min_accuracy is not None and not 0.0 <= args.min_accuracy <= 100.0:
        raise UsageError(f"--min-accuracy takes a percentage from 0 to 100, got {args.min_accuracy:g}")
    programs = [Path(p) for p in args.program]
    if args.program_dir is not None:
        programs += program_files(args.program_dir)
    options = SimulateOptions(seed=args.seed, ideal=args.ideal, exact_read_noise=args.exact_read_noise,
                              output=args.output, threads=1 if args.threads is None else args.threads)
    minimum = None if args.min_accuracy is None else args.min_accuracy / 100
    return run_batch(args, lambda progress: simulate_many(programs, args.data, options, min_accuracy=minimum,
                                                          jobs=args.jobs, scheduler=args.scheduler,
                                                          on_result=progress), print_batch)


def print_batch(result: SimulateBatchResult) -> None:
    """The batch summary: one row per Program, then the yield and how the batch ran."""
    names = [Path(d).name for d in result.data]
    several = len(names) > 1
    threshold = result.min_accuracy
    header = ["program", "status", "chip", "accuracy", *(names if several else []), "software", "agreement"]
    if threshold is not None:
        header.append(f">= {_pct(threshold)}")
    rows = [(*header, "seconds", "error")]
    for program in result.programs:
        r = program.report
        ok = program.ok
        per_data = [_pct(d["accuracy"]) if ok else "" for d in (r["data"] or [None] * len(names))] if several else []
        meets = "" if r["meets_min_accuracy"] is None else ("yes" if r["meets_min_accuracy"] else "no")
        rows.append((
            program.name, program.status.replace("_", " "), str(r["chip"] or "-") if ok else "",
            _pct(r["accuracy"]) if ok else "", *per_data, _pct(r["software_accuracy"]) if ok else "",
            _pct(r["agreement"]) if ok else "", *([meets] if threshold is not None else []),
            f"{program.seconds:.2f}", first_line(program.error),
        ))
    options = result.options
    mode = "ideal devices" if options.ideal else f"seed {options.seed}"
    print(f"simulated {len(result.programs)} Programs on {', '.join(names)} ({mode}), each on the chip it was "
          "compiled for")
    print(format_table(rows))
    y = result.yield_summary
    if y.programs:
        print(f"yield over {y.programs} Programs: accuracy mean {_pct(y.mean)}, std {_pct(y.std)}, "
              f"worst {_pct(y.worst)} ({Path(str(y.worst_program)).name}), "
              f"best {_pct(y.best)} ({Path(str(y.best_program)).name})")
        if threshold is not None:
            print(f"at or above {_pct(threshold)}: {y.at_or_above} of {y.programs} Programs "
                  f"({_pct(y.fraction_at_or_above)})")
    else:
        print("yield: no Program simulated")
    failed = len(result.failed)
    where = f"{result.jobs} worker process{'es' if result.jobs != 1 else ''}" if result.scheduler is None else \
        f"the Dask cluster at {result.scheduler}"
    models = result.software_models
    print(f"{len(result.programs) - failed} of {len(result.programs)} Programs simulated, {failed} failed; "
          f"software baseline for {models} model{'s' if models != 1 else ''} {result.software_seconds:.2f} s; "
          f"{result.wall_seconds:.1f} s on {where}")
