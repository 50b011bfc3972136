"""leac's Python API: compile a model for a chip, simulate it, emit board instructions.

    import lea_compiler as leac
    program = leac.compile("model.onnx", "chip.json", k=4)
    program.save("model.leac")
    report = leac.simulate(program, "test.npz")        # or (x, y) arrays, a dict, a Dataset, a list of them
    leac.emit_board(program, "model.board.jsonl")
    programmed = leac.program_chip(program, strategy="closed-loop")  # the simulated board; .program, .readback
    batch = leac.compile_many("model.onnx", "chips/", "programs/", k=4)  # every chips/*.json, in parallel
    tested = leac.simulate_many("programs/", "test.npz", min_accuracy=0.9)  # every programs/*.leac, and the yield

Errors are `lea_compiler.errors.LeacError` subclasses: `InvalidModelError`,
`InvalidChipError`, `BadDataError` (all `InvalidInputError`), `CompileError`,
`DoesNotFitError`, `UsageError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lea_compiler.arguments import (
    bool_argument,
    check_callable,
    check_keywords,
    check_kind,
    check_path,
    int_argument,
    number_argument,
    path_list,
)
from lea_compiler.backends.board import DEFAULT_MAX_PULSES, BoardSummary, board_schedule, read_board
from lea_compiler.backends.board import emit_board as _emit_board
from lea_compiler.backends.sim import Report, simulate_trials
from lea_compiler.batch import BatchResult, ChipResult, chip_files
from lea_compiler.batch import compile_many as _compile_many
from lea_compiler.chip import Chip, load_chip
from lea_compiler.compiler import compile_model
from lea_compiler.datasets import DataLike, data_items, datasets_of, load_data
from lea_compiler.errors import UsageError
from lea_compiler.fileio import check_output
from lea_compiler.ir import Graph
from lea_compiler.options import CompileKeywords, from_keywords, takes_options
from lea_compiler.plot import require_matplotlib
from lea_compiler.plot_timeline import draw_timeline
from lea_compiler.program import Program
from lea_compiler.programming.board import Board, open_board, with_readback_reads
from lea_compiler.programming.loop import MAX_ATTEMPTS, Programmed
from lea_compiler.programming.loop import program_chip as _program_chip
from lea_compiler.simulate_batch import ProgramResult, SimulateBatchResult, SimulateOptions, program_files
from lea_compiler.simulate_batch import simulate_many as _simulate_many

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; typing_extensions is only needed by type checkers
    from typing_extensions import Unpack

PathLike = str | os.PathLike[str]


@takes_options
def compile(  # noqa: A001 - the verb users expect: leac.compile(model, chip, k=...)
    model: PathLike | Graph,
    chip: PathLike | Chip,
    *,
    calibrate_on: PathLike | None = None,
    **options: Unpack[CompileKeywords],
) -> Program:
    """Compile an ONNX model (file or imported Graph) for one chip (file or Chip) into a Program.

    The keyword arguments are `leac compile`'s options (see docs/cli.md), each
    named as its flag without the dashes (`scale_noise` is `--scale-noise`)
    except three: `time_limit_s` is `--time-limit` (seconds, as every time in
    the API is named), `block=(rows, cols)` is `--block RxC`, and
    `calibrate_on` is `--calibrate DATA.npz` (an .npz path; a bare `calibrate=`
    would read as an on/off switch). The same inputs and seed give a
    byte-identical Program. `ensemble="network"` makes k copies of the whole
    network averaged at the outputs instead of k copies of every layer (then
    `beta` must stay None). With `calibrate_on` and `compensate="columns"` (the
    default), each output column gets a digital gain
    and offset fitted against the chip's known stuck devices.

    The options, their defaults and help texts are defined once, in `lea_compiler.options`
    (`OPTIONS`; `inspect.signature(leac.compile)` lists them).

    Raises:
        UsageError: a keyword that is not a compile option (the message lists the valid ones), or a `model`,
            `chip` or `calibrate_on` that is not a file path (or a Graph, a Chip).
        InvalidModelError / InvalidChipError / BadDataError / CompileError / DoesNotFitError: as `leac compile`.
    """
    compile_options = from_keywords(options, where="leac.compile", others=("calibrate_on",))
    check_path(model, "model", or_a=Graph)
    check_path(chip, "chip", or_a=Chip)
    check_path(calibrate_on, "calibrate_on", optional=True)
    return compile_model(model, chip, compile_options, calibrate_on=calibrate_on).program


@takes_options
def compile_many(
    model: PathLike,
    chips: PathLike | Sequence[PathLike],
    out_dir: PathLike,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    calibrate_on: PathLike | None = None,
    on_result: Callable[[ChipResult, int, int], None] | None = None,
    **options: Unpack[CompileKeywords],
) -> BatchResult:
    """Compile one ONNX model for many chips in parallel: `out_dir/<chip stem>.leac` and `.json` per chip.

    `chips` is a folder (its `*.json` files, sorted by name) or a list of chip files.
    The model is imported, canonicalized and quantized once and shared; each chip's
    Program is byte for byte what `compile` gives for that chip (the keyword
    arguments are the same), whatever `jobs` is. `jobs` local worker processes
    (default: the CPU count), or the workers of the Dask cluster at `scheduler`
    (needs the `distributed` extra). A chip that fails does not stop the others:
    its result carries the status and error (`result.chips[i].error`), and
    `result.exit_status` is 0 only when every chip compiled. `on_result(chip result,
    done, total)` is called as each chip finishes.

    Raises:
        UsageError: an unknown keyword, no chips, clashing outputs, a `jobs` that is not an integer >= 1, an
            unusable scheduler, a path argument that is not a path (or list of paths), or an `on_result` that
            cannot be called.
        InvalidModelError / BadDataError / CompileError: the model fails before any chip.
    """
    compile_options = from_keywords(options, where="leac.compile_many",
                                    others=("jobs", "scheduler", "calibrate_on", "on_result"))
    check_path(model, "model")
    files = [Path(c) for c in path_list(chips, "chips", chip_files)]
    check_path(out_dir, "out_dir")
    jobs = None if jobs is None else int_argument(jobs, "jobs", 1)
    check_kind(scheduler, "scheduler", str, "a Dask scheduler address (str)", optional=True)
    check_path(calibrate_on, "calibrate_on", optional=True)
    check_callable(on_result, "on_result")
    return _compile_many(model, files, out_dir, compile_options, jobs=jobs, scheduler=scheduler,
                         calibrate_on=calibrate_on, on_result=on_result)


def simulate(
    program: Program | PathLike,
    data: DataLike | Sequence[DataLike],
    *,
    chip: PathLike | Chip | None = None,
    seed: int = 0,
    ideal: bool = False,
    exact_read_noise: bool = False,
    output: str | None = None,
    threads: int = 1,
    batch_size: int = 2048,
    board: PathLike | None = None,
    trials: int = 1,
    after: float | str = 0.0,
    timeline: PathLike | None = None,
) -> Report:
    """Simulate a Program (or a .leac file) on one or more data sets, as `leac simulate` does.

    `data` is one data set or a list of them; a data set is an .npz file (as
    `--data`), a `Dataset`, a tuple `(x, y)` of arrays, or a dict with `x`, `y`
    and optionally `name`. Arrays and files go through the same checks and
    dtype conversions (`lea_compiler.datasets.as_datasets`, rule in
    `lea_compiler.dtypes`), and labels the model never predicts are refused.

        report = leac.simulate(program, (x_test, y_test), seed=1)
        report = leac.simulate(program, ["task1.npz", {"x": x2, "y": y2, "name": "task2"}])

    The keywords are `leac simulate`'s options: `chip` is `--chip`, `seed`
    `--seed`, `ideal` `--ideal`, `exact_read_noise` `--exact-read-noise`,
    `output` `--output`, `threads` `--threads` (default 1 here, min(4, CPUs)
    on the command line; the report does not depend on it). `batch_size`
    (samples per noise block: each crossbar layer draws one read-noise seed per
    block; a block runs in memory-bounded chunks, `lea_compiler.chunks`) has no flag.
    `board` is a board file emitted from the Program (`leac simulate BOARD --program PROGRAM`): its records
    are what runs, and the report equals the Program's; a file whose records are not what the Program lowers to
    (another model, chip, options or calibration, or an edit) is refused. `trials` is
    `--trials`: that many noise draws (seeds seed, seed + 1, ...); the report is the first's, with every
    draw's accuracy, their mean, standard deviation and range in `report.trials`. `after` is `--after`: the
    time since programming, in seconds or as a duration ("1h", "30d"), at which the devices are read, drifted
    as the chip's `device.drift` says (0: as programmed). `timeline` is
    `--timeline`: the PNG to draw one inference's timeline to (the `plot` extra; `lea_compiler.plot_timeline`).

    Raises:
        UsageError: `data` is not data sets; `seed` not an integer >= 0, `threads`, `batch_size` or `trials` not
            an integer >= 1, `ideal` or `exact_read_noise` not a bool; `program`, `chip`, `board` or `timeline`
            not a file path (or a Program, a Chip); no output named `output`; a bad `after`; a `timeline` that
            cannot be written or would overwrite an input (as `--timeline`).
        BadDataError: a data set does not fit the model or has labels it never predicts.
        InvalidInputError: a `chip` without the arrays the Program uses, or a `board` file that is not valid or
            not emitted from this Program.
    """
    check_path(program, "program", or_a=Program)
    check_path(chip, "chip", or_a=Chip, optional=True)
    seed = int_argument(seed, "seed", 0)
    ideal = bool_argument(ideal, "ideal")
    exact_read_noise = bool_argument(exact_read_noise, "exact_read_noise")
    check_kind(output, "output", str, "an output name (str)", optional=True)
    threads = int_argument(threads, "threads", 1)
    batch_size = int_argument(batch_size, "batch_size", 1)
    check_path(board, "board", optional=True)
    trials = int_argument(trials, "trials", 1)
    check_path(timeline, "timeline", optional=True)
    source = _source(program)
    if not isinstance(program, Program):
        program = Program.load(program)
    items, names = data_items(data)  # an iterable of data sets is read once, here
    datasets = datasets_of(items, names, program.graph)
    sim_chip = chip if chip is None or isinstance(chip, Chip) else load_chip(chip)
    schedule = None if board is None else board_schedule(read_board(board))
    if timeline is not None:
        require_matplotlib("simulate(timeline=...)")
        files = [item for item in items if isinstance(item, (str, os.PathLike))]  # a tuple of paths too
        check_output(timeline, [board, source, chip if not isinstance(chip, Chip) else None, *files], "timeline")
    report = simulate_trials(program, datasets, trials=trials, chip=sim_chip, seed=seed, ideal=ideal,
                             exact_read_noise=exact_read_noise, output=output, threads=threads,
                             batch_size=batch_size, board=schedule, after=after)
    if timeline is not None:
        draw_timeline(program, timeline, chip=sim_chip, schedule=schedule)
    return report


def simulate_many(
    programs: PathLike | Sequence[PathLike],
    data: PathLike | Sequence[PathLike],
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    seed: int = 0,
    ideal: bool = False,
    min_accuracy: float | None = None,
    exact_read_noise: bool = False,
    output: str | None = None,
    threads: int = 1,
    on_result: Callable[[ProgramResult, int, int], None] | None = None,
) -> SimulateBatchResult:
    """Simulate many Programs (one per chip) on the same data files, in parallel, and summarise the yield.

    `programs` is a folder (its `*.leac` files, sorted by name) or a list of .leac
    files; `data` one .npz file or several, each read once. Every Program is
    simulated on the chip it was compiled for with `seed`, so its report
    (`result.programs[i].report`) is what `simulate(program, data, seed=seed)`
    gives, whatever `jobs` is. `jobs` local worker processes (default: the CPU
    count), or the workers of the Dask cluster at `scheduler`. `min_accuracy` is a
    fraction (0.9 for 90%): `result.yield_summary.at_or_above` counts the Programs
    that reach it. A Program that fails does not stop the others: its result
    carries the status and error, and `result.exit_status` is 0 only when every
    Program simulated (a Program below `min_accuracy` does not change it).
    `on_result(program result, done, total)` is called as each Program finishes.

    Raises:
        UsageError: no Programs or data, or `programs` or `data` not a path or a list of paths; `min_accuracy`
            not a number from 0 to 1; `seed` not an integer >= 0, `jobs` or `threads` not an integer >= 1;
            `ideal` or `exact_read_noise` not a bool; an `on_result` that cannot be called; an unusable
            scheduler.
        BadDataError: a data file cannot be read (before any Program is simulated).
    """
    files = [Path(p) for p in path_list(programs, "programs", program_files)]
    data_files = path_list(data, "data")
    jobs = None if jobs is None else int_argument(jobs, "jobs", 1)
    check_kind(scheduler, "scheduler", str, "a Dask scheduler address (str)", optional=True)
    min_accuracy = None if min_accuracy is None else number_argument(min_accuracy, "min_accuracy")
    check_kind(output, "output", str, "an output name (str)", optional=True)
    check_callable(on_result, "on_result")
    options = SimulateOptions(seed=int_argument(seed, "seed", 0), ideal=bool_argument(ideal, "ideal"),
                              exact_read_noise=bool_argument(exact_read_noise, "exact_read_noise"),
                              output=output, threads=int_argument(threads, "threads", 1))
    return _simulate_many(files, data_files, options, min_accuracy=min_accuracy, jobs=jobs, scheduler=scheduler,
                          on_result=on_result)


def program_chip(
    program: Program | PathLike,
    *,
    board: str | Board = "sim",
    strategy: str = "closed-loop",
    seed: int = 0,
    chip: PathLike | Chip | None = None,
    attempts: int = 1,
    tolerance_uS: float | None = None,
    max_pulses: int = DEFAULT_MAX_PULSES,
    readback_reads: int | None = None,
    calibrate_on: PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> Programmed:
    """Program a chip with a Program, as `leac program` does, and return the as-programmed Program, the
    read-back and the programming cost (`lea_compiler.programming.loop`).

        programmed = leac.program_chip("model.leac", strategy="closed-loop", seed=3)
        programmed.program.save("model.programmed.leac")
        report = leac.simulate(programmed.program, "test.npz")   # read noise only: the programming happened

    `board` is `--board`: `sim` (the simulated board, on `chip` or the Program's chip, seeded by `seed`), a
    `module:callable` or `leac.boards` entry-point name, or a `Board` object (a lab's driver, already open).
    `strategy`, `attempts`, `tolerance_uS`, `max_pulses`, `readback_reads` are `--strategy`, `--attempts`,
    `--tolerance-uS`, `--max-pulses`, `--readback-reads` (docs/programming.md); `readback_reads` replaces the
    chip's reads per read-back for a board opened by name. `calibrate_on` is `--calibrate DATA.npz`: refit the
    per-column gain and offset on the read-back.

    Raises:
        UsageError: an unknown board or strategy, bad settings (`seed` not an integer >= 0, `attempts` not one
            in 1..MAX_ATTEMPTS, `max_pulses` not an integer >= 1, `tolerance_uS` not a positive number), a
            `board` that is neither a name nor a `Board`, `program`, `chip` or `calibrate_on` not a file path (or
            a Program, a Chip), a `progress` that cannot be called, a Program already programmed, a chip without
            the Program's arrays or levels, a board that reports what a board cannot, or a driver opened by name
            that raises from any of its calls (docs/programming.md).
        InvalidInputError: `chip` is not a valid chip file.
    """
    check_path(program, "program", or_a=Program)
    check_kind(board, "board", (str, Board), "a board name (str) or a Board")
    seed = int_argument(seed, "seed", 0)
    check_path(chip, "chip", or_a=Chip, optional=True)
    attempts = int_argument(attempts, "attempts", 1, MAX_ATTEMPTS)
    tolerance_uS = None if tolerance_uS is None else number_argument(tolerance_uS, "tolerance_uS")
    max_pulses = int_argument(max_pulses, "max_pulses", 1)
    check_path(calibrate_on, "calibrate_on", optional=True)
    check_callable(progress, "progress")
    if not isinstance(program, Program):
        program = Program.load(program)
    chosen = program.chip if chip is None else chip if isinstance(chip, Chip) else load_chip(chip)
    fingerprint = None  # an open Board's: its chip's
    if isinstance(board, str):  # readback_reads is the session's, not the chip's: record the chip's own fingerprint
        name, device = board, open_board(board, with_readback_reads(chosen, readback_reads), seed)
        fingerprint = chosen.fingerprint()
    elif readback_reads is not None:
        raise UsageError("readback_reads applies to a board opened by name; an open Board reads back as it does")
    else:
        name, device = type(board).__name__, board
    calibration = None if calibrate_on is None else load_data(calibrate_on, program.graph).x
    return _program_chip(program, device, strategy=strategy, attempts=attempts, tolerance_uS=tolerance_uS,
                         max_pulses=max_pulses, progress=progress, board_name=name, calibration=calibration,
                         chip_fingerprint=fingerprint)


def emit_board(
    program: Program | PathLike,
    path: PathLike,
    *,
    tolerance_uS: float | None = None,
    max_pulses: int = DEFAULT_MAX_PULSES,
    **unknown: Any,
) -> BoardSummary:
    """Write the board instruction stream of a Program (or a .leac file) to `path`, as `leac emit` does.

        summary = leac.emit_board(program, "model.board.jsonl", tolerance_uS=0.5, max_pulses=20)
        print(summary.writes, summary.skips, summary.bytes)

    The file is the `leac-board` format (docs/board-format.md): the write-verify instructions that program the
    Program's devices, then the inference schedule. `tolerance_uS` is `--tolerance-uS`: a device is done when
    it reads within +-tolerance_uS of its target (default None: a quarter of the smallest gap between adjacent
    device levels). `max_pulses` is `--max-pulses`: the programming pulses allowed per device (default
    `DEFAULT_MAX_PULSES`). The returned `BoardSummary` counts the writes, skipped stuck devices, arrays,
    reads, records and bytes written, with the tolerance and pulse limit used.

    `path` is checked as `leac emit -o` checks its output, before the Program is read: it must not be the
    Program's file (the one given, or the one a Program object was loaded from), and nothing is written when
    it is refused.

    Raises:
        UsageError: a keyword other than these; `program` or `path` not a file path (or a Program); `path`
            cannot be written (`fileio.check_output`); `tolerance_uS` not a positive number, `max_pulses` not
            an integer >= 1; an as-programmed Program.
        InvalidInputError: the Program file cannot be read, or the Program contradicts its own chip.
    """
    check_keywords(list(unknown), ["tolerance_uS", "max_pulses"], "leac.emit_board")
    check_path(program, "program", or_a=Program)
    check_path(path, "path")
    tolerance_uS = None if tolerance_uS is None else number_argument(tolerance_uS, "tolerance_uS")
    max_pulses = int_argument(max_pulses, "max_pulses", 1)
    check_output(path, [_source(program)], "path")
    if not isinstance(program, Program):
        program = Program.load(program)
    return _emit_board(program, path, tolerance_uS=tolerance_uS, max_pulses=max_pulses)


def _source(program: Program | PathLike) -> PathLike | None:
    """The file a Program argument comes from (None for one made in memory): an output must not replace it."""
    return program.loaded_from if isinstance(program, Program) else program
