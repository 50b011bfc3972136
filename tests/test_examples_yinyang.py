"""The multi-task Yin-Yang example (examples/yinyang.py) and the files it bundles."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tests.helpers import assert_same_arrays, assert_same_graph, load_example, same_bytes_twice

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "yinyang.py"
DATA = ROOT / "lea_compiler" / "data"


@pytest.fixture(scope="module")
def yy() -> ModuleType:
    """examples/yinyang.py imported by path (examples/ is not a package)."""
    return load_example(SCRIPT, "examples_yinyang")


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((DATA / "yinyang_mlp.json").read_text())


def test_generator_is_deterministic_per_seed(yy: ModuleType) -> None:
    x1, y1 = yy.make_yinyang(300, 7, 1)
    x2, y2 = yy.make_yinyang(300, 7, 1)
    x3, _ = yy.make_yinyang(300, 8, 1)
    assert x1.dtype == np.float32 and x1.shape == (300, 4)
    assert y1.dtype == np.int64 and y1.shape == (300,)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_classes_balanced_and_points_in_circle(yy: ModuleType) -> None:
    n = 3000
    x, y = yy.make_yinyang(n, 0, 1)
    counts = np.bincount(y, minlength=3)
    assert counts.sum() == n and len(counts) == 3
    # goal classes are uniform draws: sd = sqrt(n * 1/3 * 2/3) ~ 26; allow ~6 sd
    assert np.all(np.abs(counts - n / 3) < 0.05 * n), counts
    r2 = (x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.5) ** 2
    assert np.all(r2 <= 0.25 + 1e-6)
    assert x[:, :2].min() >= 0.0 and x[:, :2].max() <= 1.0
    np.testing.assert_allclose(x[:, 2:], 1.0 - x[:, :2], atol=1e-6)


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ((0.25, 0.5), 2),  # centre of the left dot
        ((0.75, 0.5), 2),  # centre of the right dot
        ((0.30, 0.55), 2),  # left dot: distance 0.071 < 0.1
        ((0.75, 0.42), 2),  # right dot: distance 0.08 < 0.1
        ((0.25, 0.65), 1),  # ring round the left dot: 0.1 < d_left = 0.15 <= 0.25
        ((0.10, 0.45), 1),  # left lobe below the midline: d_left = 0.158
        ((0.50, 0.90), 1),  # top, far from the right lobe: d_right = 0.47 > 0.25
        ((0.75, 0.65), 0),  # ring round the right dot: d_right = 0.15 <= 0.25, top half
        ((0.95, 0.45), 0),  # right lobe below the midline: d_right = 0.206
        ((0.50, 0.10), 0),  # bottom, outside both lobes
    ],
)
def test_labels_follow_yinyang_geometry(
    yy: ModuleType, point: tuple[float, float], expected: int
) -> None:
    assert yy.yinyang_class(*point) == expected


def test_generated_labels_match_geometry(yy: ModuleType) -> None:
    x, y = yy.make_yinyang(2000, 3, 1)
    px, py = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
    d_left = np.hypot(px - 0.25, py - 0.5)
    d_right = np.hypot(px - 0.75, py - 0.5)
    # is_yin: the left lobe (disc of radius 0.25) or the top half outside the right lobe
    expected = np.where((d_left <= 0.25) | ((py > 0.5) & (d_right > 0.25)), 1, 0)
    expected = np.where((d_left < 0.1) | (d_right < 0.1), 2, expected)
    # float32 rounding can move a point across a boundary; such points are rare
    near = (
        np.minimum.reduce(
            [
                np.abs(d_left - 0.25),
                np.abs(d_right - 0.25),
                np.abs(d_left - 0.1),
                np.abs(d_right - 0.1),
                np.abs(py - 0.5),
            ]
        )
        < 1e-6
    )
    assert np.array_equal(y[~near], expected[~near])


def test_task2_features_are_shifted_task1_features(yy: ModuleType) -> None:
    x1, y1 = yy.make_yinyang(500, 11, 1)
    x2, y2 = yy.make_yinyang(500, 11, 2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(x2[:, :2], x1[:, :2] + 1.0, atol=1e-6)
    np.testing.assert_array_equal(x2[:, 2:], x1[:, 2:])
    with pytest.raises(ValueError, match="task"):
        yy.make_yinyang(10, 0, 3)


def test_bundled_test_sets_come_from_the_generator(yy: ModuleType, meta: dict) -> None:
    for task in (1, 2):
        with np.load(DATA / f"yinyang_task{task}_test.npz") as f:
            assert sorted(f.files) == ["x", "y"]
            x, y = f["x"], f["y"]
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (meta["data"]["n_test_per_task"], 4)
        ex, ey = yy.make_yinyang(len(y), meta["data"]["test_seed"], task)
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def _gemm_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.name: inits[n.input[1]] for n in model.graph.node if n.op_type == "Gemm"}


def test_bundled_model_structure_and_ternary_weights(meta: dict) -> None:
    model = onnx.load(DATA / "yinyang_mlp.onnx")
    onnx.checker.check_model(model)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert [(n.name, n.op_type) for n in model.graph.node] == [
        ("fc1", "Gemm"),
        ("tanh1", "Tanh"),
        ("fc2", "Gemm"),
        ("tanh2", "Tanh"),
        ("fc3", "Gemm"),
    ]
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert "seed" in model.doc_string
    shapes = {"fc1": (12, 4), "fc2": (6, 12), "fc3": (3, 6)}
    for name, w in _gemm_weights(model).items():
        assert w.dtype == np.float32 and w.shape == shapes[name]
        values = np.unique(w)
        assert len(values) <= 3, (name, values)
        scale = np.abs(values).max()
        assert scale > 0
        assert set(values.tolist()) <= {-scale, 0.0, scale}, (name, values)
        assert scale == np.float32(meta["ternary_scales"][name])


@pytest.mark.parametrize(
    ("kind", "fname"), [("ternary", "yinyang_mlp.onnx"), ("float", "yinyang_mlp_float.onnx")]
)
def test_bundled_model_accuracy_matches_json(meta: dict, kind: str, fname: str) -> None:
    sess = ort.InferenceSession(str(DATA / fname), providers=["CPUExecutionProvider"])
    recorded = meta["accuracy"][kind]
    accs = []
    for task in (1, 2):
        with np.load(DATA / f"yinyang_task{task}_test.npz") as f:
            x, y = f["x"], f["y"]
        (logits,) = sess.run(["logits"], {"x": x})
        assert logits.shape == (len(y), 3)
        acc = float(np.mean(np.argmax(logits, axis=1) == y))
        # up to one point of 1000 (onnxruntime's float32 kernels differ between CPUs: a near-tie may flip)
        assert acc == pytest.approx(recorded[f"task{task}"], abs=1e-3 + 1e-6)
        accs.append(acc)
    assert np.mean(accs) == pytest.approx(recorded["mean"], abs=1e-3 + 1e-6)


BUNDLED = ["yinyang_mlp.json", "yinyang_mlp.onnx", "yinyang_mlp_float.onnx", "yinyang_task1_test.npz",
           "yinyang_task2_test.npz"]


RETRAINED_TOLERANCE = 0.06
"""How far a retrained model's mean accuracy may fall from the bundled one's: retraining on another CPU or
BLAS is in effect another seed, and the ternary mean over seeds 1-3 is 64.1 / 69.9 / 65.4% against 68.4%
for seed 0 (examples/README.md)."""


def test_script_is_deterministic_on_one_machine(yy: ModuleType, tmp_path: Path) -> None:
    def run(out: Path) -> None:
        yy.main(["--seed", "5", "--epochs", "2", "--n-train", "500", "--out", str(out)])

    assert same_bytes_twice(run, tmp_path) == BUNDLED


def test_script_regenerates_files_like_the_bundled_ones(yy: ModuleType, meta: dict, tmp_path: Path) -> None:
    yy.main(["--seed", str(meta["seed"]), "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == BUNDLED
    for name in BUNDLED:
        if name.endswith(".npz"):  # the generator's points: no training arithmetic, so equal on every machine
            assert_same_arrays(tmp_path / name, DATA / name)
        elif name.endswith(".onnx"):
            assert_same_graph(tmp_path / name, DATA / name)
    again = json.loads((tmp_path / "yinyang_mlp.json").read_text())
    for key in ("architecture", "data", "description", "files", "seed", "training"):
        assert again[key] == meta[key], key
    for kind in ("float", "ternary"):
        accuracy, recorded = again["accuracy"][kind]["mean"], meta["accuracy"][kind]["mean"]
        assert accuracy >= recorded - RETRAINED_TOLERANCE, (kind, accuracy, recorded)


def test_bundled_paper_chip_is_the_seed_0_synthetic_chip(tmp_path: Path) -> None:
    from lea_compiler.chip import save_chip, synth_chip

    name = json.loads((DATA / "paper_chip.json").read_text())["name"]
    save_chip(synth_chip(seed=0, name=name), tmp_path / "chip.json")
    assert (tmp_path / "chip.json").read_bytes() == (DATA / "paper_chip.json").read_bytes()


def test_bundled_example_compiles_simulates_and_four_copies_beat_one() -> None:
    """README's main job in Python, at k = 1 and k = 4 over ten noise seeds.

    Ten, not three: the gain of four copies varies from seed to seed (standard deviation about 3 points on this
    chip), so three seeds' mean can fall under the 3-point margin by the draw alone (seeds 0-2 gave +2.8 points
    after the write-noise draw changed in 1400c4d, seeds 0-9 +4.7 and 0-19 +5.1)."""
    from lea_compiler.backends.sim import load_data, simulate
    from lea_compiler.chip import load_chip
    from lea_compiler.compiler import compile_model
    from lea_compiler.pipeline import CompileOptions

    chip = load_chip(DATA / "paper_chip.json")
    accuracy = {}
    for k in (1, 4):
        program = compile_model(DATA / "yinyang_mlp.onnx", chip, CompileOptions(k=k)).program
        assert program.devices_used == 2 * k * (4 * 12 + 12 * 6 + 6 * 3)
        data = [load_data(DATA / f"yinyang_task{t}_test.npz", program.graph) for t in (1, 2)]
        reports = [simulate(program, data, seed=seed) for seed in range(10)]
        assert all(abs(r.software_accuracy - 0.684) <= 1e-3 for r in reports)  # a near-tie may flip on another CPU
        accuracy[k] = float(np.mean([r.accuracy for r in reports]))
    assert accuracy[4] > accuracy[1] + 0.03
