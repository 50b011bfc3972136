"""Where a batch's jobs run: this process, local worker processes, or the workers of a Dask cluster.

Both batch commands (`leac compile` for many chips, `lea_compiler.batch`; `leac
simulate` for many Programs, `lea_compiler.simulate_batch`) hand `run_jobs` a
worker function, the data every job shares, and their jobs; it calls the
function once per job and gives each outcome to `finish` in the calling process
as the job ends. The worker function never raises for its job's own failure (it
returns an outcome carrying the error); a worker that dies or an outcome that
cannot come back becomes the job's `crashed` outcome, and the other jobs go on.

Workers are local processes (`lea_compiler.process_pool`, each capped at one BLAS
thread: on two cores, threaded BLAS inside parallel workers only slows them
down) that receive the shared data once, or with a scheduler address the
workers of a Dask cluster (`dask.distributed`, the `distributed` extra), which
receive it once by a broadcast scatter. With one job the jobs run in the
calling process. A local worker that dies (killed by the OOM killer, say) costs
only the job it was running, which runs once more alone before it is reported;
local workers die with the calling process.

The job statuses and the exit status they stand for are the same for both
batches (`STATUSES`); a batch exits with its most serious failure, the smallest
non-zero status (`batch_exit_status`).
"""

from __future__ import annotations

import os
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from threadpoolctl import threadpool_limits

from lea_compiler.errors import DoesNotFitError, InvalidInputError, LeacError, UsageError
from lea_compiler.process_pool import WorkerDied, WorkerError, run_pool

OK = "ok"
STATUSES = {
    "ok": 0,
    "compile_error": 1,  # a pass cannot map the model onto this chip (or another LeacError with status 1)
    "internal_error": 1,  # a bug in leac (the report has the traceback), or a worker that died twice on the job
    "usage_error": 2,
    "invalid_input": 3,  # an input file (chip, Program, data) cannot be used
    "does_not_fit": 4,
}
"""Each job's status and the exit status it stands for."""

CONNECT_TIMEOUT_S = 10
"""How long `--scheduler` waits for the Dask scheduler to answer."""


class Job(Protocol):
    """What `run_jobs` needs of a job: its place in the batch (names its Dask task) and how messages name it."""

    @property
    def index(self) -> int: ...

    @property
    def label(self) -> str: ...


J = TypeVar("J", bound=Job)
S = TypeVar("S")
R = TypeVar("R")


class Outcome:
    """What one job's result says of itself, read from its report (`status`, `exit_status`, `error`): shared by
    a compile batch's chips and a simulate batch's Programs."""

    report: dict[str, Any]

    @property
    def source(self) -> str:
        raise NotImplementedError  # the chip or Program file, as given

    @property
    def name(self) -> str:
        """The input file's name without its extension (a batch's outputs and rows are named by it)."""
        return Path(self.source).stem

    @property
    def status(self) -> str:
        return str(self.report["status"])

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def exit_status(self) -> int:
        return int(self.report["exit_status"])

    @property
    def error(self) -> str | None:
        error = self.report["error"]
        return None if error is None else str(error)


def files_in(folder: str | os.PathLike[str], pattern: str, option: str) -> list[Path]:
    """The files of `folder` matching `pattern`, sorted by name: a batch's inputs (`option` names the flag).

    Raises:
        UsageError: the folder does not exist or is not a folder.
    """
    path = Path(folder)
    if not path.is_dir():
        raise UsageError(f"{option} {path}: no such folder")
    return sorted((p for p in path.glob(pattern) if p.is_file()), key=lambda p: p.name)


def status_of(exc: LeacError) -> str:
    """The job status of a `LeacError` that ended a job."""
    if isinstance(exc, DoesNotFitError):
        return "does_not_fit"
    if isinstance(exc, InvalidInputError):
        return "invalid_input"
    if isinstance(exc, UsageError):
        return "usage_error"
    return "compile_error"


def batch_exit_status(statuses: Iterable[int]) -> int:
    """0 if every job succeeded, else the smallest non-zero exit status (the most serious failure)."""
    return min((s for s in statuses if s), default=0)


def crash_details(exc: BaseException) -> tuple[str, str | None]:
    """The error message and traceback (None: none that helps) of a job whose worker died or could not run it."""
    if isinstance(exc, WorkerDied):  # killed, not a Python error: no traceback
        return str(exc), None
    if isinstance(exc, WorkerError):
        return f"internal error: the worker failed: {exc}", exc.remote_traceback
    return f"internal error: the worker failed: {type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))


def check_workers(jobs: int | None, scheduler: str | None) -> None:
    """Refuse a `jobs` below 1, and `jobs` with `scheduler`.

    Raises:
        UsageError: either.
    """
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if jobs is not None and scheduler is not None:
        raise UsageError("--jobs sets local worker processes; with --scheduler the cluster's workers run the jobs")


def local_workers(jobs: int | None, count: int) -> int:
    """The worker processes used for `count` jobs: `jobs` (default: the CPU count), at most one per job."""
    return max(1, min(jobs or os.cpu_count() or 1, count))


def connect(address: str) -> Any:
    """A dask.distributed Client of the scheduler at `address`.

    Raises:
        UsageError: the `distributed` extra is missing, or no scheduler answers at `address`.
    """
    try:
        from distributed import Client
        from distributed.comm import resolve_address
    except ImportError:
        raise UsageError("--scheduler needs Dask's distributed scheduler: pip install 'lea-compiler[distributed]'") \
            from None
    try:
        resolve_address(address)  # a malformed address, before a Client that would linger on it
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"--scheduler {address}: cannot connect to a Dask scheduler ({exc})") from None


def run_jobs(work: Callable[[S, J], R], shared: S, jobs: Sequence[J], finish: Callable[[J, R], None],
             crashed: Callable[[J, BaseException], R], *, workers: int, client: Any = None,
             name: str = "job") -> None:
    """Run `work(shared, job)` for every job and call `finish(job, outcome)` here as each ends.

    `work` must be picklable (a module-level function, or a `functools.partial` of one).
    With `client` (from `connect`) the jobs run on its cluster, each as the task
    `leac-<batch id>-<name>-<job index>`; else on `workers` local processes (1: in
    this process, with one BLAS thread).
    """
    if client is not None:
        _run_dask(client, work, shared, jobs, finish, crashed, name)
    elif workers == 1:
        with threadpool_limits(1):
            for job in jobs:
                finish(job, work(shared, job))
    else:
        run_pool(workers, work, shared, jobs, finish, crashed, name)


def _run_dask(client: Any, work: Callable[[S, J], R], shared: S, jobs: Sequence[J],
              finish: Callable[[J, R], None], crashed: Callable[[J, BaseException], R], name: str) -> None:
    from distributed import as_completed as dask_as_completed

    batch = uuid.uuid4().hex[:12]
    [scattered] = client.scatter([shared], broadcast=True, hash=False)
    futures = {client.submit(work, scattered, job, key=f"leac-{batch}-{name}-{job.index}"): job for job in jobs}
    for future in dask_as_completed(futures, loop=client.loop):
        job = futures[future]
        try:
            outcome = future.result()
        except Exception as exc:  # the worker died (KilledWorker) or the task could not run there
            outcome = crashed(job, exc)
        finish(job, outcome)
