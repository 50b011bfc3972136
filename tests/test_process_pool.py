"""A batch's local workers: each job's outcome or its own failure, a dead worker costs only its job (run once more
alone), one BLAS thread per worker, and workers that die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lea_compiler.process_pool import WorkerDied, WorkerError, how_it_ended
from lea_compiler.workers import crash_details, run_jobs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX processes")


@dataclass(frozen=True)
class Job:
    index: int

    @property
    def label(self) -> str:
        return f"job {self.index}"


def _work(folder: Path, job: Job) -> Any:
    """Job 2 raises, 3 returns what does not pickle, 4 is SIGKILLed, 5 exits; the others return their index."""
    (folder / f"{job.index}-{os.getpid()}-{time.monotonic_ns()}").touch()  # one file per attempt
    if job.index == 2:
        raise ValueError("kaboom")
    if job.index == 3:
        return lambda: None
    if job.index == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    if job.index == 5:
        os._exit(3)
    return job.index


def _run(work: Callable[[Any, Job], Any], shared: Any, count: int, workers: int) -> dict[int, Any]:
    outcomes: dict[int, Any] = {}

    def finish(job: Job, outcome: Any) -> None:
        assert job.index not in outcomes
        outcomes[job.index] = outcome

    run_jobs(work, shared, [Job(i) for i in range(count)], finish, lambda job, exc: exc, workers=workers)
    return outcomes


def test_each_job_gets_its_outcome_or_its_own_failure(tmp_path, caplog) -> None:
    outcomes = _run(_work, tmp_path, 8, workers=2)
    assert {i: outcomes[i] for i in (0, 1, 6, 7)} == {0: 0, 1: 1, 6: 6, 7: 7}
    assert isinstance(outcomes[2], WorkerError) and str(outcomes[2]) == "ValueError: kaboom"
    assert "Traceback" in outcomes[2].remote_traceback and "kaboom" in outcomes[2].remote_traceback
    assert isinstance(outcomes[3], WorkerError) and "pickle" in str(outcomes[3])
    assert isinstance(outcomes[4], WorkerDied) and outcomes[4].exitcode == -signal.SIGKILL
    assert str(outcomes[4]) == ("the worker process died (killed by signal 9, SIGKILL: e.g. out of memory) while "
                                "running this job, then again when the job ran alone")
    assert isinstance(outcomes[5], WorkerDied) and "exited with status 3 without an outcome" in str(outcomes[5])
    attempts = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert attempts == ["0", "1", "2", "3", "4", "4", "5", "5", "6", "7"]  # only a dead worker's job runs again
    assert "the worker process running job 4 died (killed by signal 9" in caplog.text
    message, trace = crash_details(outcomes[4])
    assert message == str(outcomes[4]) and trace is None  # killed: no Python traceback to show
    message, trace = crash_details(outcomes[2])
    assert message == "internal error: the worker failed: ValueError: kaboom" and trace and "kaboom" in trace


def _kill_first_attempt(folder: Path, job: Job) -> Any:
    """Every job's first worker is killed; the job runs again alone (no other job's file is open meanwhile)."""
    running = folder / f"running-{job.index}"
    if (folder / f"killed-{job.index}").exists():
        others = [p.name for p in folder.glob("running-*")]
        return job.index * 10, others
    running.touch()
    (folder / f"killed-{job.index}").touch()
    time.sleep(0.2)  # long enough for the other worker to start its job
    running.unlink()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_job_whose_worker_died_runs_again_alone(tmp_path) -> None:
    outcomes = _run(_kill_first_attempt, tmp_path, 4, workers=2)
    assert outcomes == {i: (i * 10, []) for i in range(4)}


def test_how_a_worker_ended() -> None:
    assert how_it_ended(-9) == "killed by signal 9, SIGKILL: e.g. out of memory"
    assert how_it_ended(-15) == "killed by signal 15, SIGTERM"
    assert how_it_ended(0) == "exited with status 0 without an outcome"


def _square(shared: Any, job: Job) -> int:
    return job.index ** 2


START = """
import multiprocessing, sys
multiprocessing.set_start_method(sys.argv[1])
from tests.test_process_pool import _run, _square
print(sorted(_run(_square, None, 4, workers=2).items()))
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods(method) -> None:
    """Workers that are not forked by the batch's process (the default from Python 3.14 is forkserver, whose
    server is the workers' parent) run their jobs too, and do not take their parent for dead."""
    done = subprocess.run([sys.executable, "-c", START, method], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[(0, 0), (1, 1), (2, 4), (3, 9)]", done.stderr


def _blas_threads(shared: Any, job: Job) -> tuple[list[int], str | None]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info()], os.environ.get("OMP_NUM_THREADS")


def test_pool_workers_use_one_blas_thread() -> None:
    import numpy  # noqa: F401  (loaded before the workers start, as in leac: forked workers inherit its BLAS)

    for threads, omp in _run(_blas_threads, None, 2, workers=2).values():
        assert omp == "1" and threads and set(threads) == {1}


ORPHANS = """
import multiprocessing, os, sys, time
from dataclasses import dataclass
from pathlib import Path

multiprocessing.set_start_method("fork")
from lea_compiler.workers import run_jobs

folder, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "watchdog":  # the portable fallback alone
    import lea_compiler.process_pool
    lea_compiler.process_pool._set_death_signal = lambda: None
if mode == "sigterm":  # as the CLI does: SIGTERM raises in the main thread
    import signal

    def terminated(number, frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminated)


@dataclass(frozen=True)
class Job:
    index: int


def work(shared, job):
    (folder / str(os.getpid())).touch()
    time.sleep(120)


run_jobs(work, None, [Job(i) for i in range(4)], print, print, workers=2)
"""
"""A batch of two workers whose jobs sleep, each worker writing its pid to a file named by it."""


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("mode", ["death-signal", "watchdog", "sigterm"])
def test_workers_die_with_their_parent(tmp_path, mode) -> None:
    """SIGKILLed, the parent leaves no orphans (at once on Linux, within the watchdog's interval elsewhere);
    SIGTERMed, it kills its workers rather than wait for their jobs (which sleep for 2 minutes here)."""
    if mode == "death-signal" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    pids: list[int] = []
    parent = subprocess.Popen([sys.executable, "-c", ORPHANS, str(tmp_path), mode], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _until(lambda: len(list(tmp_path.iterdir())) == 2 or parent.poll() is not None, 30)
        assert parent.poll() is None, parent.communicate()[1]
        pids = [int(p.name) for p in tmp_path.iterdir()]
        assert all(map(_alive, pids))
        if mode == "sigterm":
            parent.terminate()
            assert parent.wait(10) == 143
        else:
            parent.kill()  # SIGKILL: no cleanup of its own
            parent.wait()
        assert _until(lambda: not any(map(_alive, pids)), 5), f"workers {pids} outlived their parent"
    finally:
        parent.kill()
        parent.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
