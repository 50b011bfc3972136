"""A batch's local worker processes: a worker that dies costs only its own job, and workers die with their parent.

`concurrent.futures.ProcessPoolExecutor` gives neither. When one of its workers
dies (the OOM killer's SIGKILL) the executor is broken: every job not yet done
fails with `BrokenProcessPool`, and it cannot say which job the dead worker was
running. When its parent dies, the workers wait forever on their call queue
(each holds a copy of the queue's write end, so none sees it close). This pool
is small instead:

- Each worker has its own pipe and runs one job at a time, so the parent always
  knows which job a worker holds. It waits on every busy worker's pipe and
  process sentinel (`multiprocessing.connection.wait`): the outcome comes back
  on the pipe; a worker whose sentinel fires without one died running its job.
- A job whose worker died runs once more, when no other job is running (a
  worker killed for memory that other jobs were using then has the machine to
  itself). If that worker dies too, the job's outcome is `crashed(job,
  WorkerDied(...))` and the batch goes on. A job's outcome depends only on the
  shared data and the job, so a job run again gives exactly what a first run
  gives.
- A worker dies with its parent: on Linux by `prctl(PR_SET_PDEATHSIG, SIGKILL)`,
  and everywhere by a watchdog thread that ends the worker once its parent
  process id changes (checked every `WATCHDOG_INTERVAL_S`).
- Ctrl-C and SIGTERM are the parent's: workers ignore SIGINT (a terminal sends
  it to the whole process group), and a parent that stops on an exception kills
  its workers before raising it. Workers hold no output (the parent writes every
  file), so killing them loses only their unfinished jobs.

The workers start with the platform's default start method (fork on Linux up to
Python 3.13): the shared data and the job function reach them by fork, or
pickled once per worker otherwise.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                         "NUMEXPR_NUM_THREADS")
"""Set to 1 in every worker process (`init_worker`)."""

WATCHDOG_INTERVAL_S = 0.5
"""How often a worker's watchdog thread checks that its parent is alive: the longest an orphaned worker lingers
where `PR_SET_PDEATHSIG` is not available (not Linux). A check costs one `getppid` call."""

STOP_TIMEOUT_S = 5.0
"""How long a worker has to exit once the batch is over before it is killed (an idle worker exits at once)."""

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process receives when the thread that created it exits (<linux/prctl.h>)."""


class WorkerDied(Exception):
    """A job's worker process died while running it, twice: the second time with no other job running."""

    def __init__(self, exitcode: int | None, name: str = "job") -> None:
        self.exitcode = exitcode
        super().__init__(f"the worker process died ({how_it_ended(exitcode)}) while running this {name}, "
                         f"then again when the {name} ran alone")


class WorkerError(Exception):
    """A job's function raised in its worker, or the job's outcome could not be sent back (it does not pickle)."""

    def __init__(self, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


def how_it_ended(exitcode: int | None) -> str:
    """A worker process's end in words, from `Process.exitcode` (negative: the signal that killed it)."""
    if exitcode is None:
        return "its exit status is unknown"
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "an unknown signal"
        cause = ": e.g. out of memory" if number == getattr(signal, "SIGKILL", None) else ""
        return f"killed by signal {number}, {name}{cause}"
    return f"exited with status {exitcode} without an outcome"


# --------------------------------------------------------------------------
# The worker side


def init_worker(parent_pid: int | None) -> None:
    """Worker start: die with the parent, one BLAS thread, and leave Ctrl-C and SIGTERM to the parent."""
    die_with_parent(parent_pid)
    for name in BLAS_THREAD_VARIABLES:  # for libraries that start their threads later
        os.environ[name] = "1"
    threadpool_limits(1)  # the BLAS numpy already loaded (a forked worker inherits the parent's threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool on Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the handler a forked worker inherits from the CLI


def die_with_parent(parent_pid: int | None) -> None:
    """End this process when its parent dies: at once on Linux, else within `WATCHDOG_INTERVAL_S`.

    An orphaned worker would otherwise wait for jobs forever. `parent_pid` is the parent's process
    id as the parent saw it (None with the forkserver start method, whose server is the parent and
    exits with the batch's process), which catches a parent that died before this check.
    """
    _set_death_signal()
    if parent_pid is None:
        parent_pid = os.getppid()
    elif os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="leac-parent-watchdog", daemon=True).start()


def _set_death_signal() -> None:
    """Linux: SIGKILL this process when its parent dies (a no-op elsewhere, or if prctl is unavailable)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError) as exc:  # no libc symbols to call: the watchdog alone
        log.debug("prctl unavailable: %s", exc)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_INTERVAL_S)
    os._exit(1)  # reparented: the parent died


def _worker_main(conn: Connection, work: Callable[[Any, Any], Any], shared: Any, parent_pid: int | None) -> None:
    """A worker's life: run each job received until told to stop (None) or the pipe closes."""
    init_worker(parent_pid)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            conn.send(("outcome", work(shared, job)))  # pickled whole before a byte is sent
        except Exception as exc:  # a bug in `work`, or an outcome that does not pickle: that job's failure
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


# --------------------------------------------------------------------------
# The parent side


@dataclass
class _Worker:
    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection
    job: Any = None
    retry: bool = False  # the job is running for the second time


def run_pool(workers: int, work: Callable[[Any, Any], Any], shared: Any, jobs: Sequence[Any],
             finish: Callable[[Any, Any], None], crashed: Callable[[Any, BaseException], Any],
             name: str = "job") -> None:
    """Run `work(shared, job)` for every job on at most `workers` processes; `finish(job, outcome)` here as each ends.

    Jobs are picklable and have a `label` (how the log names them, e.g. their file); `name` says what
    a job is ("chip") in a dead worker's message.

    A job whose worker dies runs once more, alone; if it dies again, or `work` raises, or the
    outcome cannot be sent back, the job's outcome is `crashed(job, exc)` (`WorkerDied`,
    `WorkerError`). On an exception here (Ctrl-C, SIGTERM's, one raised by `finish`) the
    workers are killed and the exception propagates.
    """
    context = multiprocessing.get_context()
    parent_pid = None if context.get_start_method() == "forkserver" else os.getpid()
    first, again = deque(jobs), deque[Any]()
    idle: list[_Worker] = []
    busy: list[_Worker] = []

    def start() -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker_main, args=(theirs, work, shared, parent_pid),
                                  name="leac-worker", daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def give(job: Any, retry: bool) -> None:
        while idle and not idle[-1].process.is_alive():  # died between jobs (killed from outside): not its job's fault
            _stop([idle.pop()], kill=True)
        worker = idle.pop() if idle else start()
        worker.job, worker.retry = job, retry
        busy.append(worker)
        try:
            worker.conn.send(job)
        except OSError:  # the worker died already: its sentinel says so
            pass

    try:
        while first or again or busy:
            while first and len(busy) < workers:
                give(first.popleft(), retry=False)
            if again and not first and not busy:
                give(again.popleft(), retry=True)
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                busy.remove(worker)
                job, message = worker.job, _receive(worker)
                if message is None:  # died running the job
                    worker.process.join()
                    worker.conn.close()
                    exitcode = worker.process.exitcode
                    if worker.retry:
                        finish(job, crashed(job, WorkerDied(exitcode, name)))
                    else:
                        log.warning("the worker process running %s died (%s); it will run again alone", job.label,
                                    how_it_ended(exitcode))
                        again.append(job)
                    continue
                idle.append(worker)
                if message[0] == "outcome":
                    finish(job, message[1])
                else:
                    finish(job, crashed(job, WorkerError(message[1], message[2])))
    except BaseException:
        _stop([*busy, *idle], kill=True)
        raise
    _stop(idle, kill=False)


def _receive(worker: _Worker) -> tuple[Any, ...] | None:
    """A ready worker's message, or None if it died without sending one (whole)."""
    if not worker.conn.poll():
        return None
    try:
        message: tuple[Any, ...] = worker.conn.recv()
    except (EOFError, OSError):  # closed mid-message: killed while sending
        return None
    return message


def _stop(workers: Sequence[_Worker], *, kill: bool) -> None:
    """End the workers: ask idle ones to exit, or kill them; reap them all."""
    for worker in workers:
        try:
            if kill:
                worker.process.kill()
            else:
                worker.conn.send(None)
        except OSError:  # it died already
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
