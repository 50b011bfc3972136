"""Compiling one model for many chips: the front end once, then every chip in a worker.

A test station compiles the same model for every chip it measures, each with its
own defect map. `compile_many` does that in three steps:

1. Front end, once, in the calling process: import the model and run the passes
   that do not depend on the chip (`canonicalize`; `replicate_network` with the
   network ensemble). `quantize` depends on the chip only through its device
   levels, so it runs once too, for the levels of the first chip file that
   loads; a chip with other levels quantizes for itself. Both graphs go to
   every worker once (the pool's initializer, or one Dask scatter).
2. Per chip, in parallel: a worker loads the chip file, copies the front end's
   graph, runs the remaining passes (tile, ensemble, place, encode, select,
   compensate) and returns the Program's bytes and its report. The Program is
   byte for byte the one `leac compile MODEL --chip CHIP` writes, and does not
   depend on the number of workers.
3. Outputs, in the calling process: `OUT/<chip stem>.leac` (only for a chip
   that compiled) and `OUT/<chip stem>.json` (its report, or its error), each
   written atomically as its chip finishes.

A chip that fails (a bad chip file, a model that does not fit it, a pass that
cannot map it, even a bug) is reported with its error; the others go on. So
is a chip whose worker process is killed twice (e.g. by the OOM killer: it
runs once more alone first, `lea_compiler.process_pool`).
`BatchResult.exit_status` is 0 when every chip compiled, else the most serious
failure, i.e. the smallest non-zero status: 1 (a compile error or a bug) before
2 (usage) before 3 (an invalid input file) before 4 (does not fit).

The chips run where `lea_compiler.workers` runs a batch's jobs: local worker
processes (one BLAS thread each), or with `scheduler=ADDRESS` the workers of a
Dask cluster, which must be able to read the chip files. With one job, the
chips compile in the calling process.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lea_compiler.chip import Chip, load_chip
from lea_compiler.compiler import FrontEnd, compile_prepared, compile_summary, prepare
from lea_compiler.errors import CompileError, DoesNotFitError, LeacError, UsageError
from lea_compiler.fileio import atomic_write_bytes, atomic_write_text, check_output, written_together
from lea_compiler.pipeline import CompileOptions
from lea_compiler.report_json import dumps_report
from lea_compiler.workers import (
    OK,
    STATUSES,
    Outcome,
    batch_exit_status,
    check_workers,
    connect,
    crash_details,
    files_in,
    local_workers,
    run_jobs,
    status_of,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

REPORT = "leac-compile-batch"
"""The `report` key of the batch's JSON envelope."""
REPORT_VERSION = 1


@dataclass(frozen=True)
class ChipJob:
    """One chip of a batch: its file and where its outputs go."""

    index: int
    chip: str  # the chip file, as the workers open it
    program: str  # OUT/<stem>.leac
    report: str  # OUT/<stem>.json

    @property
    def label(self) -> str:
        return self.chip


@dataclass(frozen=True)
class ChipResult(Outcome):
    """One chip's outcome: its report (the `leac compile --json` keys plus `status`, `error` and a few more)."""

    chip_file: str
    report_path: str
    report: dict[str, Any]
    program_path: str | None  # None: the chip failed and no Program was written
    traceback: str | None = None  # for an internal error (a bug)

    @property
    def source(self) -> str:
        """The chip file."""
        return self.chip_file

    @property
    def seconds(self) -> float:
        return float(self.report["compile_seconds"])


@dataclass(frozen=True)
class BatchResult:
    """Every chip's result, in the order the chips were given, and how the batch ran."""

    model: str
    out_dir: str
    chips: list[ChipResult]
    shared_passes: list[str]  # the passes the front end ran once for all chips (quantize: for shared_levels_uS)
    shared_levels_uS: list[float] | None
    shared_seconds: float
    wall_seconds: float
    jobs: int | None  # local worker processes (None with a scheduler)
    scheduler: str | None

    @property
    def exit_status(self) -> int:
        """0 if every chip compiled, else the smallest non-zero chip status (the most serious failure)."""
        return batch_exit_status(c.exit_status for c in self.chips)

    @property
    def failed(self) -> list[ChipResult]:
        return [c for c in self.chips if not c.ok]

    def to_json(self) -> dict[str, Any]:
        """The JSON envelope `leac compile --json` prints for a batch."""
        return {
            "report": REPORT,
            "version": REPORT_VERSION,
            "model": self.model,
            "out_dir": self.out_dir,
            "chips_total": len(self.chips),
            "chips_ok": len(self.chips) - len(self.failed),
            "chips_failed": len(self.failed),
            "exit_status": self.exit_status,
            "jobs": self.jobs,
            "scheduler": self.scheduler,
            "shared_passes": self.shared_passes,
            "shared_levels_uS": self.shared_levels_uS,
            "shared_seconds": self.shared_seconds,
            "wall_seconds": self.wall_seconds,
            "chips": [c.report for c in self.chips],
        }


def chip_files(folder: PathLike) -> list[Path]:
    """The chip files of a folder: its `*.json` files, sorted by name.

    Raises:
        UsageError: the folder does not exist or is not a folder.
    """
    return files_in(folder, "*.json", "--chip-dir")


def compile_many(
    model: PathLike,
    chips: Sequence[PathLike],
    out_dir: PathLike,
    options: CompileOptions | None = None,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    calibrate_on: PathLike | None = None,
    verify: bool = True,
    on_result: Callable[[ChipResult, int, int], None] | None = None,
) -> BatchResult:
    """Compile an ONNX model for every chip file, writing `out_dir/<chip stem>.leac` and `.json` per chip.

    Args:
        model: The ONNX file, read once.
        chips: Chip files; their file names without `.json` (stems) must differ.
        out_dir: The output folder (made if missing).
        options: The compile options, the same for every chip.
        jobs: Local worker processes (default: the CPU count; 1 compiles in this process).
        scheduler: A Dask scheduler address; the chips then compile on its workers.
        calibrate_on: Calibration data (.npz), as for `compile_model`.
        verify: Verify the IR after every pass.
        on_result: Called in this process as each chip finishes: (result, chips done, chips in all).

    Returns:
        Every chip's result, in the order of `chips`.

    Raises:
        UsageError: no chips, two chips with one stem, an empty `out_dir`, an output that would overwrite an
            input, `jobs` below 1, or a scheduler that cannot be used.
        InvalidModelError / BadDataError / CompileError: the model (or calibration data) fails
            before any chip is compiled; no output is written.
    """
    start = time.perf_counter()
    options = options or CompileOptions()
    check_workers(jobs, scheduler)
    if not os.fspath(out_dir):  # Path("") is the current folder: never chosen by saying nothing
        raise UsageError("the output folder is empty: name the folder for the Programs and reports")
    out = Path(out_dir)
    job_list = _plan(model, [Path(c) for c in chips], out, calibrate_on, absolute=scheduler is not None)
    client = connect(scheduler) if scheduler is not None else None  # before any work: a wrong address fails fast
    try:
        base = prepare(model, options, calibrate_on=calibrate_on, verify=verify)
        fronts = [base]
        first = _first_chip(job.chip for job in job_list)
        # quantize's work grows with k: share it only for a chip that can hold the model at all
        device = first.device if first is not None and base.devices_needed <= first.device_count else None
        if device is not None:
            try:
                fronts.insert(0, base.quantized(device, verify=verify))
            except (CompileError, DoesNotFitError) as exc:  # each chip with these levels meets it and reports it
                log.info("quantize is not shared: %s", exc)
        shared = fronts[0]
        log.info("front end for %d chips: %s in %.3f s", len(job_list), ", ".join(p.name for p in shared.passes),
                 shared.seconds)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _cannot_make(out, exc) from None
        results: list[ChipResult | None] = [None] * len(job_list)
        finished = 0

        def finish(job: ChipJob, outcome: _ChipOutcome) -> None:
            nonlocal finished
            result = _write(job, outcome)
            results[job.index] = result
            finished += 1
            if on_result is not None:
                on_result(result, finished, len(results))

        used_jobs = None if client is not None else local_workers(jobs, len(job_list))
        run_jobs(functools.partial(_compile_chip, verify=verify), tuple(fronts), job_list, finish,
                 functools.partial(_crashed, fronts=tuple(fronts)), workers=used_jobs or 1, client=client,
                 name="chip")
    finally:
        if client is not None:
            client.close()
    done = [r for r in results if r is not None]
    assert len(done) == len(job_list)
    return BatchResult(
        model=os.fspath(model), out_dir=os.fspath(out), chips=done, shared_passes=[p.name for p in shared.passes],
        shared_levels_uS=None if shared.levels_uS is None else list(shared.levels_uS),
        shared_seconds=shared.seconds, wall_seconds=time.perf_counter() - start, jobs=used_jobs,
        scheduler=scheduler,
    )


def _cannot_make(out: Path, exc: OSError) -> UsageError:
    """The error for an output folder that cannot be made (its parent is a file, permissions, a read-only mount)."""
    return UsageError(f"the output {out}: cannot make the folder ({exc.strerror or exc})")


def _plan(model: PathLike, chips: list[Path], out: Path, calibrate_on: PathLike | None,
          *, absolute: bool) -> list[ChipJob]:
    """One job per chip, after checking the outputs: distinct stems, no input overwritten."""
    if not chips:
        raise UsageError("no chip files to compile for (give --chip CHIP.json, or --chip-dir DIR with *.json files)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"the output {out} is not a folder (with several chips, -o names the output folder)")
    made_in = out
    while not made_in.exists() and made_in != made_in.parent:
        made_in = made_in.parent
    if not made_in.is_dir():  # out is made inside a file (afile/sub): refused before any work
        raise _cannot_make(out, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)))
    by_stem: dict[str, list[Path]] = {}
    for chip in chips:
        by_stem.setdefault(chip.stem, []).append(chip)
    clashes = [f"{stem}: {', '.join(map(str, paths))}" for stem, paths in by_stem.items() if len(paths) > 1]
    if clashes:
        raise UsageError("chip files with the same name would write the same outputs:\n  " + "\n  ".join(clashes))
    inputs = {Path(p).resolve(): str(p) for p in [model, *chips, *([calibrate_on] if calibrate_on else [])]}
    jobs = []
    for index, chip in enumerate(chips):
        program, report = out / f"{chip.stem}.leac", out / f"{chip.stem}.json"
        for output in (program, report):
            if output.resolve() in inputs:
                raise UsageError(f"the output {output} would overwrite the input {inputs[output.resolve()]}; "
                                 "choose another output folder")
            if out.is_dir():
                check_output(output, [])
        jobs.append(ChipJob(index, str(chip.resolve()) if absolute else str(chip), str(program), str(report)))
    return jobs


def _first_chip(chips: Iterable[str]) -> Chip | None:
    """The first chip file that loads, whose device model to quantize the front end for.

    Only a guess to share work: each chip is loaded again by its worker, which
    reports a bad file and quantizes for itself if its device model differs.
    """
    for chip in chips:
        try:
            return load_chip(chip)
        except LeacError:  # reported by the chip's own job
            continue
    return None


# --------------------------------------------------------------------------
# One chip (runs in a worker)


@dataclass(frozen=True)
class _ChipOutcome:
    """What a worker sends back: the Program's bytes (on success) and the report."""

    program: bytes | None
    report: dict[str, Any]
    traceback: str | None = None


def _compile_chip(fronts: Sequence[FrontEnd], job: ChipJob, verify: bool = True) -> _ChipOutcome:
    """Compile one chip with the first front end that serves it; never raises for the chip's own failure."""
    start = time.perf_counter()
    chip = None
    try:
        chip = load_chip(job.chip)
        front = next(f for f in fronts if f.serves(chip))
        result = compile_prepared(front, chip, verify=verify)
        data = result.program.to_bytes()
        report = compile_summary(dataclasses.replace(result, seconds=time.perf_counter() - start), job.program)
        return _ChipOutcome(data, _with_status(report, job, front, OK, None))
    except LeacError as exc:
        status, message, trace = status_of(exc), str(exc), None
    except Exception as exc:  # a bug: keep the chip's traceback, go on with the other chips
        status, trace = "internal_error", traceback.format_exc()
        message = f"internal error: {type(exc).__name__}: {exc}"
    report = _failure_report(fronts[-1], chip, job, time.perf_counter() - start)
    return _ChipOutcome(None, _with_status(report, job, None, status, message), trace)


def _with_status(report: dict[str, Any], job: ChipJob, front: FrontEnd | None, status: str,
                 error: str | None) -> dict[str, Any]:
    return {
        **report,
        "chip_file": job.chip,
        "status": status,
        "exit_status": STATUSES[status],
        "error": error,
        "shared_passes": [] if front is None else [p.name for p in front.passes],
    }


def _failure_report(front: FrontEnd, chip: Any, job: ChipJob, seconds: float) -> dict[str, Any]:
    """A report with the keys of a successful one; what is not known is None."""
    options = front.options
    network = options.ensemble == "network"
    return {
        "report": "leac-compile", "version": 1,
        "program": None, "model": front.model["file"] or front.model["name"],
        "chip": None if chip is None else chip.display_name,
        "chip_fingerprint": None if chip is None else chip.fingerprint(),
        "k": options.k, "ensemble": options.ensemble, "beta": None if network else options.effective_beta,
        "encoding": options.encoding, "placer": options.placer, "calibration": front.calibration_label,
        "layers": None, "copies": None, "devices_used": None,
        "devices_total": None if chip is None else chip.device_count, "arrays_used": None,
        "arrays_total": None if chip is None else len(chip.arrays), "mapping_error_uS": None,
        "effective_error_uS": None, "solver_status": None, "solver_method": None, "solver_bound_uS": None,
        "optimality_gap": None, "objective": options.objective, "analog_time_ns": None,
        "analog_time_bound_ns": None, "analog_time_gap": None, "placement_wall_clock_limited": None,
        "pass_seconds": None, "compile_seconds": seconds,
    }


def _write(job: ChipJob, outcome: _ChipOutcome) -> ChipResult:
    """Write one chip's outputs (in the calling process): its Program if it compiled, and its report; both or
    neither."""
    with written_together():
        if outcome.program is not None:
            atomic_write_bytes(job.program, outcome.program)
        atomic_write_text(job.report, dumps_report(outcome.report) + "\n")
    return ChipResult(job.chip, job.report, outcome.report, job.program if outcome.program is not None else None,
                      outcome.traceback)


def _crashed(job: ChipJob, exc: BaseException, fronts: Sequence[FrontEnd]) -> _ChipOutcome:
    """The outcome of a job whose worker died or could not run it."""
    message, trace = crash_details(exc)
    report = _failure_report(fronts[-1], None, job, 0.0)
    return _ChipOutcome(None, _with_status(report, job, None, "internal_error", message), trace)
