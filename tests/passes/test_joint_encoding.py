"""joint encoding: the copies of a column encoded together (sigma-delta across copies), by property and by hand."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lea_compiler import interpreter
from lea_compiler.backends.sim import CrossbarLayer, Dataset, EventCounts, simulate, top1
from lea_compiler.chip import Array, Chip, Defect, DeviceModel, Periphery, synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.passes.encode import encode_joint
from lea_compiler.passes.ensemble import MakeEnsemble
from lea_compiler.passes.place import Place
from lea_compiler.passes.quantize import PairCode, Quantize, joint_mean, quantize_matrix
from lea_compiler.passes.tile import Tile
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import represented_matrix
from tests.helpers import mlp_model

F = np.float32
PAPER_LEVELS = (133.0, 167.0, 200.0, 233.0)


def healthy(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(shape, np.int8), np.full(shape, np.nan)


def joint_copies(matrix: np.ndarray, levels: tuple[float, ...], k: int, stuck=None):
    """Quantize for k joint copies, encode them on the given (default: healthy) devices; (quantized, copies)."""
    q = quantize_matrix(matrix, levels, "joint", False, False, copies=k)
    assert q.exact_uS is not None
    stuck = stuck or [(healthy(matrix.shape), healthy(matrix.shape)) for _ in range(k)]
    copies, mask = encode_joint(np.asarray(levels), q.exact_uS, q.pos, q.neg, stuck, k)
    assert mask.all()
    return q, copies


even_levels = st.builds(lambda low, step, count: tuple(low + step * i for i in range(count)),
                        st.floats(1.0, 200.0), st.floats(5.0, 80.0), st.integers(2, 5))
matrices = st.integers(1, 6).flatmap(lambda r: st.integers(1, 4).flatmap(
    lambda c: arrays(np.float64, (r, c), elements=st.floats(-3, 3, allow_subnormal=False))))


@settings(max_examples=60, deadline=None)
@given(matrices, st.one_of(even_levels, st.just(PAPER_LEVELS)), st.integers(1, 6))
def test_the_mean_of_joint_copies_is_no_worse_than_one_copy_per_column(matrix, levels, k) -> None:
    q, copies = joint_copies(matrix, levels, k)
    lv = np.asarray(levels)
    mean = np.mean([(p_uS - n_uS) for _, _, p_uS, n_uS in copies], axis=0) / q.scale
    single = (lv[q.pos] - lv[q.neg]) / q.scale  # one copy's encoding at the same scale
    err_joint, err_single = np.abs(mean - matrix), np.abs(single - matrix)
    tol = 1e-9 * (1 + np.abs(matrix))
    assert np.all(err_joint.max(axis=0) <= err_single.max(axis=0) + tol.max(axis=0))
    assert np.all(np.sqrt((err_joint**2).mean(axis=0)) <= np.sqrt((err_single**2).mean(axis=0)) + tol.max(axis=0))
    # and no worse in RMS than one copy with its own scale (the scale is chosen for the mean); joint uses
    # simple's level pairs, so that is simple's encoding
    one = quantize_matrix(matrix, levels, "simple", False, False)
    assert np.all(np.sqrt((err_joint**2).mean(axis=0))
                  <= np.sqrt(((one.dequantized() - matrix) ** 2).mean(axis=0)) + tol.max(axis=0))
    # the mean the quantize pass reports (joint_mean) is what encode produces on ideal devices
    np.testing.assert_allclose(q.dequantized(), mean, rtol=1e-12, atol=1e-12)
    for pos, neg, pos_uS, neg_uS in copies:  # every conductance is a device level
        assert pos.min() >= 0 and neg.min() >= 0
        np.testing.assert_array_equal(pos_uS, lv[pos])
        np.testing.assert_array_equal(neg_uS, lv[neg])


def test_joint_copies_are_strictly_closer_for_k_at_least_2_on_random_matrices() -> None:
    rng = np.random.default_rng(7)
    for levels in (PAPER_LEVELS, (100.0, 150.0, 200.0, 250.0)):
        for _ in range(10):
            matrix = rng.standard_normal((16, 5))
            single = quantize_matrix(matrix, levels, "simple", False, False).dequantized()
            rms_single = np.sqrt(((single - matrix) ** 2).mean(axis=0))
            max_single = np.abs(single - matrix).max(axis=0)
            for k in (2, 4, 6):
                q, copies = joint_copies(matrix, levels, k)
                mean = np.mean([p - n for _, _, p, n in copies], axis=0) / q.scale
                assert np.all(np.sqrt(((mean - matrix) ** 2).mean(axis=0)) < rms_single)
                if k >= 4:  # about k times finer: at k = 2 a clipped largest weight may dominate the max
                    assert np.all(np.abs(mean - matrix).max(axis=0) < max_single)


@settings(max_examples=40, deadline=None)
@given(matrices, st.integers(1, 5), st.integers(0, 2**31))
def test_with_stuck_devices_every_conductance_is_a_level_or_the_stuck_value(matrix, k, seed) -> None:
    rng = np.random.default_rng(seed)
    shape = matrix.shape

    def stuck_map() -> tuple[np.ndarray, np.ndarray]:
        state = rng.choice(np.array([-1, 0, 1], np.int8), size=shape, p=[0.1, 0.7, 0.2])
        g = np.where(state == 1, rng.uniform(250, 600, shape), np.where(state == -1, rng.uniform(0, 20, shape), np.nan))
        return state.astype(np.int8), g

    stuck = [(stuck_map(), stuck_map()) for _ in range(k)]
    q, copies = joint_copies(matrix, PAPER_LEVELS, k, stuck)
    lv = np.asarray(PAPER_LEVELS)
    for (pos, neg, pos_uS, neg_uS), ((sp, gp), (sn, gn)) in zip(copies, stuck, strict=True):
        for levels, g_uS, state, g in ((pos, pos_uS, sp, gp), (neg, neg_uS, sn, gn)):
            bad = state != 0
            np.testing.assert_array_equal(levels < 0, bad)
            np.testing.assert_array_equal(g_uS[bad], g[bad])
            np.testing.assert_array_equal(g_uS[~bad], lv[levels[~bad]])
    # never worse than the copies encoded independently (rme, with its partner re-choice), pair by pair
    from lea_compiler.passes.encode import encode_copy
    indep = np.mean([np.subtract(*encode_copy(lv, q.pos, q.neg, sp, sn, "rme")[2:]) for sp, sn in stuck], axis=0)
    mean = np.mean([p - n for _, _, p, n in copies], axis=0)
    assert q.exact_uS is not None
    assert np.all(np.abs(mean - q.exact_uS) <= np.abs(indep - q.exact_uS) + 1e-9)


def test_hand_worked_column_with_a_stuck_high_device_the_other_copies_compensate() -> None:
    # levels 100..250 uS in steps of 50: differences -150..150 in steps of 50.
    # Column of two rows, targets t = 50 uS (row 0) and 0 (row 1); three copies; copy 1's G+ of row 0 is stuck
    # at 500 uS. Ordered stuck copy first: copy 1: G- = level nearest 500 - 50 -> 250, D = 250, S = 250;
    # copy 0: 2 * 50 - 250 = -150 -> (100, 250), S = 100; copy 2: 3 * 50 - 100 = 50 -> (150, 100), S = 150;
    # mean 50 = t. Encoded independently (rme) the mean would be (250 + 50 + 50) / 3 = 116.7.
    levels = np.array([100.0, 150.0, 200.0, 250.0])
    exact = np.array([[50.0], [0.0]])
    tp, tn = np.array([[1], [0]]), np.array([[0], [0]])
    sick = (np.array([[1], [0]], np.int8), np.array([[500.0], [np.nan]]))
    ok = healthy((2, 1))
    copies, mask = encode_joint(levels, exact, tp, tn, [(ok, ok), (sick, ok), (ok, ok)], beta=3)
    assert mask.all()
    assert copies[1][0].tolist() == [[-1], [0]] and copies[1][1].tolist() == [[3], [0]]
    assert copies[0][0].tolist() == [[0], [0]] and copies[0][1].tolist() == [[3], [0]]
    assert copies[2][0].tolist() == [[1], [0]] and copies[2][1].tolist() == [[0], [0]]
    mean = np.mean([p - n for _, _, p, n in copies], axis=0)
    assert np.all(np.abs(mean - exact) <= 50.0)  # within one level step ...
    np.testing.assert_allclose(mean, exact)  # ... exactly, here


def test_joint_with_beta_below_alpha_selects_by_defects_then_encodes_the_selected() -> None:
    levels = np.array([100.0, 150.0, 200.0, 250.0])
    exact = np.array([[50.0, -100.0]])
    tp, tn = np.array([[1, 0]]), np.array([[0, 2]])
    sick = (np.array([[1, 0]], np.int8), np.array([[500.0, np.nan]]))
    ok = healthy((1, 2))
    copies, mask = encode_joint(levels, exact, tp, tn, [(sick, ok), (ok, ok), (ok, ok)], beta=2)
    assert mask.tolist() == [[False, True], [True, True], [True, False]]  # column 0 drops the stuck copy
    mean = sum(np.where(mask[c], copies[c][2] - copies[c][3], 0.0) for c in range(3)) / 2
    np.testing.assert_allclose(mean, exact)


def test_joint_mean_is_finer_than_one_copy() -> None:
    code = PairCode.build((100.0, 150.0, 200.0, 250.0), "joint")
    t = np.array([[10.0], [30.0], [-140.0], [400.0]])
    np.testing.assert_allclose(joint_mean(t, code, 1), [[0.0], [50.0], [-150.0], [150.0]])
    np.testing.assert_allclose(joint_mean(t, code, 5), [[10.0], [30.0], [-140.0], [150.0]])


def test_ideal_simulation_of_a_joint_program_runs_the_weights_it_represents(tmp_path) -> None:
    model = mlp_model(sizes=(6, 10, 4), seed=2)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    fine = Periphery(dac_bits=16, adc_bits=16)
    chip = synth_chip(arrays=12, rows=16, cols=16, stuck_high=0.05, stuck_low=0.02, seed=1, periphery=fine)
    program = compile_model(path, chip, CompileOptions(k=3, encoding="joint", time_limit_s=2,
                                                       compensate="none")).program
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6)).astype(F)
    represented = {layer.name: represented_matrix(layer, chip) for layer in program.layers}
    assert any(np.any(b.copies[0].pos.levels != b.copies[1].pos.levels)
               for layer in program.layers for b in layer.blocks)  # the copies really differ

    def kernel(name):
        def run(node, inputs):
            bias = node.input(2)
            y = inputs[0].astype(np.float64) @ represented[name]
            return [(y + (0 if bias is None else bias.const)).astype(F)]
        return run

    kernels = {name: kernel(name) for name in represented}
    expected = interpreter.run(program.graph, {"x": x}, kernels=kernels)
    labels = top1({v.name: expected[v.name] for v in program.graph.outputs})
    report = simulate(program, [Dataset("d", x, labels)], ideal=True)
    assert report.accuracy >= 0.99
    # layer by layer, with the 16-bit converters: the ideal read equals x @ represented + b to the ADC step
    for layer in program.layers:
        node = program.graph.node(layer.name)
        sim = CrossbarLayer.of(program, layer.name, chip, np.random.default_rng(0), ideal=True)
        xin = rng.uniform(-1, 1, (50, layer.rows)).astype(F)
        sim.x_fs = 1.0
        got = sim.forward(xin, np.random.default_rng(0), EventCounts())
        want = xin.astype(np.float64) @ represented[layer.name] + node.input(2).const
        step = max(sim.executor.full_scale) / ((1 << 15) - 1) / chip.periphery.v_read_V / float(np.min(layer.scale))
        np.testing.assert_allclose(got, want, atol=4 * layer.alpha * step + 1e-4)
    # and the represented weights are the joint mean: closer to the float weights than one copy's targets
    for layer in program.layers:
        w = program.graph.node(layer.name).input(1).const.astype(np.float64)
        lv = np.asarray(layer.levels_uS)
        single = np.zeros_like(w)
        for b in layer.blocks:
            single[b.row_start:b.row_stop, b.col_start:b.col_stop] = lv[b.target_pos] - lv[b.target_neg]
        single /= layer.scale
        assert np.sqrt(np.mean((represented[layer.name] - w) ** 2)) < np.sqrt(np.mean((single - w) ** 2))


def _cost_view(chip, encoding: str, k: int):
    """The chip as the place pass costs it, for a small MLP quantized with `encoding` and k copies."""
    graph = Canonicalize().run(import_model(mlp_model(sizes=(4, 6, 3), seed=0)))
    graph = Quantize(chip.device.levels_uS, encoding=encoding, copies=k).run(graph)
    return Place(chip)._cost_view(MakeEnsemble(k, None).run(Tile(chip).run(graph)))


def test_placement_costs_what_joint_encoding_cannot_absorb() -> None:
    """With joint encoding and beta copies, the placer's view moves stuck conductances towards the level range by
    (beta - 1) x the level range, stopping half the range short of it; other encodings see the chip as it is."""
    device = DeviceModel(levels_uS=(133.0, 167.0, 200.0, 233.0), stuck_high_uS=500.0, stuck_low_uS=10.0)
    defects = (Defect(0, 1, 1, "stuck_high", 600.0), Defect(0, 2, 2, "stuck_low"), Defect(1, 0, 0, "stuck_high"))
    chip = Chip(arrays=tuple(Array(i, 8, 8) for i in range(8)), device=device, defects=defects)
    joint = _cost_view(chip, "joint", 3)  # absorb 2 x 100 uS, stay 50 uS outside [133, 233]
    assert [d.g_uS for d in joint.defects] == [400.0, None, None]
    assert (joint.device.stuck_high_uS, joint.device.stuck_low_uS) == (300.0, 83.0)  # 10 + 200 stops at 133 - 50
    assert _cost_view(chip, "joint", 1) is chip and _cost_view(chip, "rme", 3) is chip


def test_the_placers_view_never_moves_a_stuck_conductance_away_from_the_levels() -> None:
    # levels 100..300 uS (R = 200): the margin R / 2 reaches 0 uS and 400 uS, beyond stuck values of 10 and 350 uS
    device = DeviceModel(levels_uS=(100.0, 150.0, 200.0, 250.0, 300.0), stuck_high_uS=350.0, stuck_low_uS=10.0)
    chip = Chip(arrays=tuple(Array(i, 8, 8) for i in range(8)), device=device,
                defects=(Defect(0, 1, 1, "stuck_high", 900.0), Defect(0, 2, 2, "stuck_low")))
    view = _cost_view(chip, "joint", 2)
    assert (view.device.stuck_high_uS, view.device.stuck_low_uS) == (350.0, 10.0)  # already within the margin
    assert [d.g_uS for d in view.defects] == [700.0, None]  # 900 - 200
