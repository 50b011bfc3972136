"""Static (bias and leakage) energy: the powered hardware's static power x the latency (one inference) and x the
period (pipelined), worked by hand; the trade of `adcs_per_array` (more ADCs: shorter latency, more static power);
the new periphery fields in chip and board files and their bad values."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler.backends.board import emit_board, read_board, validate_board
from lea_compiler.backends.cost import estimate_cost, static_power_uW
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery, load_chip
from lea_compiler.chip.forms import chip_to_text
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.schedule.plan import schedule_of
from tests.helpers import assert_bad_periphery_refused, make_model

PAPER_CHIP = "lea_compiler/data/paper_chip.json"
STATIC = {"p_static_array_uW": 10.0, "p_static_adc_uW": 100.0, "p_static_dac_uW": 1.0, "p_static_digital_uW": 5.0}


def _program(tmp_path, arrays: tuple[Array, ...], **periphery):
    """y = x @ [[1, -1], [0, 1]] at k = 1: a G+ and a G- region of 2 rows x 2 columns; t_dac 5 ns, t_mvm 100 ns,
    t_adc 10 ns, a 100 MHz clock, 2 digital lanes."""
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (np.float32, ["N", 2])},
                       ["y"], {"W": np.array([[1, -1], [0, 1]], np.float32)})
    onnx.save(model, tmp_path / "mm.onnx")
    chip = Chip(arrays=arrays, device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0),
                periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=16, t_dac_ns=5.0, digital_lanes=2,
                                    **periphery))
    return compile_model(tmp_path / "mm.onnx", chip, CompileOptions(k=1)).program


def test_static_energy_of_a_small_program_by_hand(tmp_path) -> None:
    """One 2 x 4 array holds both regions. Powered: that array (10 uW), its one ADC (100 uW), its 2 row DACs
    (2 x 1 uW) and the digital unit's 2 lanes (2 x 5 uW): 122 uW.

    Timeline: max |x| (2 ops, one clock of 2 lanes) 0-10; the G+ read 10-115 (DAC 5 + 100 ns), its 2 columns
    on 1 ADC 115-135; the G- read waits for the array, 115-220, converted 220-240; combine, scale (8 ops on 2
    lanes, 4 clocks) 240-280: latency 280 ns. The busiest resource is the array (2 x 105 = 210 ns a sample).
    Static energy: 122 uW x 280 ns = 34.16 pJ for one inference; pipelined 122 uW x 210 ns = 25.62 pJ."""
    program = _program(tmp_path, (Array(0, 2, 4),), adcs_per_array=1, **STATIC)
    cost = estimate_cost(program)
    assert cost.latency_ns == 280.0 and cost.period_ns == 210.0
    assert cost.static_power_uW == pytest.approx(122.0, rel=1e-12)
    assert cost.energy_breakdown_pJ["static"] == pytest.approx(34.16, rel=1e-12)
    assert cost.pipelined_static_pJ == pytest.approx(25.62, rel=1e-12)
    assert cost.energy_pJ_per_inference == pytest.approx(sum(cost.energy_breakdown_pJ.values()), rel=1e-12)
    assert all("static" not in layer for layer in cost.energy_by_layer_pJ.values())  # not split per layer
    report = simulate(program, [Dataset("d", np.array([[1, -1]], np.float32), np.array([0]))]).to_json()
    assert report["static_power_uW"] == pytest.approx(122.0, rel=1e-12)
    assert report["energy_breakdown_pJ"]["static"] == pytest.approx(34.16, rel=1e-12)
    assert report["pipelined_static_pJ"] == pytest.approx(25.62, rel=1e-12)


def test_only_the_arrays_the_program_uses_are_powered(tmp_path) -> None:
    """Two 2 x 4 arrays: the placement puts the regions on one array or on both. Powered: each used array with
    its ADC and its 2 row DACs (10 + 100 + 2 uW), plus the digital unit (10 uW); an unused array is off."""
    program = _program(tmp_path, (Array(0, 2, 4), Array(1, 2, 4)), **STATIC)
    used = len(schedule_of(program).arrays)
    assert used == len(program.arrays_used)
    assert static_power_uW(schedule_of(program), program.chip.periphery) == pytest.approx(112.0 * used + 10.0)
    cost = estimate_cost(program)
    assert cost.energy_breakdown_pJ["static"] == pytest.approx((112.0 * used + 10.0) * cost.latency_ns * 1e-3)


def test_more_adcs_shorten_the_latency_and_raise_the_static_power(tmp_path) -> None:
    """The model compiled for 1 and for 2 ADCs per array (the schedule's conversions name their ADCs). With 2,
    each read's 2 columns take one round (10 ns) instead of two (20 ns): latency 10 + 105 + 105 + 10 + 40 = 270 ns
    instead of 280. The extra ADC draws 100 uW more: 222 uW x 270 ns = 59.94 pJ against 122 uW x 280 ns = 34.16
    pJ. The conversions, and so the ADC conversion energy (4 x e_adc_pJ), are the same."""
    one = estimate_cost(_program(tmp_path, (Array(0, 2, 4),), adcs_per_array=1, **STATIC))
    two = estimate_cost(_program(tmp_path, (Array(0, 2, 4),), adcs_per_array=2, **STATIC))
    assert (one.latency_ns, two.latency_ns) == (280.0, 270.0)
    assert (one.static_power_uW, two.static_power_uW) == pytest.approx((122.0, 222.0))
    assert one.energy_breakdown_pJ["static"] == pytest.approx(34.16, rel=1e-12)
    assert two.energy_breakdown_pJ["static"] == pytest.approx(59.94, rel=1e-12)
    assert one.energy_breakdown_pJ["adc"] == two.energy_breakdown_pJ["adc"] == pytest.approx(4 * 2.0)


def test_the_default_periphery_has_no_static_power(tmp_path) -> None:
    program = _program(tmp_path, (Array(0, 2, 4),))
    cost = estimate_cost(program)
    assert cost.static_power_uW == 0.0 and cost.energy_breakdown_pJ["static"] == 0.0 and cost.pipelined_static_pJ == 0.0


def test_the_static_fields_are_written_only_when_not_default_in_chip_and_board_files(tmp_path) -> None:
    paper = load_chip(PAPER_CHIP)
    with open(PAPER_CHIP) as f:
        text = f.read()
    assert chip_to_text(paper) == text and "p_static" not in text
    changed = Periphery(**{**paper.periphery.__dict__, "p_static_adc_uW": 2000.0})
    written = json.loads(chip_to_text(dataclasses.replace(paper, periphery=changed)))["periphery"]
    assert written["p_static_adc_uW"] == 2000.0 and not {k for k in STATIC if k != "p_static_adc_uW"} & set(written)
    emit_board(_program(tmp_path, (Array(0, 2, 4),)), tmp_path / "d.jsonl")
    header = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])
    assert not set(STATIC) & set(header["periphery"])  # a board file as before the keys
    emit_board(_program(tmp_path, (Array(0, 2, 4),), **STATIC), tmp_path / "c.jsonl")
    periphery = read_board(tmp_path / "c.jsonl").header.periphery
    assert {k: periphery[k] for k in STATIC} == STATIC
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    bad = json.loads(lines[0])
    bad["periphery"]["p_static_dac_uW"] = -1.0
    (tmp_path / "bad.jsonl").write_text("\n".join([json.dumps(bad), *lines[1:]]) + "\n")
    problems = validate_board(tmp_path / "bad.jsonl")
    assert any("periphery.p_static_dac_uW" in p and "negative" in p for p in problems), problems


@pytest.mark.parametrize(("key", "value", "message"), [
    ("p_static_adc_uW", -1, "periphery.p_static_adc_uW: -1 is negative"),
    ("p_static_dac_uW", "3", 'periphery.p_static_dac_uW: "3" is not a number'),
    ("p_static_array_uW", 1e10, "periphery.p_static_array_uW: 1e+10 is outside the range leac accepts (0 to 1e+09 uW)"),
    ("p_static_digital_uW", None, "periphery.p_static_digital_uW: null is not a number"),
])
def test_a_bad_static_power_is_refused_and_nothing_is_written(tmp_path, capsys, key, value, message) -> None:
    assert_bad_periphery_refused(tmp_path, capsys, key, value, message)
    with pytest.raises(Exception, match="is negative"):
        Periphery(p_static_adc_uW=-1.0)
