"""Energy per inference: device reads from V^2 G t, digital ops at `e_digital_op_pJ`, per layer and component."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler.backends.cost import EventCounts, estimate_cost
from lea_compiler.backends.sim import CrossbarLayer, Dataset, simulate
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery, load_chip, save_chip
from lea_compiler.chip.forms import chip_to_text
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from tests.helpers import assert_bad_periphery_refused, make_model

F = np.float32
PAPER_CHIP = "lea_compiler/data/paper_chip.json"


def _chip(rows: int, cols: int, **periphery: float) -> Chip:
    """No defects, no noise, levels 100 and 250 uS, v_read 0.25 V, t_mvm 100 ns (the default), a 16-bit DAC."""
    return Chip(arrays=(Array(0, rows, cols),),
                device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0),
                periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=16, adcs_per_array=1, **periphery))


def _compile(tmp_path, nodes, weights, chip):
    model = make_model(nodes, {"x": (F, ["N", 2 if "W1" in weights else 1])}, ["y"], weights)
    onnx.save(model, tmp_path / "m.onnx")
    return compile_model(tmp_path / "m.onnx", chip, CompileOptions(k=1)).program


def test_a_one_device_read_dissipates_v_squared_g_t(tmp_path) -> None:
    """y = x @ [[1]]: one device under G+ (250 uS) and one under G- (100 uS), each read on its own region. With
    x = 3 (its own full scale), the DAC drives v_read = 0.25 V, so the G+ read dissipates 0.25^2 V^2 x 250 uS x
    100 ns = 1.5625 pJ and the G- read 0.25^2 x 100 x 100 ns = 0.625 pJ."""
    program = _compile(tmp_path, [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
                       {"W": np.array([[1.0]], F)}, _chip(1, 2))
    layer = CrossbarLayer.of(program, "mm", program.chip, np.random.default_rng(0))
    assert [g.tolist() for g in layer.executor.conductances] == [[[250.0]], [[100.0]]]
    counts = EventCounts()
    layer.forward(np.array([[3.0]], F), np.random.default_rng(0), counts)
    assert counts.device_read_pJ["mm"] == pytest.approx(0.25**2 * 250e-6 * 100e-9 * 1e12
                                                        + 0.25**2 * 100e-6 * 100e-9 * 1e12, rel=1e-12)
    assert counts.device_read_pJ["mm"] == pytest.approx(1.5625 + 0.625, rel=1e-12)
    # x = -1.5 on its own full scale drives -0.25 V: the same energy again (V^2), and x = 0 none
    layer.forward(np.array([[-1.5], [0.0]], F), np.random.default_rng(0), counts)
    assert counts.device_read_pJ["mm"] == pytest.approx(2 * 2.1875, rel=1e-12)


def test_two_layers_by_hand_per_layer_and_per_component(tmp_path) -> None:
    """x -> x @ W1 -> @ W2 with W1 = identity, W2 = [[1, -1], [0, 1]] on one 2 x 8 array, k = 1.

    Conductances: weight 1 -> G+ 250, G- 100; 0 -> 100, 100; -1 -> 100, 250 (uS). Row sums over G+ and G-:
    fc1 rows [250+100+100+100, 100+100+100+250] = [550, 550]; fc2 rows [250+100+100+250, 100+250+100+100] =
    [700, 550]. x = [1, 0.5]: fc1's DAC (own full scale 1) drives [0.25, 0.125] V, so fc1 dissipates
    (0.0625 x 550 + 0.015625 x 550) uS V^2 x 100 ns = 4.296875 pJ; its output ~[1, 0.5] drives fc2 alike:
    (0.0625 x 700 + 0.015625 x 550) x 0.1 = 5.234375 pJ.
    Per layer: 2 ADC conversions x 2 halves = 4 x e_adc 2 pJ = 8 pJ; 2 rows x 2 halves = 4 DAC conversions x
    0.5 pJ = 2 pJ; digital ops max|x| 2 + subtract 2 + sum 2 + divide 2 + scale 2 = 10 x e_digital_op 3 pJ.
    Without data the model charges every row at full scale: fc1 0.0625 x 1100 x 0.1 = 6.875 pJ, fc2
    0.0625 x 1250 x 0.1 = 7.8125 pJ."""
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="fc1"),
             helper.make_node("MatMul", ["h", "W2"], ["y"], name="fc2")]
    weights = {"W1": np.eye(2, dtype=F), "W2": np.array([[1, -1], [0, 1]], F)}
    program = _compile(tmp_path, nodes, weights, _chip(2, 8, e_digital_op_pJ=3.0))
    rest = {"adc": 8.0, "dac": 2.0, "digital": 30.0}
    bound = estimate_cost(program)
    assert bound.device_energy == "full scale"
    assert bound.energy_by_layer_pJ["fc1"] == pytest.approx({"device_reads": 6.875, **rest})
    assert bound.energy_by_layer_pJ["fc2"] == pytest.approx({"device_reads": 7.8125, **rest})
    report = simulate(program, [Dataset("d", np.array([[1.0, 0.5]], F), np.array([0]))])
    cost = report.cost
    assert cost.device_energy == "measured"
    assert cost.energy_by_layer_pJ["fc1"] == pytest.approx({"device_reads": 4.296875, **rest}, rel=1e-4)
    assert cost.energy_by_layer_pJ["fc2"] == pytest.approx({"device_reads": 5.234375, **rest}, rel=1e-3)
    assert cost.energy_breakdown_pJ == pytest.approx(
        {"device_reads": 4.296875 + 5.234375, "adc": 16.0, "dac": 4.0, "digital": 60.0,
         "static": 0.0}, rel=1e-3)
    assert cost.energy_pJ_per_inference == pytest.approx(sum(cost.energy_breakdown_pJ.values()), rel=1e-12)
    out = report.to_json()
    assert out["energy_by_layer_pJ"] == cost.energy_by_layer_pJ and out["device_energy"] == "measured"


def test_a_grouped_layer_charges_every_device_on_the_driven_rows(tmp_path) -> None:
    """A depthwise 1x1 conv, 4 groups of one input and one output each, on one 1 x 16 array: each polarity's
    region is 1 row x 4 columns (one per group), G+ [250, 100, 250, 250] and G- [100, 250, 100, 100] uS
    (weights 1, -1, 1, 1). A run is 4 vectors; vector g drives the row of both regions (its own full scale:
    +-0.25 V for any nonzero x), and every device on that row conducts, the other groups' columns included
    (they are only not converted): per vector 0.0625 V^2 x (850 + 550) uS x 100 ns = 8.75 pJ, so 35 pJ per run
    and 140 pJ for the 2 x 2 input's 4 runs, with data and without (full scale); brute force over the region
    columns below. Device reads: 4 vectors x 2 regions x 4 devices = 32 per run (not 8, the converted ones)."""
    weights = {"W": np.array([1.0, -1.0, 1.0, 1.0], F).reshape(4, 1, 1, 1)}
    model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], name="dw", group=4)],
                       {"x": (F, ["N", 4, 2, 2])}, ["y"], weights)
    onnx.save(model, tmp_path / "m.onnx")
    program = compile_model(tmp_path / "m.onnx", _chip(1, 16), CompileOptions(k=1)).program
    layer = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0))
    regions = [np.asarray(g) for g in layer.executor.conductances]
    assert [g.tolist() for g in regions] == [[[250.0, 100.0, 250.0, 250.0]], [[100.0, 250.0, 100.0, 100.0]]]
    # brute force: every vector of every run, every region it drives, every device of that region's row
    per_run = sum(0.25**2 * float(g[0, column]) * 100e-9 * 1e12 * 1e-6 for _ in range(4) for g in regions
                  for column in range(4))
    assert per_run == pytest.approx(35.0, rel=1e-12)
    bound = estimate_cost(program)
    assert bound.energy_by_layer_pJ["dw"]["device_reads"] == pytest.approx(4 * per_run, rel=1e-12)
    x = np.array([1.0, -2.0, 0.5, 3.0] * 4, F).reshape(1, 4, 2, 2)
    cost = simulate(program, [Dataset("d", x, np.array([0]))]).cost
    assert cost.energy_by_layer_pJ["dw"]["device_reads"] == pytest.approx(4 * per_run, rel=1e-4)
    counts = EventCounts()
    layer.forward(np.ones((4, 1), F), np.random.default_rng(0), counts)  # one run
    assert counts.device_reads == 32
    assert counts.device_read_pJ["dw"] == pytest.approx(per_run, rel=1e-4)


def test_the_digital_op_energy_is_written_only_when_not_the_default(tmp_path) -> None:
    paper = load_chip(PAPER_CHIP)
    assert paper.periphery.e_digital_op_pJ == 0.9
    with open(PAPER_CHIP) as f:
        assert chip_to_text(paper) == f.read()  # the bundled file, byte for byte, without the key
    changed = Chip(arrays=paper.arrays, defects=paper.defects, device=paper.device,
                   periphery=Periphery(**{**paper.periphery.__dict__, "e_digital_op_pJ": 3.7}), name=paper.name)
    save_chip(changed, tmp_path / "c.json")
    text = (tmp_path / "c.json").read_text()
    assert json.loads(text)["periphery"]["e_digital_op_pJ"] == 3.7
    again = load_chip(tmp_path / "c.json")
    assert again.periphery.e_digital_op_pJ == 3.7 and again.fingerprint() != paper.fingerprint()


@pytest.mark.parametrize(("value", "message"), [
    (-0.9, "periphery.e_digital_op_pJ: -0.9 is not positive"),
    ("0.9", 'periphery.e_digital_op_pJ: "0.9" is not a number'),
    (1e10, "periphery.e_digital_op_pJ: 1e+10 is outside the range leac accepts (1e-09 to 1e+09 pJ)"),
])
def test_a_bad_digital_op_energy_is_refused_and_nothing_is_written(tmp_path, capsys, value, message) -> None:
    assert_bad_periphery_refused(tmp_path, capsys, "e_digital_op_pJ", value, message)
