"""ONNX's conformance tests through leac's front end and interpreter (tests/conformance.py says which and how).

One test per case, so a failure names the case: a pass and a clear refusal are fine, a wrong result or a
crash fails. docs/conformance.md must be the table tests/conformance.py generates now.
"""

from __future__ import annotations

import re

import onnx
import pytest

from tests import conformance

CASES = conformance.all_cases()


def test_the_cases_are_found() -> None:
    # every suite contributes, and the ops leac claims have ONNX node tests to run
    suites = {case.suite for case in CASES}
    assert suites == {"node", *conformance.MODEL_SUITES}
    assert len(CASES) > 300


@pytest.mark.parametrize("case_id", [case.id for case in CASES])
def test_case_is_right_or_refused(case_id: str) -> None:
    result = conformance.outcome(case_id)
    assert result.status in ("pass", "refused"), f"{case_id}: {result.status}: {result.detail}"
    if result.status == "refused":
        assert result.detail, "a refusal says why"


def test_a_wrong_result_is_caught() -> None:
    # the harness itself: a case whose expected output is changed must come out wrong, not pass
    case = next(c for c in CASES if c.id == "node/test_relu")
    model, sets = case.load()
    inputs, outputs = sets[0]
    broken = conformance.Case(case.suite, case.name, case.ops, lambda: (model, [(inputs, [outputs[0] + 1])]),
                              case.rtol, case.atol)
    assert conformance.run_case(broken).status == "wrong"


def test_docs_table_is_up_to_date() -> None:
    text = conformance.DOCS.read_text(encoding="utf-8")
    made_with = re.search(r"^onnx (\S+):", text, re.MULTILINE)
    assert made_with, "docs/conformance.md names the onnx version it was made with"
    if made_with.group(1) != onnx.__version__:
        pytest.skip(f"docs/conformance.md was made with onnx {made_with.group(1)}, {onnx.__version__} is installed")
    assert text == conformance.docs_text(conformance.all_outcomes()), (
        "docs/conformance.md is out of date: run PYTHONPATH=$PWD python -m tests.conformance --write-docs")


def test_cli_docs_list_every_supported_op() -> None:
    # docs/cli.md's "Supported ops:" sentence names exactly the ops leac claims (notes in parentheses aside)
    text = " ".join((conformance.DOCS.parent / "cli.md").read_text(encoding="utf-8").split())
    start = text.index("Supported ops:") + len("Supported ops:")
    listed = text[start:text.index("ArrayFeatureExtractor.", start) + len("ArrayFeatureExtractor")]
    listed = re.sub(r"\([^)]*\)", "", listed).replace(" and ai.onnx.ml ", " ai.onnx.ml.")
    names = {name.strip() for name in listed.split(",")}
    assert names == set(conformance.claimed_ops())
