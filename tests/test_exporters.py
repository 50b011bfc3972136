"""Models exactly as PyTorch and skl2onnx write them import and run like onnxruntime.

The files come from tests/fixtures/exporters/make_models.py (see its README);
tests need neither torch nor scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lea_compiler import interpreter
from lea_compiler.analysis import crossbar_layers
from lea_compiler.onnx_frontend import load_model
from lea_compiler.reference import run_onnxruntime
from tests.helpers import ATOL, RTOL

FIXTURES = Path(__file__).parent / "fixtures" / "exporters"
MODELS = sorted(p for p in FIXTURES.rglob("*.onnx"))


def test_fixtures_are_present() -> None:
    names = {p.relative_to(FIXTURES).as_posix() for p in MODELS}
    assert {"torch_mlp.onnx", "torch_cnn_nofold.onnx", "sklearn_mlp.onnx", "dynamo/torch_cnn.onnx"} <= names


@pytest.mark.parametrize("path", MODELS, ids=[p.relative_to(FIXTURES).as_posix() for p in MODELS])
def test_exported_model_matches_onnxruntime(path: Path) -> None:
    graph = load_model(path)
    with np.load(path.with_suffix(".inputs.npz")) as data:
        feeds = dict(data)
    expected = run_onnxruntime(path, feeds)
    got = interpreter.run(graph, feeds)
    assert list(got) == list(expected)
    for name, want in expected.items():
        assert got[name].shape == want.shape
        if want.dtype == object:
            assert got[name].tolist() == want.tolist()
        else:
            np.testing.assert_allclose(got[name], want, rtol=RTOL, atol=ATOL)
    with np.load(path.with_suffix(".expected.npz")) as saved:  # what the exporter's runtime gave then
        for name in saved.files:
            if saved[name].dtype.kind == "U":
                assert got[name].astype(str).tolist() == saved[name].tolist()
            else:
                np.testing.assert_allclose(got[name], saved[name], rtol=RTOL, atol=ATOL)


def test_batchnorm_survives_import_when_not_folded() -> None:
    graph = load_model(FIXTURES / "torch_cnn_nofold.onnx")
    assert len(graph.nodes_of("BatchNormalization")) == 2


@pytest.mark.parametrize(
    "name, layers",
    [
        ("torch_mlp.onnx", [(5, 12), (13, 6), (7, 3)]),
        ("sklearn_mlp.onnx", [(5, 12), (13, 6), (7, 3)]),  # MatMul + Add: the bias joins in canonicalize
        ("torch_cnn.onnx", [(10, 4), (37, 8), (9, 10)]),
    ],
)
def test_crossbar_layers_of_exported_models(name: str, layers: list[tuple[int, int]]) -> None:
    found = [(layer.matrix_rows(bias_row=True), layer.cols) for layer in crossbar_layers(load_model(FIXTURES / name))]
    assert found == layers
