"""Fuzzing every reader through the `leac` command line: corrupted and hostile ONNX models, chip files, data
files and Programs never give a traceback, a partial output or a temporary file left behind (issues 6 and 13).

The corruptions are in tests/fuzzing.py, the hostile inputs of issue 13 in
tests/fuzzing_hostile.py, the contract in tests/fuzzing_run.py; this is a
fast, derandomized sample of them (hypothesis draws each case's random
choices, so a failure shrinks to a small case). benchmarks/bench_fuzz.py runs
2,000 seeded cases per reader, each in a child process under memory and time limits.

Statuses allowed per reader for random corruptions (`fuzzing.ALLOWED`, docs/reports.md):

    onnx     0, 3, 4   (compile: a corruption can leave a valid model that does not fit)
    chip     0, 3, 4   (a valid chip with fewer usable devices may not fit)
    data     0, 3
    program  0, 3

The hostile classes run here in a forked child (`run_sandboxed`: 3 GiB of
address space, 20 s), so that a regression is a failed test, not a hung or
swapping test run. Not sampled here: `bomb` for data files (each case reads
1-1.5 GiB before refusing it: seconds, too slow for the suite).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing_run import (
    ALLOWED,
    CLASSES,
    READERS,
    Bases,
    Case,
    ContractViolation,
    check_case,
    classes_for,
    make_bases,
    run_case,
    run_sandboxed,
)

EXAMPLES = {"onnx": 60, "chip": 60, "data": 60, "program": 60}

HOSTILE_EXAMPLES = 6
HOSTILE_SAMPLED = {
    "special_input": READERS,
    "output_path": READERS,
    "size_lie": READERS,
    "bomb": ("program",),
}
"""Which hostile classes run for which readers here (see the module docstring for those left out)."""


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    return make_bases(tmp_path_factory.mktemp("fuzz-bases"))


def _fuzz_test(reader: str):  # noqa: ANN202 - a hypothesis test per reader
    @settings(max_examples=EXAMPLES[reader], derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(rnd=st.randoms(use_true_random=False))
    def test(bases: Bases, tmp_path_factory: pytest.TempPathFactory, rnd: random.Random) -> None:
        outcome = run_case(reader, bases, Path(tmp_path_factory.getbasetemp()) / f"fuzz-{reader}", rnd)
        assert outcome.status in ALLOWED[reader]

    test.__name__ = f"test_corrupted_{reader}_files_are_refused_cleanly"
    test.__doc__ = f"Random corruptions of {reader} files: status in {sorted(ALLOWED[reader])}, no traceback, " \
                   "a message on failure, a complete output on success, no partial or temporary file."
    return test


test_corrupted_onnx_files_are_refused_cleanly = _fuzz_test("onnx")
test_corrupted_chip_files_are_refused_cleanly = _fuzz_test("chip")
test_corrupted_data_files_are_refused_cleanly = _fuzz_test("data")
test_corrupted_program_files_are_refused_cleanly = _fuzz_test("program")


@pytest.mark.parametrize("klass, reader", [(k, r) for k, readers in HOSTILE_SAMPLED.items() for r in readers])
def test_hostile_inputs_and_outputs_are_refused_cleanly(klass: str, reader: str, bases: Bases,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 13's classes: special files as inputs, hostile -o paths, declared-size lies; each case in a
    child with 3 GiB of address space and 20 s, its folder unchanged on failure, special files kept."""
    @settings(max_examples=HOSTILE_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(rnd=st.randoms(use_true_random=False))
    def check(rnd: random.Random) -> None:
        run_case(reader, bases, Path(tmp_path_factory.getbasetemp()) / f"hostile-{reader}", rnd, (klass,),
                 sandboxed=True)

    check()


def _case(folder: Path) -> Case:
    return Case("data", "bomb", "mlp", "test", "simulate", ["simulate"], folder, frozenset({0, 3}), None)


def _sleep(argv: list[str]) -> int:
    time.sleep(60)
    return 0


def _hog(argv: list[str]) -> int:
    try:
        bytearray(8 * 2**30)  # past the 3 GiB address-space limit: refused at once, nothing touched
    except MemoryError:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def test_the_sandbox_kills_a_case_past_its_time_limit(tmp_path: Path) -> None:
    start = time.perf_counter()
    ran = run_sandboxed(_case(tmp_path), 0.5, 3 * 2**30, tmp_path, target=_sleep)
    assert time.perf_counter() - start < 10 and ran.status is None and "timed out" in (ran.died or "")
    with pytest.raises(ContractViolation, match="timed out"):
        check_case(_case(tmp_path), ran, {}, {})


def test_the_sandbox_bounds_memory_and_a_memory_error_is_a_violation(tmp_path: Path) -> None:
    ran = run_sandboxed(_case(tmp_path), 20, 3 * 2**30, tmp_path, target=_hog)
    assert ran.status == 1 and "MemoryError" in ran.stderr
    with pytest.raises(ContractViolation, match="MemoryError"):
        check_case(_case(tmp_path), ran, {}, {})


def test_every_reader_and_class_is_fuzzed() -> None:
    assert set(READERS) == set(ALLOWED) == set(EXAMPLES)
    assert all(f"test_corrupted_{reader}_files_are_refused_cleanly" in globals() for reader in READERS)
    assert set(HOSTILE_SAMPLED) < set(CLASSES)
    assert all(klass in classes_for(reader) for klass, readers in HOSTILE_SAMPLED.items() for reader in readers)
