"""Simulating many Programs (one per chip) on the same data, and the yield across chips.

A test station compiles one Program per chip (`leac compile --chip-dir`) and
then wants every chip's accuracy and the spread across chips. `simulate_many`
does that in three steps:

1. In the calling process: read every data file once (`read_data`, the checks
   that do not depend on a model), and compute onnxruntime's predictions (the
   software baseline) once per distinct original model the Programs embed,
   grouped by the model's SHA-256 (`embedded_model_digest`, which reads only
   that entry of each file). Both go to every worker once.
2. Per Program, in parallel (`lea_compiler.workers`, as the compile batch): a
   worker loads the Program, fits the data to its model's input (`fit_data`)
   and simulates it with the batch's seed, exactly as `leac simulate PROGRAM
   --seed S` would: its report equals that single run's, whatever the number
   of workers (only `seconds` differs between runs).
3. In the calling process: the per-Program reports, in the order given, and the
   yield summary over the Programs that simulated (`YieldSummary`).

A Program that fails (a damaged file, data that does not fit its model, even a
bug, or a worker process killed twice while running it) is reported with its
error and the others go on; `SimulateBatchResult.
exit_status` is 0 when every Program simulated, else the most serious failure
(the smallest non-zero status), as for the compile batch. A Program below
`min_accuracy` is a result, not a failure: it does not change the exit status.

Precomputing the software baseline is only a way to share work: a Program
whose model the calling process could not run computes its own (and reports
the error it meets).
"""

from __future__ import annotations

import functools
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lea_compiler.backends.sim import simulate, software_predictions
from lea_compiler.datasets import Dataset, fit_data, read_data
from lea_compiler.errors import LeacError, UsageError
from lea_compiler.program import Program, embedded_model_digest
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

REPORT = "leac-simulate-batch"
"""The `report` key of the batch's JSON envelope."""
REPORT_VERSION = 1

ACCURACY_TOLERANCE = 1e-9
"""A Program meets `min_accuracy` when its accuracy is at least `min_accuracy - ACCURACY_TOLERANCE`: accuracy is
a ratio of counts averaged over data files, so a chip printed as 90.0% is not failed by a rounding error."""

_SIMULATE_KEYS = (
    "report", "version", "accuracy", "software_accuracy", "agreement", "data", "layer_output_error",
    "devices_used", "devices_total", "utilisation", "arrays_used", "arrays_total", "cycles_per_inference",
    "latency_ns", "throughput_per_s", "period_ns", "bottleneck", "layer_latency_ns", "busy_ns", "peak_sample_holds",
    "peak_buffer_words", "timing_exact", "static_power_uW", "pipelined_static_pJ", "energy_pJ_per_inference",
    "energy_breakdown_pJ", "energy_by_layer_pJ",
    "device_energy", "program_pulses",
    "program_time_s", "program_energy_uJ", "program_failed", "chip", "compiled_for_chip", "ideal", "seed",
    "input_full_scale", "calibration", "seconds", "program",
)
"""The keys of a `leac-simulate` report (`Report.to_json` plus `program`): a failed Program's row has them all,
null where nothing is known (a test checks they are a successful row's keys)."""


@dataclass(frozen=True)
class SimulateOptions:
    """How every Program of a batch is simulated (the `leac simulate` options)."""

    seed: int = 0
    ideal: bool = False
    exact_read_noise: bool = False
    output: str | None = None
    threads: int = 1


@dataclass(frozen=True)
class ProgramJob:
    """One Program of a batch."""

    index: int
    path: str  # the Program file, as the workers open it
    given: str  # as given, for the report

    @property
    def label(self) -> str:
        return self.given


@dataclass(frozen=True)
class ProgramResult(Outcome):
    """One Program's outcome: the `leac simulate --json` report plus `status`, `exit_status`, `error` and
    `meets_min_accuracy`."""

    program_file: str
    report: dict[str, Any]
    traceback: str | None = None  # for an internal error (a bug)

    @property
    def source(self) -> str:
        """The Program file, as given."""
        return self.program_file

    @property
    def seconds(self) -> float:
        return float(self.report["seconds"])

    @property
    def accuracy(self) -> float | None:
        value = self.report["accuracy"]
        return None if value is None else float(value)


@dataclass(frozen=True)
class YieldSummary:
    """Accuracy across the Programs that simulated (accuracy: each Program's mean over the data files)."""

    programs: int
    mean: float | None
    std: float | None  # population standard deviation over the Programs (numpy's default, ddof = 0)
    worst: float | None
    worst_program: str | None  # the first in the order given, on a tie
    best: float | None
    best_program: str | None
    min_accuracy: float | None
    at_or_above: int | None  # Programs with accuracy >= min_accuracy (None without min_accuracy)

    @property
    def fraction_at_or_above(self) -> float | None:
        if self.at_or_above is None or not self.programs:
            return None
        return self.at_or_above / self.programs

    def to_json(self) -> dict[str, Any]:
        return {
            "programs": self.programs,
            "accuracy_mean": self.mean,
            "accuracy_std": self.std,
            "accuracy_worst": self.worst,
            "worst_program": self.worst_program,
            "accuracy_best": self.best,
            "best_program": self.best_program,
            "min_accuracy": self.min_accuracy,
            "at_or_above": self.at_or_above,
            "fraction_at_or_above": self.fraction_at_or_above,
        }


def meets(accuracy: float, min_accuracy: float) -> bool:
    """Whether an accuracy is at or above `min_accuracy` (to within `ACCURACY_TOLERANCE`)."""
    return accuracy >= min_accuracy - ACCURACY_TOLERANCE


def yield_summary(programs: Sequence[ProgramResult], min_accuracy: float | None = None) -> YieldSummary:
    """The yield over the Programs that simulated; failed Programs have no accuracy and are left out."""
    done = [(p.program_file, p.accuracy) for p in programs if p.ok and p.accuracy is not None]
    if not done:
        return YieldSummary(0, None, None, None, None, None, None, min_accuracy, None if min_accuracy is None else 0)
    values = np.array([a for _, a in done], np.float64)
    worst, best = int(np.argmin(values)), int(np.argmax(values))  # the first of equal values
    return YieldSummary(
        programs=len(done), mean=float(values.mean()), std=float(values.std()),
        worst=float(values[worst]), worst_program=done[worst][0], best=float(values[best]),
        best_program=done[best][0], min_accuracy=min_accuracy,
        at_or_above=None if min_accuracy is None else sum(meets(a, min_accuracy) for _, a in done),
    )


@dataclass(frozen=True)
class SimulateBatchResult:
    """Every Program's result, in the order given, the yield, and how the batch ran."""

    data: list[str]
    programs: list[ProgramResult]
    options: SimulateOptions
    min_accuracy: float | None
    software_models: int  # distinct embedded models whose baseline was computed once, before the Programs
    software_seconds: float
    wall_seconds: float
    jobs: int | None  # local worker processes (None with a scheduler)
    scheduler: str | None

    @property
    def exit_status(self) -> int:
        """0 if every Program simulated, else the smallest non-zero status (the most serious failure)."""
        return batch_exit_status(p.exit_status for p in self.programs)

    @property
    def failed(self) -> list[ProgramResult]:
        return [p for p in self.programs if not p.ok]

    @property
    def yield_summary(self) -> YieldSummary:
        return yield_summary(self.programs, self.min_accuracy)

    def to_json(self) -> dict[str, Any]:
        """The JSON envelope `leac simulate --json` prints for many Programs (docs/reports.md)."""
        return {
            "report": REPORT,
            "version": REPORT_VERSION,
            "data": self.data,
            "seed": self.options.seed,
            "ideal": self.options.ideal,
            "programs_total": len(self.programs),
            "programs_ok": len(self.programs) - len(self.failed),
            "programs_failed": len(self.failed),
            "exit_status": self.exit_status,
            "jobs": self.jobs,
            "scheduler": self.scheduler,
            "software_models": self.software_models,
            "software_seconds": self.software_seconds,
            "wall_seconds": self.wall_seconds,
            "yield": self.yield_summary.to_json(),
            "programs": [p.report for p in self.programs],
        }


def program_files(folder: PathLike) -> list[Path]:
    """The Programs of a folder: its `*.leac` files, sorted by name.

    Raises:
        UsageError: the folder does not exist or is not a folder.
    """
    return files_in(folder, "*.leac", "--program-dir")


def simulate_many(
    programs: Sequence[PathLike],
    data: Sequence[PathLike],
    options: SimulateOptions | None = None,
    *,
    min_accuracy: float | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    on_result: Callable[[ProgramResult, int, int], None] | None = None,
) -> SimulateBatchResult:
    """Simulate every Program file on the same data files; each report is the one `leac simulate` gives.

    Args:
        programs: .leac files, in the order the report lists them.
        data: .npz files (x, y), each read once.
        options: The simulate options, the same for every Program (its seed included).
        min_accuracy: A fraction from 0 to 1: the yield counts the Programs at or above it.
        jobs: Local worker processes (default: the CPU count; 1 simulates in this process).
        scheduler: A Dask scheduler address; the Programs then run on its workers, which must be able to
            read the Program files.
        on_result: Called in this process as each Program finishes: (result, Programs done, Programs in all).

    Returns:
        Every Program's result, in the order of `programs`, and the yield.

    Raises:
        UsageError: no Programs, no data, `min_accuracy` outside [0, 1], `jobs` or `options.threads` below 1,
            or an unusable scheduler.
        BadDataError: a data file cannot be read (before any Program is simulated).
    """
    start = time.perf_counter()
    options = options or SimulateOptions()
    check_workers(jobs, scheduler)
    if not programs:
        raise UsageError("no Programs to simulate (give PROGRAM.leac files, or --program-dir DIR with *.leac files)")
    if not data:
        raise UsageError("give the data: --data DATA.npz (again for more files)")
    if min_accuracy is not None and not 0.0 <= min_accuracy <= 1.0:
        raise UsageError(f"the minimum accuracy must be a fraction from 0 to 1, got {min_accuracy}")
    if options.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {options.threads}")
    absolute = scheduler is not None
    job_list = [ProgramJob(i, str(Path(p).resolve()) if absolute else os.fspath(p), os.fspath(p))
                for i, p in enumerate(programs)]
    data_files = [os.fspath(d) for d in data]
    datasets = tuple(read_data(path) for path in data_files)
    client = connect(scheduler) if scheduler is not None else None  # before any work: a wrong address fails fast
    try:
        software_start = time.perf_counter()
        software = _software_baselines(job_list, datasets, data_files, options.output)
        software_seconds = time.perf_counter() - software_start
        log.info("software baseline for %d models in %.3f s", len(software), software_seconds)
        results: list[ProgramResult | None] = [None] * len(job_list)
        finished = 0

        def finish(job: ProgramJob, outcome: ProgramResult) -> None:
            nonlocal finished
            report = {**outcome.report, "meets_min_accuracy": None}
            if min_accuracy is not None and outcome.ok and outcome.accuracy is not None:
                report["meets_min_accuracy"] = meets(outcome.accuracy, min_accuracy)
            result = ProgramResult(outcome.program_file, report, outcome.traceback)
            results[job.index] = result
            finished += 1
            if on_result is not None:
                on_result(result, finished, len(results))

        shared = _Shared(datasets, tuple(data_files), software, options)
        used_jobs = None if client is not None else local_workers(jobs, len(job_list))
        run_jobs(_simulate_program, shared, job_list, finish, functools.partial(_crashed, options=options),
                 workers=used_jobs or 1, client=client, name="program")
    finally:
        if client is not None:
            client.close()
    done = [r for r in results if r is not None]
    assert len(done) == len(job_list)
    return SimulateBatchResult(
        data=data_files, programs=done, options=options, min_accuracy=min_accuracy, software_models=len(software),
        software_seconds=software_seconds, wall_seconds=time.perf_counter() - start, jobs=used_jobs,
        scheduler=scheduler,
    )


@dataclass(frozen=True)
class _Shared:
    """What every worker receives once: the data as read, and the software baselines by model digest."""

    datasets: tuple[Dataset, ...]
    data_files: tuple[str, ...]
    software: dict[str, tuple[np.ndarray, ...]]
    options: SimulateOptions


def _software_baselines(job_list: Sequence[ProgramJob], datasets: Sequence[Dataset], data_files: Sequence[str],
                        output: str | None) -> dict[str, tuple[np.ndarray, ...]]:
    """onnxruntime's predictions on each data set, once per distinct embedded model (by SHA-256).

    Each model runs as the first Program that embeds it would run it (the data fitted to
    that Program's input). Only a way to share work: a Program whose model fails here is
    left out, and its own job computes the baseline and reports what it meets.
    """
    baselines: dict[str, tuple[np.ndarray, ...]] = {}
    tried: set[str] = set()
    for job in job_list:
        digest = embedded_model_digest(job.path)
        if digest is None or digest in tried:
            continue
        tried.add(digest)
        try:
            program = Program.load(job.path)
            if program.model_digest != digest:
                continue
            fitted = [fit_data(d, program.graph, f) for d, f in zip(datasets, data_files, strict=True)]
            predictions = software_predictions(program, fitted, output)
        except LeacError as exc:  # reported by the Program's own job
            log.info("software baseline not shared for %s: %s", job.given, exc)
            continue
        if predictions is not None:
            baselines[digest] = tuple(predictions)
    return baselines


# --------------------------------------------------------------------------
# One Program (runs in a worker)


def _simulate_program(shared: _Shared, job: ProgramJob) -> ProgramResult:
    """Simulate one Program; never raises for the Program's own failure."""
    start = time.perf_counter()
    options = shared.options
    try:
        program = Program.load(job.path)
        datasets = [fit_data(d, program.graph, f) for d, f in zip(shared.datasets, shared.data_files, strict=True)]
        digest = program.model_digest
        report = simulate(program, datasets, seed=options.seed, ideal=options.ideal,
                          exact_read_noise=options.exact_read_noise, output=options.output, threads=options.threads,
                          software=None if digest is None else shared.software.get(digest)).to_json()
        report["program"] = job.given
        return ProgramResult(job.given, _with_status(report, OK, None))
    except LeacError as exc:
        status, message, trace = status_of(exc), str(exc), None
    except Exception as exc:  # a bug: keep the Program's traceback, go on with the others
        status, trace = "internal_error", traceback.format_exc()
        message = f"internal error: {type(exc).__name__}: {exc}"
    report = _failure_report(job, options, time.perf_counter() - start)
    return ProgramResult(job.given, _with_status(report, status, message), trace)


def _with_status(report: dict[str, Any], status: str, error: str | None) -> dict[str, Any]:
    return {**report, "status": status, "exit_status": STATUSES[status], "error": error}


def _failure_report(job: ProgramJob, options: SimulateOptions, seconds: float) -> dict[str, Any]:
    """A report with the keys of a successful one; what is not known is None."""
    report: dict[str, Any] = dict.fromkeys(_SIMULATE_KEYS)
    report.update({"report": "leac-simulate", "version": 1, "ideal": options.ideal, "seed": options.seed,
                   "seconds": seconds, "program": job.given})
    return report


def _crashed(job: ProgramJob, exc: BaseException, options: SimulateOptions) -> ProgramResult:
    """The outcome of a job whose worker died or could not run it."""
    message, trace = crash_details(exc)
    report = _failure_report(job, options, 0.0)
    return ProgramResult(job.given, _with_status(report, "internal_error", message), trace)

