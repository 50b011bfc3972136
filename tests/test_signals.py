"""An interrupted `leac compile` (SIGINT, SIGTERM) exits 130 / 143 with one line and writes nothing;
so does a `leac simulate` interrupted while onnxruntime runs.

The compile runs as a real process (`python -m lea_compiler`, what the `leac`
console script runs) on a chip with 30% stuck devices, where the CP-SAT
placer needs several seconds. The signal is sent once the compile is under way
(its first log line), or once CP-SAT is solving: CP-SAT runs in a worker
thread so that the signal is not swallowed by its own SIGINT handler nor held
back until its time limit.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest

from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from tests.helpers import loop_model, mlp_model, swap_embedded_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("signal-inputs")
    model, chip = folder / "mlp.onnx", folder / "chip.json"
    onnx.save(mlp_model((8, 16, 4)), model)
    save_chip(synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.2, stuck_low=0.1, seed=1), chip)
    return model, chip


def _interrupt(inputs: tuple[Path, Path], out_dir: Path, sig: int, wait_for: str,
               delay: float) -> tuple[int, str, float]:
    """Start a compile, send `sig` `delay` s after a stderr line holding `wait_for`; (status, stderr, seconds)."""
    model, chip = inputs
    argv = [sys.executable, "-m", "lea_compiler", "-v", "compile", str(model), "--chip", str(chip), "-k", "4",
            "--block", "4x4", "--time-limit", "30", "-o", str(out_dir / "out.leac")]
    # SIGINT as a terminal would deliver it, even if this test runs with SIGINT ignored (a background job)
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if wait_for in line:
            break
    else:
        process.wait()
        pytest.fail(f"the compile ended (status {process.returncode}) before {wait_for!r}:\n{''.join(seen)}")
    time.sleep(delay)
    sent = time.monotonic()
    process.send_signal(sig)
    _, rest = process.communicate(timeout=60)
    return process.returncode, rest, time.monotonic() - sent


@pytest.mark.parametrize("sig, status, wait_for, delay, message", [
    # CP-SAT builds its model for about a second, then searches for several (more on a loaded machine)
    (signal.SIGINT, 130, "CP-SAT over", 1.5, "leac: interrupted (SIGINT)"),
    (signal.SIGTERM, 143, "CP-SAT over", 1.5, "leac: terminated (SIGTERM)"),
    (signal.SIGTERM, 143, "chip.json: chip:", 1.0, "leac: terminated (SIGTERM)"),  # in Python code
], ids=["sigint-in-cp-sat", "sigterm-in-cp-sat", "sigterm-early"])
def test_interrupted_compile_exits_cleanly_and_writes_nothing(inputs, tmp_path, sig, status, wait_for, delay,
                                                              message) -> None:
    code, stderr, seconds = _interrupt(inputs, tmp_path, sig, wait_for, delay)
    lines = [line for line in stderr.splitlines() if not line.startswith("leac: pass ")]
    assert code == status, stderr
    assert lines[-1] == message and "Traceback" not in stderr
    assert seconds < 10  # not held back until CP-SAT's 30 s limit
    assert list(tmp_path.iterdir()) == []  # neither the Program nor a temporary file


def test_main_restores_the_sigterm_handler(tmp_path) -> None:
    from lea_compiler.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main(["inspect", str(tmp_path / "missing.onnx")]) == 3
    assert signal.getsignal(signal.SIGTERM) is before


SIMULATE_WITHOUT_THE_FRONT_END = """
import sys
import lea_compiler.reference as reference
from lea_compiler.cli import main
from lea_compiler.reference import ort_session

def unchecked(model, source):  # what leac did before issue 13: hand the embedded model to onnxruntime as it is
    session = ort_session(model)
    print("onnxruntime starts", file=sys.stderr, flush=True)
    return session

reference.checked_session = unchecked  # the baseline takes it from there when it runs
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig, status, message", [
    (signal.SIGINT, 130, "leac: interrupted (SIGINT)"),
    (signal.SIGTERM, 143, "leac: terminated (SIGTERM)"),
], ids=["sigint", "sigterm"])
def test_signals_stop_a_long_onnxruntime_run(inputs, tmp_path, sig, status, message) -> None:
    """onnxruntime runs in a worker thread, stopped by its terminate flag: a signal during a run that would last
    for ever (a Program embedding a Loop of 2^62 iterations, with the front end's check patched out so that
    onnxruntime gets it) ends `leac simulate` at once with 130 / 143 (issue 13 item 4)."""
    import numpy as np

    model, chip = inputs
    program = tmp_path / "p.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-k", "1", "--placer", "greedy", "-o",
                 str(program)]) == 0
    crafted = swap_embedded_model(program, loop_model(width=8), tmp_path / "crafted.leac")
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((4, 8), np.float32), y=np.zeros(4, np.int64))
    process = subprocess.Popen([sys.executable, "-c", SIMULATE_WITHOUT_THE_FRONT_END, "simulate", str(crafted),
                                "--data", str(data)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stderr is not None
    try:
        first = process.stderr.readline()
        assert first == "onnxruntime starts\n", first + process.stderr.read()
        time.sleep(0.3)
        sent = time.monotonic()
        process.send_signal(sig)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:  # still in onnxruntime: the signal did not stop it
            process.kill()
            process.wait()
    assert process.returncode == status, rest
    assert rest.splitlines()[-1] == message and "Traceback" not in rest
    assert time.monotonic() - sent < 5
