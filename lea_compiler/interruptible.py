"""Long native calls (CP-SAT, onnxruntime) run in a worker thread so that Ctrl-C and SIGTERM still work.

Python runs signal handlers only in the main thread, between bytecodes: while
the main thread is inside a C++ call that does not return (CP-SAT's search,
onnxruntime's `run` of a long model), a SIGINT or the CLI's SIGTERM handler
waits for it. Both libraries release the GIL and can be asked to stop from
another thread, so the main thread runs the call in a worker and waits in
short joins; a signal's exception stops the call and is raised again once the
worker has returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

JOIN_SECONDS = 0.05
"""How often the waiting thread wakes to run signal handlers (and repeats `stop` after a signal)."""


def run_interruptibly(work: Callable[[], T], stop: Callable[[], None], name: str) -> T:
    """`work()` in a daemon thread named `name`; an exception in this thread (KeyboardInterrupt, the CLI's
    Terminated) calls `stop()` until the worker returns, then propagates. `work`'s own exception is raised
    here; `stop` must make `work` return soon and may be called before `work` has started (it is repeated)."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the calling thread below
            failure.append(exc)
        finally:
            done.set()

    # waits on an Event, not on Thread.join: a KeyboardInterrupt inside join(timeout) makes Python 3.11's
    # is_alive() report a running thread as stopped (bpo-45274's fix releases its lock), and the process would
    # then exit while the native call still runs (onnxruntime: "terminate called", SIGABRT)
    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while not done.wait(JOIN_SECONDS):
            pass
    except BaseException as interrupt:
        while not done.is_set():
            try:
                stop()
                done.wait(JOIN_SECONDS)
            except BaseException:  # a second signal: still wait for the call to stop, then raise the first
                continue
        raise interrupt
    if failure:
        raise failure[0]
    return outcome[0]
