"""The simulator: hand-computed currents, cost model, ideal agreement with onnxruntime, LEA helping."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.backends.sim import (
    CrossbarLayer,
    Dataset,
    EventCounts,
    estimate_cost,
    load_data,
    simulate,
    simulate_trials,
    top1,
)
from lea_compiler.chip import Array, Chip, Defect, DeviceModel, Periphery, save_chip, synth_chip
from lea_compiler.chip.variability import NoiseModel
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import BadDataError, InvalidInputError, UsageError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.programming.devices import write_errors
from lea_compiler.reference import run_onnxruntime
from lea_compiler.schedule.plan import Schedule, schedule_of
from tests.helpers import cnn_model, loop_model, make_model, mlp_model, swap_embedded_model, ternarize

F = np.float32


def two_by_two(tmp_path, *, stuck: bool = True, compensate: str = "none"):
    """y = x @ [[1, -1], [0, 1]] on one 2 x 4 array; G+ at columns 0-1 (device (0, 0) stuck at 280 uS)."""
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 2])}, ["y"],
                       {"W": np.array([[1, -1], [0, 1]], F)})
    path = tmp_path / "mm.onnx"
    onnx.save(model, path)
    defects = (Defect(0, 0, 0, "stuck_high", 280.0),) if stuck else ()
    chip = Chip(
        arrays=(Array(0, 2, 4),), defects=defects,
        device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0),
        periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=4, adcs_per_array=1),
    )
    program = compile_model(path, chip, CompileOptions(k=1, compensate=compensate)).program
    data = Dataset("d", np.array([[1, -1], [-1, 1]], F), np.array([0, 1]))
    return program, data


def test_hand_computed_currents_with_a_stuck_device_and_adc(tmp_path) -> None:
    program, data = two_by_two(tmp_path)
    layer = program.layer("mm")
    copy = layer.blocks[0].copies[0]
    assert (copy.pos.region.col, copy.neg.region.col) == (0, 2)  # the stuck device costs least under G+
    assert copy.pos.levels.tolist() == [[-1, 0], [0, 1]]
    # x_fs: each vector's own max |x| = 1, so V = 0.25 * x; G+ = [[280, 100], [100, 250]], G- = [[100, 250],
    # [100, 100]]. The uncalibrated ADC range is the worst case: 0.25 V x the largest column sum (280 + 100 uS)
    # = 95 uA. x = [1, -1]: I+ = [45, -37.5] uA, I- = [0, 37.5] uA; the 4-bit ADC (7 steps of 95/7 uA) reads
    # I+ as [3, -3] steps (3.32, -2.76) and I- as [0, 3]; y = (I+ - I-) / 0.25 V / 150 uS per unit
    step = 95 / 7
    expected = np.array([[3 * step, -6 * step], [-3 * step, 6 * step]]) / 0.25 / 150
    rng = np.random.default_rng(0)
    sim_layer = CrossbarLayer.of(program, "mm", program.chip, rng)
    assert sim_layer.x_fs is None and sim_layer.executor.full_scale == [95.0, 95.0]
    got = sim_layer.forward(data.x, rng, EventCounts())
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(expected, [[1.085714, -2.171429], [-1.085714, 2.171429]], rtol=1e-6)
    report = simulate(program, [data])
    # relative RMS error: each output is off by 3/35 of its value ([1.0857, -2.1714] against [1, -2])
    assert report.layer_error["mm"] == pytest.approx(3 / 35, rel=1e-5) and report.data[0].accuracy == 1.0
    assert interpreter.run(program.graph, {"x": data.x})["y"].tolist() == [[1, -2], [-1, 2]]


def test_hand_worked_cost_and_counted_events_agree(tmp_path) -> None:
    program, data = two_by_two(tmp_path)
    cost = estimate_cost(program)
    # two regions on array 0, read one after the other: 2 * (100 ns + 2 ADC rounds * 10 ns)
    assert cost.analog_ns == 240.0
    # digital: the input's max |x| 2 + subtract 2 + sum 2 + divide 2 + scale 2 = 10 ops at 100 MHz, one a clock.
    # The timeline: max |x| 0-20 ns; read 1 (DAC 85 + 100 ns) 20-205, its 2 conversions 205-225; read 2 waits for
    # the array: 205-390, conversions 390-410; the other 8 ops 410-490. The array is busy 2 x 185 ns a sample.
    assert cost.digital_cycles == 10 and cost.latency_ns == 490.0 and cost.cycles_per_inference == 49.0
    assert cost.period_ns == 370.0 and cost.bottleneck == "array 0" and cost.layer_latency_ns == {"mm": 490.0}
    # device reads at full scale (no data): 0.25^2 V^2 x (280 + 100 + 100 + 250 + 100 + 250 + 100 + 100) uS x
    # 100 ns = 8 pJ; digital: 10 ops x 0.9 pJ; no static power by default
    assert cost.energy_breakdown_pJ == pytest.approx({"device_reads": 8.0, "adc": 8.0, "dac": 2.0, "digital": 9.0,
                                                      "static": 0.0})
    # levels programmed: G+ [[-, 0], [0, 1]], G- [[0, 1], [0, 0]] -> pulses (level + 1) = 1+1+2 + 1+2+1+1
    assert cost.program_pulses == 9
    report = simulate(program, [data])
    assert report.counted.analog_ns == cost.analog_ns
    assert report.counted.digital_ops == cost.digital_cycles
    assert report.counted.adc_conversions == 4 and report.counted.dac_conversions == 4


@pytest.mark.parametrize("make, k", [(mlp_model, 2), (cnn_model, 1)], ids=["mlp", "cnn"])
def test_ideal_simulation_agrees_with_onnxruntime(tmp_path, make, k) -> None:
    model = ternarize(make())
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    chip = synth_chip(arrays=40, rows=32, cols=32, stuck_high=0.05, seed=2)
    program = compile_model(path, chip, CompileOptions(k=k)).program
    rng = np.random.default_rng(5)
    shape = [d.dim_value or 300 for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = rng.standard_normal(shape).astype(F)
    software = top1(run_onnxruntime(model, {"x": x}))
    report = simulate(program, [Dataset("d", x, software)], ideal=True)
    # at least 294 of 300: 3 samples sit closer to a tie than the quantization error, and a different
    # BLAS or CPU may round one more of them the other way
    assert report.data[0].accuracy >= 0.98 and report.data[0].agreement >= 0.98
    assert all(err < 0.05 for err in report.layer_error.values())


def test_more_copies_help_on_a_defective_chip(tmp_path) -> None:
    model = mlp_model(sizes=(8, 16, 4), seed=3)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8)).astype(F)
    data = Dataset("d", x, top1(run_onnxruntime(model, {"x": x})))
    accuracy = {1: [], 3: []}
    for seed in range(4):
        chip = synth_chip(arrays=12, rows=16, cols=16, stuck_high=0.1, stuck_low=0.05, seed=seed)
        for k in accuracy:
            # the paper's LEA alone: without leac's stuck-device compensation, which helps k = 1 most
            program = compile_model(path, chip, CompileOptions(k=k, time_limit_s=2, compensate="none")).program
            accuracy[k].append(simulate(program, [data], seed=seed).accuracy)
    assert np.mean(accuracy[3]) > np.mean(accuracy[1])


def test_another_chip_must_have_the_arrays_used(tmp_path) -> None:
    program, data = two_by_two(tmp_path)
    with pytest.raises(InvalidInputError, match="no array 0 of 2 x 4"):
        simulate(program, [data], chip=Chip(arrays=(Array(0, 4, 4),)))
    healthy = Chip(arrays=(Array(0, 2, 4),), device=program.chip.device, periphery=program.chip.periphery)
    report = simulate(program, [data], chip=healthy)
    assert not report.compiled_for_chip


def test_data_files_are_checked(tmp_path) -> None:
    program, _ = two_by_two(tmp_path)
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((3, 2), F), y=np.zeros(3, np.int64))
    assert load_data(good, program.graph).x.shape == (3, 2)
    cases = {
        "nokeys.npz": dict(a=np.zeros(3)),
        "shape.npz": dict(x=np.zeros((3, 5), F), y=np.zeros(3, np.int64)),
        "labels.npz": dict(x=np.zeros((3, 2), F), y=np.full(3, 0.5, F)),  # whole-number floats are labels
        "count.npz": dict(x=np.zeros((3, 2), F), y=np.zeros(4, np.int64)),
        "nan.npz": dict(x=np.full((3, 2), np.nan, F), y=np.zeros(3, np.int64)),
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(BadDataError, match=name):
            load_data(tmp_path / name, program.graph)
    np.savez(tmp_path / "obj.npz", x=np.array([object()] * 3), y=np.zeros(3, np.int64))
    with pytest.raises(BadDataError, match="obj.npz"):
        load_data(tmp_path / "obj.npz", program.graph)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BadDataError, match="junk.npz"):
        load_data(tmp_path / "junk.npz", program.graph)


def test_cli_simulate_json_and_errors(tmp_path, capsys) -> None:
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), model)
    chip = tmp_path / "chip.json"
    save_chip(synth_chip(arrays=8, rows=25, cols=25, seed=1), chip)
    program = tmp_path / "p.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-k", "2", "-o", str(program)]) == 0
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((50, 4)).astype(F), y=np.zeros(50, np.int64))
    capsys.readouterr()
    assert main(["simulate", str(program), "--data", str(data), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "software_accuracy", "agreement", "devices_used", "cycles_per_inference",
                "energy_pJ_per_inference", "program_pulses"):
        assert key in report
    assert len(report["data"]) == 2 and report["devices_used"] == 2 * 2 * 138
    assert main(["simulate", str(program), "--data", str(data)]) == 0
    assert "per inference:" in capsys.readouterr().out
    assert main(["simulate", str(tmp_path / "none.leac"), "--data", str(data)]) == 3
    assert main(["simulate", str(program), "--data", str(chip)]) == 3
    assert main(["simulate", str(program), "--data", str(data), "--output", "nope"]) == 2


def test_table_gaussian_has_unit_moments() -> None:
    from lea_compiler.backends.sim import gaussian

    z = gaussian(np.random.default_rng(0), (400_000,))
    assert z.dtype == np.float32
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float(np.mean(z**4)) - 3) < 0.05  # Gaussian kurtosis, not a uniform's 1.8


def test_fast_read_noise_matches_exact_per_device_noise_in_variance(tmp_path) -> None:
    program, data = two_by_two(tmp_path, stuck=False)
    x = np.tile(np.array([[1.0, -0.5]], F), (20_000, 1))
    outs = {}
    for exact in (False, True):
        chip = Chip(arrays=program.chip.arrays, device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0,
                                                                    read_noise_uS=10.0),
                    periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=16))
        sim = CrossbarLayer.of(program, "mm", chip, np.random.default_rng(1), exact_read_noise=exact)
        sim.x_fs = 1.0
        outs[exact] = sim.forward(x, np.random.default_rng(2), EventCounts())
    # both: var = 2 halves * r^2/3 * sum V^2 / (v_read * scale)^2 per output
    expected = 2 * (100 / 3) * (0.25**2 + 0.125**2) / (0.25 * 150) ** 2
    for out in outs.values():
        np.testing.assert_allclose(out.var(axis=0), expected, rtol=0.05)


def test_threads_do_not_change_the_simulated_outputs(tmp_path) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(sizes=(30, 40, 5), seed=3), path)
    chip = synth_chip(arrays=80, rows=16, cols=16, seed=2, stuck_high=0.05)
    program = compile_model(path, chip, CompileOptions(k=3)).program
    x = np.random.default_rng(0).uniform(-1, 1, size=(3000, 30)).astype(F)
    data = Dataset("d", x, np.zeros(3000, np.int64))
    reports = [simulate(program, [data], seed=5, threads=t, batch_size=1500) for t in (1, 2, 3)]
    assert len({json.dumps({k: v for k, v in r.to_json().items() if k != "seconds"}) for r in reports}) == 1
    assert min(reports[0].layer_error.values()) > 0  # noise and defects were on
    with pytest.raises(UsageError, match="threads must be at least 1"):
        simulate(program, [data], threads=0)


def test_a_program_embedding_a_model_leac_refuses_is_not_run(tmp_path, capsys) -> None:
    """A crafted Program whose model.onnx is a Loop of 2^62 iterations (sha256 updated to match): the front end
    refuses it before onnxruntime would run for ever (issue 13 item 4); exit 3, one line, at once."""
    model, chip = tmp_path / "mlp.onnx", tmp_path / "chip.json"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=8, rows=16, cols=16, seed=0), chip)
    assert main(["compile", str(model), "--chip", str(chip), "--placer", "greedy", "-o",
                 str(tmp_path / "p.leac")]) == 0
    crafted = swap_embedded_model(tmp_path / "p.leac", loop_model(), tmp_path / "crafted.leac")
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((4, 4), F), y=np.zeros(4, np.int64))
    capsys.readouterr()
    assert main(["simulate", str(crafted), "--data", str(data), "--data", str(data)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("leac: error: the Program's embedded model.onnx: unsupported: node 'forever' (Loop). ")
    assert len(err.splitlines()) == 1
    assert main(["simulate", str(crafted), str(crafted), "--data", str(data), "--jobs", "1"]) == 3


def test_samples_run_in_chunks_with_the_same_noise(tmp_path, monkeypatch) -> None:
    """Memory is bounded by a chunk of samples (issue 13 item 7): with a chunk of a few samples, the simulator,
    its digital reference, the calibration and onnxruntime never see more, and the report is the one of a
    whole batch: the same read noise (drawn per noise block, not per chunk), calibration and predictions;
    the layer errors differ only by float32 rounding (BLAS sums a row differently for other row counts)."""
    import lea_compiler.chunks as chunks
    import lea_compiler.reference as reference  # the baseline imports run_session from there when it runs

    path = tmp_path / "cnn.onnx"
    onnx.save(cnn_model(), path)
    program = compile_model(path, synth_chip(arrays=80, rows=16, cols=16, seed=2, stuck_high=0.05),
                            CompileOptions(k=3)).program
    x = np.random.default_rng(0).uniform(-1, 1, size=(120, 1, 8, 8)).astype(F)
    data = Dataset("d", x, np.zeros(120, np.int64))
    whole = {exact: simulate(program, [data], seed=5, batch_size=50, exact_read_noise=exact).to_json()
             for exact in (False, True)}
    per_sample = chunks.bytes_per_sample(program.graph)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 7 * per_sample)  # 7 samples: chunks straddle the noise blocks
    assert chunks.samples_per_chunk(program.graph, 50) == 7
    seen: list[int] = []
    real_run, real_session = interpreter.run, reference.run_session
    monkeypatch.setattr(interpreter, "run", lambda graph, feeds, **kw: seen.append(len(*feeds.values()))
                        or real_run(graph, feeds, **kw))
    monkeypatch.setattr(reference, "run_session", lambda session, feeds: seen.append(len(*feeds.values()))
                        or real_session(session, feeds))
    for exact in (False, True):
        seen.clear()
        chunked = simulate(program, [data], seed=5, batch_size=50, exact_read_noise=exact).to_json()
        assert max(seen) == 7 and sum(seen) == 120 * 3  # onnxruntime, simulator, reference
        for key, value in whole[exact].items():
            if key == "layer_output_error":
                assert chunked[key] == pytest.approx(value, rel=1e-4)
            elif key == "energy_pJ_per_inference":  # sums of V^2 G t in other orders, and a later layer's input
                # may land on the other DAC level where the layer before rounds a float32 differently (one level of
                # one input: ~1e-7 of a layer's device-read energy)
                assert chunked[key] == pytest.approx(value, rel=1e-6), key
            elif key == "energy_breakdown_pJ":  # only the measured device reads can differ
                assert chunked[key].keys() == value.keys()
                for part, pJ in value.items():
                    assert chunked[key][part] == (pytest.approx(pJ, rel=1e-5) if part == "device_reads" else pJ)
            elif key == "energy_by_layer_pJ":
                assert chunked[key].keys() == value.keys()
                for index, (name, layer) in enumerate(value.items()):  # the first layer reads the data itself
                    assert chunked[key][name].keys() == layer.keys()
                    for part, pJ in layer.items():
                        near = pytest.approx(pJ, rel=1e-12 if index == 0 else 1e-5)
                        assert chunked[key][name][part] == (near if part == "device_reads" else pJ), (name, part)
            elif key != "seconds":
                assert chunked[key] == value, key


def test_data_that_overflows_a_layer_is_refused_not_a_bug(tmp_path, capsys) -> None:
    """A finite float32 value (3e38) whose layer output overflows gave an infinite layer error and exit 1 with
    --json (found by bench_fuzz, data corrupt 'values:3e+38')."""
    from pathlib import Path

    from lea_compiler.cli import main

    root = Path(__file__).resolve().parents[2] / "lea_compiler" / "data"
    program = tmp_path / "m.leac"
    assert main(["compile", str(root / "yinyang_mlp.onnx"), "--chip", str(root / "paper_chip.json"), "-k", "1",
                 "-o", str(program)]) == 0
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    x[3, 2] = 3e38
    np.savez(tmp_path / "big.npz", x=x, y=np.zeros(50, np.int64))
    capsys.readouterr()
    assert main(["simulate", str(program), "--data", str(tmp_path / "big.npz"), "--json"]) == 3
    out, err = capsys.readouterr()
    assert "the data drives the output of layer 'fc1' to infinity or NaN" in err
    assert err.count("\n") == 1 and "Warning" not in err  # one line: no numpy warning before it
    assert json.loads(out)["kind"] == "BadDataError"


def test_trials_are_independent_noise_draws_summarised(tmp_path, capsys) -> None:
    """--trials N: the report is seed S's, and `trials` holds the accuracy of seeds S .. S+N-1 as `simulate`
    gives each, with their mean, standard deviation and range."""
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(sizes=(30, 40, 5), seed=3), path)
    chip = synth_chip(arrays=80, rows=16, cols=16, seed=2, stuck_high=0.05)
    program = compile_model(path, chip, CompileOptions(k=2)).program
    x = np.random.default_rng(0).uniform(-1, 1, size=(300, 30)).astype(F)
    labels = top1({v.name: interpreter.run(program.graph, {"x": x})[v.name] for v in program.graph.outputs})
    data = [Dataset("d", x, labels)]
    report = simulate_trials(program, data, trials=4, seed=7)
    single = [simulate(program, data, seed=s).accuracy for s in (7, 8, 9, 10)]
    assert report.trials is not None and report.trials.seeds == (7, 8, 9, 10)
    assert list(report.trials.accuracy) == single and report.accuracy == single[0]
    summary = report.to_json()["trials"]
    assert summary["mean"] == pytest.approx(np.mean(single)) and summary["std"] == pytest.approx(np.std(single))
    assert (summary["min"], summary["max"], summary["count"]) == (min(single), max(single), 4)
    assert len(set(single)) > 1  # the draws differ: noise is on
    assert "trials" not in simulate_trials(program, data, trials=1).to_json()
    with pytest.raises(UsageError, match="trials must be an integer >= 1"):
        simulate_trials(program, data, trials=0)
    program_path = tmp_path / "p.leac"
    program.save(program_path)
    np.savez(tmp_path / "d.npz", x=x, y=labels)
    assert main(["simulate", str(program_path), "--data", str(tmp_path / "d.npz"), "--trials", "0"]) == 2
    assert "--trials takes an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["simulate", str(program_path), str(program_path), "--data", str(tmp_path / "d.npz"),
                 "--trials", "3"]) == 2
    assert "--trials goes with one Program, not with many" in capsys.readouterr().err
    assert main(["simulate", str(program_path), "--data", str(tmp_path / "d.npz"), "--trials", "3", "--seed", "7"]) == 0
    assert "over 3 noise draws (seeds 7..9)" in capsys.readouterr().out


def test_trials_lower_the_program_once_and_a_given_schedule_gives_the_same_report(tmp_path, monkeypatch) -> None:
    """`simulate(schedule=schedule_of(program))` reports what lowering inside gives; `simulate_trials` lowers once
    for all its draws; a schedule that cannot be the Program's own is refused before anything runs."""
    from lea_compiler.backends import sim
    from lea_compiler.backends.board import board_schedule, emit_board, read_board

    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(sizes=(30, 40, 5), seed=3), path)
    chip = synth_chip(arrays=80, rows=16, cols=16, seed=2, stuck_high=0.05)
    program = compile_model(path, chip, CompileOptions(k=2)).program
    x = np.random.default_rng(0).uniform(-1, 1, size=(200, 30)).astype(F)
    data = [Dataset("d", x, top1(interpreter.run(program.graph, {"x": x})))]

    def same(a, b) -> bool:
        return {**a.to_json(), "seconds": 0} == {**b.to_json(), "seconds": 0}

    assert same(simulate(program, data, seed=5, schedule=schedule_of(program)), simulate(program, data, seed=5))
    lowered = []
    monkeypatch.setattr(sim, "schedule_of", lambda *a, **kw: lowered.append(1) or schedule_of(*a, **kw))
    report = simulate_trials(program, data, trials=3, seed=5)
    assert len(lowered) == 1 and len(set(report.trials.accuracy)) > 1
    monkeypatch.undo()

    onnx.save(mlp_model(sizes=(30, 20, 10, 5), seed=3), tmp_path / "deeper.onnx")
    other = compile_model(tmp_path / "deeper.onnx", chip, CompileOptions(k=1)).program
    same_layers = compile_model(path, chip, CompileOptions(k=1)).program  # the same layers, other placements
    emit_board(program, tmp_path / "p.board")
    board = board_schedule(read_board(tmp_path / "p.board"))
    for kwargs, message in (
            ({"schedule": schedule_of(program), "board": board}, "give the Program's own schedule or a board"),
            ({"schedule": board}, "this schedule is a board file's: give it as board"),
            ({"schedule": schedule_of(other)}, "this schedule was lowered from another Program"),
            ({"schedule": schedule_of(same_layers)}, "this schedule was lowered from another Program"),
            ({"schedule": Schedule(np.array([1.0]), {}, {}, None)}, r"crossbar layers \[\] are not the Program's")):
        monkeypatch.setattr(sim, "CrossbarLayer", lambda *a, **kw: pytest.fail("ran"))
        with pytest.raises(UsageError, match=message):
            simulate(program, data, **kwargs)
        monkeypatch.undo()


def test_trials_run_the_digital_reference_once_within_its_budget_and_report_as_draws_on_their_own(
        tmp_path, monkeypatch) -> None:
    """`simulate_trials` runs the Program's graph digitally once per chunk for all its draws (while the outputs fit
    in `REFERENCE_BYTES`, else once per draw), and its draws are what `simulate` gives each seed on its own; its
    `seconds` are the whole call's; a reference made for another Program or other data is refused before anything
    runs."""
    from lea_compiler.backends import digital_reference, sim
    from lea_compiler.backends.sim import DigitalReference

    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(sizes=(30, 40, 5), seed=3), path)
    chip = synth_chip(arrays=80, rows=16, cols=16, seed=2, stuck_high=0.05)
    program = compile_model(path, chip, CompileOptions(k=2)).program
    rng = np.random.default_rng(0)
    data = [Dataset(name, x, top1(interpreter.run(program.graph, {"x": x})))
            for name, x in (("a", rng.uniform(-1, 1, size=(70, 30)).astype(F)),
                            ("b", rng.uniform(-1, 1, size=(45, 30)).astype(F)))]
    monkeypatch.setattr(sim, "samples_per_chunk", lambda graph, batch: 16)  # several chunks per noise block
    alone = [simulate(program, data, seed=seed, batch_size=32) for seed in (4, 5, 6)]

    def without_seconds(report) -> dict:
        return {**report.to_json(), "seconds": 0, "trials": None}

    runs = []
    real_run = interpreter.run

    def counted(graph, feeds, **kw):  # the module's run, which sim's runs call too: count the digital ones
        if not kw.get("kernels"):
            runs.append(len(feeds["x"]))
        return real_run(graph, feeds, **kw)

    monkeypatch.setattr(digital_reference.interpreter, "run", counted)
    chunks = [16] * 4 + [6] + [16] * 2 + [13]  # noise blocks of 32 samples in chunks of 16
    for budget, ran in ((digital_reference.REFERENCE_BYTES, chunks), (0, chunks * 3)):
        runs.clear()
        monkeypatch.setattr(digital_reference, "REFERENCE_BYTES", budget)
        monkeypatch.setattr(DigitalReference.__init__, "__defaults__", (budget,))
        report = simulate_trials(program, data, trials=3, seed=4, batch_size=32)
        assert runs == ran
        assert report.trials.accuracy == tuple(r.accuracy for r in alone)
        assert without_seconds(report) == without_seconds(alone[0])
    monkeypatch.undo()

    monkeypatch.setattr(sim, "software_predictions", lambda *a, **kw: __import__("time").sleep(0.3) or None)
    assert simulate_trials(program, data, trials=1, seed=4).seconds >= 0.3  # the baseline counts
    monkeypatch.undo()

    kept = DigitalReference(program, data).outputs(1, slice(0, 16))  # shared by the draws: read only
    assert kept and not any(array.flags.writeable for array in kept.values())
    assert all(array.flags.writeable for array in DigitalReference(program, data, 0).outputs(1, slice(0, 16)).values())

    other = compile_model(path, chip, CompileOptions(k=1)).program
    for reference, message in ((DigitalReference(other, data), "made for another Program"),
                               (DigitalReference(program, data[:1]), "made for other data sets"),
                               (DigitalReference(program, [Dataset("a", data[0].x, data[0].y), data[1]]),
                                "made for other data sets")):
        monkeypatch.setattr(sim, "CrossbarLayer", lambda *a, **kw: pytest.fail("ran"))
        with pytest.raises(UsageError, match=message):
            simulate(program, data, reference=reference)
        monkeypatch.undo()


def test_new_digital_ops_simulate_count_and_emit(tmp_path) -> None:
    # torch's exact GELU (Erf), Split, Max, Pad, Slice, Elu and ReduceMax between two crossbar layers: the
    # simulator runs them in the digital periphery (ideal devices agree with onnxruntime), counts one digital op
    # per output element as the cost model does, and the board file carries them as digital records
    from lea_compiler.backends.board import emit_board, read_board, validate_board
    from lea_compiler.backends.cost import _digital_elements
    from lea_compiler.schedule.records import Digital

    rng = np.random.default_rng(11)
    w1, w2 = (rng.integers(-1, 2, size=s).astype(F) for s in ((8, 16), (10, 4)))
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "W1"], ["h"], name="fc1"),
        n("Div", ["h", "r2"], ["d"], name="div"), n("Erf", ["d"], ["e"], name="erf"),
        n("Add", ["e", "one"], ["a"], name="add"), n("Mul", ["h", "a"], ["m"], name="mul"),
        n("Mul", ["m", "half"], ["g"], name="gelu"),
        n("Split", ["g", "parts"], ["g1", "g2"], name="split", axis=1),
        n("Max", ["g1", "g2"], ["mx"], name="max"), n("Pad", ["mx", "pads"], ["p"], name="pad", mode="edge"),
        n("Slice", ["p", "s0", "s1", "ax"], ["sl"], name="slice"),
        n("Elu", ["sl"], ["el"], name="elu"), n("MatMul", ["el", "W2"], ["z"], name="fc2"),
        n("ReduceMax", ["z", "ax"], ["zmax"], name="rmax"), n("Sub", ["z", "zmax"], ["y"], name="shift"),
    ]
    inits = {"W1": w1, "W2": w2, "r2": np.array(np.sqrt(2), F), "one": np.array(1, F), "half": np.array(0.5, F),
             "parts": np.array([8, 8], np.int64), "pads": np.array([0, 2, 0, 1], np.int64),
             "s0": np.array([0], np.int64), "s1": np.array([10], np.int64), "ax": np.array([1], np.int64)}
    model = make_model(nodes, {"x": (F, ["N", 8])}, ["y"], inits, opset=18)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    chip = synth_chip(arrays=20, rows=32, cols=32, stuck_high=0.0, seed=4)
    program = compile_model(path, chip, CompileOptions(k=2)).program
    x = rng.standard_normal((200, 8)).astype(F)
    software = top1(run_onnxruntime(model, {"x": x}))
    report = simulate(program, [Dataset("d", x, software)], ideal=True)
    assert report.data[0].agreement >= 0.98
    cost = estimate_cost(program)
    assert report.counted.digital_ops == cost.digital_cycles
    # the digital nodes' output elements per sample: 16 x 5 (div, erf, add, mul, gelu) + 8 x 2 (split's two
    # outputs) + 8 (max) + 11 (pad) + 10 x 2 (slice, elu) + 1 (rmax) + 4 (shift)
    per_sample = 16 * 5 + 8 * 2 + 8 + 11 + 10 * 2 + 1 + 4
    assert _digital_elements(program) == per_sample
    board = tmp_path / "b.jsonl"
    emit_board(program, board)
    assert validate_board(board) == []
    ops = [r.op_type for r in read_board(board).of(Digital)]
    assert {"Erf", "Split", "Max", "Pad", "Slice", "Elu", "ReduceMax"} <= set(ops)


@pytest.mark.parametrize("write_model", [None, (3.0, 6.0, 4.0, 9.0), (0.0, 6.0, 0.0, 9.0)],
                         ids=["constant", "per-level", "per-level-with-quiet-levels"])
def test_programming_every_region_at_once_draws_what_region_by_region_draws(tmp_path, write_model) -> None:
    """The default programming model programs a layer's regions in one pass (`CrossbarLayer._conductances`):
    each region holds what programming the regions one by one in read order gives, by hand here: its levels
    (a skipped device at the lowest), plus sigma `write_errors` drawn from the layer's generator region after region
    (sigma per device with a per-level write-noise model; a region draws only where some device has noise, so
    with no noise at two levels some regions draw nothing), clipped at 0, and the simulated chip's stuck devices
    at their stuck conductance; the generator is left where the one-by-one draws leave it."""
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model((9, 11, 3)), path)
    model = None if write_model is None else NoiseModel(sigma_uS=write_model)
    chip = synth_chip(arrays=60, rows=4, cols=5, stuck_high=0.1, stuck_low=0.05, dead_rows=0.05, seed=2,
                      device=DeviceModel(write_noise_model=model))
    program = compile_model(path, chip, CompileOptions(k=2, placer="greedy")).program
    schedule = schedule_of(program)
    levels = schedule.levels_uS
    quiet = 0
    for name, plan in schedule.layers.items():
        layer = CrossbarLayer(plan, schedule, chip, rng := np.random.default_rng(7), ideal=False,
                              exact_read_noise=False)
        by_hand = np.random.default_rng(7)
        assert len(plan.reads) > 4, name
        for (read, _), got in zip(plan.reads, layer.executor.conductances, strict=True):
            window = (slice(read.row, read.row + read.rows), slice(read.col, read.col + read.cols))
            level = schedule.arrays[read.array].level[window]
            state, stuck = chip.stuck_map(read.array)
            want = np.where(level >= 0, levels[np.maximum(level, 0)], levels[0])
            sigma = chip.device.write_noise_uS if model is None else model.sigma(want, levels)
            if np.any(np.asarray(sigma) > 0):
                want = want + sigma * write_errors(by_hand, level.shape)
            else:
                quiet += 1
            want = np.where(state[window] != 0, stuck[window], np.maximum(want, 0.0))
            np.testing.assert_array_equal(got, want)
        assert rng.integers(1 << 62) == by_hand.integers(1 << 62)
    assert (quiet > 0) == (write_model is not None and 0.0 in write_model)
