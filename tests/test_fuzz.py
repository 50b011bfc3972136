"""Fuzzing every reader through the `leac` command line: corrupted ONNX models, chip files, data files and
Programs never give a traceback, a partial output or a temporary file left behind (issue 6).

The corruptions and the contract are in tests/fuzzing.py; this is a fast,
derandomized sample of them (hypothesis draws each case's random choices, so a
failure shrinks to a small corruption). benchmarks/bench_fuzz.py runs 2,000
seeded cases per reader and counts the outcomes.

Statuses allowed per reader (`fuzzing.ALLOWED`, docs/reports.md):

    onnx     0, 3, 4   (compile: a corruption can leave a valid model that does not fit)
    chip     0, 3, 4   (a valid chip with fewer usable devices may not fit)
    data     0, 3
    program  0, 3
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import ALLOWED, READERS, Bases, make_bases, run_case

EXAMPLES = {"onnx": 60, "chip": 60, "data": 60, "program": 60}


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


def test_every_reader_is_fuzzed() -> None:
    assert set(READERS) == set(ALLOWED) == set(EXAMPLES)
    assert all(f"test_corrupted_{reader}_files_are_refused_cleanly" in globals() for reader in READERS)
