"""What the executor derives from a plan alone (`schedule.read_layout`, `LayerPlan.derived`): made once per plan
and shared by the noise draws of one schedule, read only, and never a draw's devices or noise: draws on one
schedule report what separate `simulate()` calls on schedules lowered afresh (or board files read afresh) report."""

from __future__ import annotations

import copy
import dataclasses
import gc
import weakref

import numpy as np
import onnx
import pytest

from lea_compiler import interpreter
from lea_compiler.backends.board import board_schedule, emit_board, read_board
from lea_compiler.backends.sim import CrossbarLayer, Dataset, simulate, simulate_trials, top1
from lea_compiler.chip import DeviceModel, synth_chip
from lea_compiler.chip.variability import NoiseModel
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.schedule.plan import schedule_of
from lea_compiler.schedule.read_layout import band_frame, lay_out, read_layout
from tests.helpers import mlp_model

F = np.float32


def _job(tmp_path, read_model: bool, options: CompileOptions):
    """A small MLP on a chip with stuck devices (and a conductance-dependent read-noise model), and its data."""
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(sizes=(30, 24, 5), seed=3), path)
    device = DeviceModel(read_noise_model=NoiseModel(polynomial=(0.26348, 1.965, -1.1731), g_ref_uS=25.0)
                         if read_model else None)
    chip = synth_chip(arrays=80, rows=16, cols=16, seed=2, stuck_high=0.05, stuck_low=0.03, device=device)
    program = compile_model(path, chip, options).program
    x = np.random.default_rng(0).uniform(-1, 1, size=(160, 30)).astype(F)
    return program, [Dataset("d", x, top1(interpreter.run(program.graph, {"x": x})))]


def _json(report) -> dict:
    """The report's keys, but for its wall time, and the analog time it does not print (the layers' `layer_cost`
    on the simulated periphery: a cost kept for another periphery shows only there)."""
    return {**report.to_json(), "seconds": 0, "analog_ns": (report.cost.analog_ns, report.counted.analog_ns)}


@pytest.mark.parametrize("read_model, source, options", [
    (False, "schedule", CompileOptions(k=2)),
    (True, "schedule", CompileOptions(k=2, reads=2)),
    (False, "board", CompileOptions(k=3)),
    (True, "board", CompileOptions(k=2)),
], ids=["uniform", "read-model-reads-2", "board", "board-read-model"])
def test_draws_on_one_schedule_report_what_fresh_schedules_report(tmp_path, read_model, source, options) -> None:
    """Draws of seeds 4, 5, 6 on one schedule (or one board file's), alternating the simulated chip's ADC (its
    periphery: the cost, the timeline and the bands' ADC steps are per periphery and bits), and `simulate_trials`:
    each report is, key by key, that of `simulate()` on a schedule lowered (a board file read) afresh for it."""
    program, data = _job(tmp_path, read_model, options)
    periphery = program.chip.periphery
    chips = [program.chip, dataclasses.replace(program.chip, periphery=dataclasses.replace(
        periphery, adc_bits=periphery.adc_bits - 3, t_adc_ns=3 * periphery.t_adc_ns))]
    emit_board(program, tmp_path / "p.board")

    def fresh():
        return board_schedule(read_board(tmp_path / "p.board")) if source == "board" else schedule_of(program)

    shared = fresh()
    assert all(not plan._derived for plan in shared.layers.values())
    reports = []
    for seed, chip in ((4, chips[0]), (5, chips[1]), (6, chips[0]), (4, chips[1])):
        got = simulate(program, data, seed=seed, chip=chip, **{source: shared})
        want = simulate(program, data, seed=seed, chip=chip, **{source: fresh()})
        assert _json(got) == _json(want), (seed, chip.periphery.adc_bits)
        reports.append(got)
    assert all(plan._derived for plan in shared.layers.values())  # the draws after the first used the plans' part
    timelines = [key for key in shared._derived if isinstance(key, tuple) and key[0] == "timeline"]
    assert len(timelines) == 2  # and the schedule's timeline, one per periphery
    assert len({str(_json(r)) for r in reports[:3]}) == 3  # the draws differ: noise is on
    trials = simulate_trials(program, data, trials=3, seed=4, **{source: shared})
    separate = [simulate(program, data, seed=s, **{source: fresh()}) for s in (4, 5, 6)]
    assert trials.trials is not None and list(trials.trials.accuracy) == [r.accuracy for r in separate]
    assert {**_json(trials), "trials": None} == {**_json(separate[0]), "trials": None}


def test_the_plans_part_is_made_once_read_only_and_the_devices_are_each_draws_own(tmp_path) -> None:
    """Two draws' layers on one plan share its layout, band frame and cost (the same objects, read only: a write
    raises), and hold their own bands' conductances; a plan copied with `dataclasses.replace` starts without any."""
    program, _ = _job(tmp_path, True, CompileOptions(k=2))
    schedule = schedule_of(program)
    plan = next(iter(schedule.layers.values()))
    one, two = (CrossbarLayer(plan, schedule, program.chip, np.random.default_rng(seed), ideal=False,
                              exact_read_noise=False) for seed in (1, 2))
    assert one.executor._layout is two.executor._layout is read_layout(plan)
    assert one.cost is two.cost
    bands_one, bands_two = one.executor._bands(), two.executor._bands()
    frame = band_frame(plan, one.executor.full_scale, one.executor.adc_bits)
    assert one.executor._frame is two.executor._frame is frame
    for a, b in zip(bands_one, bands_two, strict=True):
        assert a.weights.base is b.weights.base and not np.shares_memory(a.g, b.g)
        assert not np.array_equal(a.g, b.g)  # each draw's write noise
        with pytest.raises(ValueError, match="read-only"):
            a.weights[0, 0] = 1.0
    for array in (frame.inv_step, frame.reads, frame.row, *frame.column_terms, read_layout(plan).r0,
                  *read_layout(plan).averaged):
        with pytest.raises(ValueError, match="read-only"):
            array.reshape(-1)[:1] = 0
    made = lay_out(plan)  # made anew: equal to the kept one, field by field
    for field in dataclasses.fields(made):
        for a, b in zip(np.atleast_1d(getattr(made, field.name)), np.atleast_1d(getattr(read_layout(plan),
                                                                                          field.name)), strict=True):
            np.testing.assert_array_equal(a, b, strict=True)
    copied = dataclasses.replace(plan)
    assert not copied._derived and read_layout(copied) is not read_layout(plan)


def test_a_shared_board_schedule_keeps_no_program_alive_and_its_deep_copy_simulates(tmp_path) -> None:
    """The costs kept with a board file's schedule are keyed by the periphery's values and the timeline held for
    the latest Program weakly: a Program simulated on it and dropped is freed, and a deep copy of the schedule (its
    kept parts copied too) simulates what the schedule does, for another Program object of the same file."""
    program, data = _job(tmp_path, False, CompileOptions(k=2))
    emit_board(program, tmp_path / "p.board")
    program.save(tmp_path / "p.leac")
    board = board_schedule(read_board(tmp_path / "p.board"))
    want = _json(simulate(program, data, seed=3, board=board))
    del program
    gc.collect()
    loaded = Program.load(tmp_path / "p.leac")
    alive = weakref.ref(loaded)
    assert _json(simulate(loaded, data, seed=3, board=board)) == want
    again = Program.load(tmp_path / "p.leac")
    assert _json(simulate(again, data, seed=3, board=copy.deepcopy(board))) == want
    assert _json(simulate(again, data, seed=3, board=board)) == want
    del loaded
    gc.collect()
    assert alive() is None  # the schedule did not keep the Program simulated on it before `again`


def test_new_adc_ranges_on_a_used_executor_take_their_own_band_frame(tmp_path) -> None:
    """An executor whose ADC ranges change after it has run (a narrower calibration) makes its bands again for
    them: its outputs are those of an executor given the new ranges before it first ran, and not its old ones."""
    program, data = _job(tmp_path, False, CompileOptions(k=2))
    schedule = schedule_of(program)
    plan = next(iter(schedule.layers.values()))

    def layer() -> CrossbarLayer:  # the same devices (seed) each time; reads without noise (no generator)
        return CrossbarLayer(plan, schedule, program.chip, np.random.default_rng(7), ideal=False,
                             exact_read_noise=False)

    x = data[0].x[:40]
    used, fresh = layer(), layer()
    before = used.executor.forward(x, None)
    narrower = [fs * 0.3 for fs in used.executor.full_scale]
    used.executor.full_scale = narrower
    fresh.executor.full_scale = list(narrower)
    after = used.executor.forward(x, None)
    np.testing.assert_array_equal(after, fresh.executor.forward(x, None))
    assert not np.array_equal(after, before)
    assert used.executor._frame is band_frame(plan, narrower, used.executor.adc_bits)
