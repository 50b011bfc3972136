"""Grouped products (lea_compiler/grouping.py): each group's vectors times its own columns only, everywhere.

The definitions are checked by brute force; the crossbar executor's grouped path against its ungrouped path run
on every vector with the other groups' columns dropped (what it computed before, at G times the cost); the
read noise's per-group scale and its chunking; and the memory of one forward, calibration and reference run
of a depthwise layer with tracemalloc (numpy reports its allocations to it), against the layer's own input and
output bytes: before the fix each took a (..., G, O) intermediate, 66x and 54x those bytes at G = 128.
"""

from __future__ import annotations

import dataclasses
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.backends.board import emit_board
from lea_compiler.backends.sim import CrossbarLayer, Dataset, EventCounts
from lea_compiler.calibration import calibrate
from lea_compiler.chip import synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidInputError
from lea_compiler.grouping import group_columns, grouped_matmul, split_columns, vector_runs
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.schedule.execute import CrossbarExecutor, NoiseSpan
from lea_compiler.schedule.plan import schedule_of
from tests.helpers import make_model

F = np.float32
T = TypeVar("T")


def test_group_definitions_by_hand() -> None:
    assert [group_columns(g, 6, 3) for g in range(3)] == [(0, 2), (2, 4), (4, 6)]
    a = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(split_columns(a, 3)[1], [[6, 7], [8, 9], [10, 11]])  # column o: group o // 2
    runs = vector_runs(np.arange(10).reshape(5, 2)[:4], 2)
    np.testing.assert_array_equal(runs[:, 1], [[2, 3], [6, 7]])  # vectors 1 and 3: group 1 = i mod 2
    with pytest.raises(ValueError, match="5 vectors are not runs of 2"):
        vector_runs(np.zeros((5, 3)), 2)
    with pytest.raises(ValueError, match="groups=4 does not divide the 6 columns"):
        group_columns(0, 6, 4)


@pytest.mark.parametrize("lead, groups, depth, width", [((7,), 3, 4, 2), ((2, 3), 5, 1, 3), ((0,), 2, 3, 1)])
def test_grouped_matmul_is_each_groups_vector_times_its_own_columns(lead, groups, depth, width) -> None:
    r = np.random.default_rng(1)
    x, w = r.standard_normal((*lead, groups, depth)), r.standard_normal((depth, groups * width))
    want = np.empty((*lead, groups * width))
    for o in range(groups * width):  # brute force, column by column
        want[..., o] = x[..., o // width, :] @ w[:, o]
    np.testing.assert_allclose(grouped_matmul(x, w), want, rtol=1e-12, atol=1e-12)


def _program(tmp_path: Path, channels: int, group: int, options: CompileOptions, spatial: int = 5) -> Program:
    r = np.random.default_rng(channels)
    model = make_model(
        [helper.make_node("Conv", ["x", "W", "b"], ["y"], name="dw", group=group, pads=[1, 1, 1, 1])],
        {"x": (F, ["N", channels, spatial, spatial])}, ["y"],
        {"W": r.standard_normal((channels, channels // group, 3, 3)).astype(F),
         "b": r.standard_normal(channels).astype(F)})
    onnx.save(model, tmp_path / "m.onnx")
    chip = synth_chip(arrays=16, rows=16, cols=16, stuck_high=0.02, stuck_low=0.01, seed=1)
    return compile_model(tmp_path / "m.onnx", chip, options).program


def _vectors(program: Program, samples: int, seed: int = 1) -> np.ndarray:
    node = program.graph.node("dw")
    shape = program.graph.inputs[0].shape
    x = np.random.default_rng(seed).standard_normal((samples, *shape[1:])).astype(F)
    return interpreter.run(program.graph, {"x": x}, keep=[node.input(0).name])[node.input(0).name]


@pytest.mark.parametrize("channels, group, options, bands", [
    # 3 groups of 2 columns, 18 inputs + the bias row in 3 row bands, blocks of 3 columns (straddling groups),
    # 2 copies, 2 reads per region
    (6, 3, CompileOptions(k=2, bias="row", block_rows=7, block_cols=3, reads=2, placer="greedy"), 3),
    # depthwise: 8 groups of 1 column, 9 inputs, blocks of 3 columns, 3 copies
    (8, 8, CompileOptions(k=3, block_cols=3, placer="greedy"), 1),
], ids=["grouped", "depthwise"])
def test_the_grouped_executor_is_the_ungrouped_one_with_each_vector_on_its_own_columns(
        tmp_path, channels, group, options, bands) -> None:
    program = _program(tmp_path, channels, group, options)
    plan = schedule_of(program).layers["dw"]
    start = plan.start
    assert (start.groups, len(start.row_blocks), len(start.col_blocks)) == (group, bands, -(-channels // 3))
    conductances = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0)).executor.conductances
    ungrouped = dataclasses.replace(plan, start=dataclasses.replace(plan.start, groups=1))
    x = _vectors(program, 4)  # (4, 5, 5, G, K)
    width, index = channels // group, np.arange(group)
    for x_fs in (None, 3.0):  # each vector's own DAC range, or the layer's
        # the two sum a current's float32 products in their own order, which can round a current to the other
        # side of an ADC step: with 24-bit ADCs a step is ~2e-7 of the largest output (1e-3 at 12 bits)
        grouped, every = (CrossbarExecutor(p, conductances, dac_bits=8, adc_bits=24) for p in (plan, ungrouped))
        grouped.x_fs = every.x_fs = x_fs
        y = grouped.forward(x)
        full = every.forward(x)  # (4, 5, 5, G, channels): every vector on every column
        own = full.reshape(4, 5, 5, group, group, width)[..., index, index, :].reshape(4, 5, 5, channels)
        assert y.shape == (4, 5, 5, channels)
        np.testing.assert_allclose(y, own, rtol=0, atol=1e-5 * np.abs(own).max())


def test_a_grouped_executor_refuses_vectors_that_are_not_runs_of_its_groups(tmp_path) -> None:
    program = _program(tmp_path, 6, 3, CompileOptions(k=1, placer="greedy"))
    executor = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0)).executor
    with pytest.raises(InvalidInputError, match=r"layer 'dw': its input \(4, 2, 18\) is not runs of 3 vectors "
                                                r"\(one per group\) on axis -2"):
        executor.forward(np.zeros((4, 2, 18), F))


@pytest.mark.parametrize("exact", [False, True])
def test_a_grouped_layers_read_noise_scales_with_its_own_groups_vector(tmp_path, exact) -> None:
    program = _program(tmp_path, 6, 3, CompileOptions(k=2, block_rows=7, block_cols=3, placer="greedy"))
    plan = schedule_of(program).layers["dw"]
    conductances = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0)).executor.conductances
    noisy, clean = (CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=12, read_noise_uS=noise,
                                     exact_read_noise=exact) for noise in (10.0, 0.0))
    x = _vectors(program, 3)
    x[..., 1, :] = 0.0  # group 1's vectors drive 0 V: its columns (2 and 3) read no noise
    y, ideal = noisy.forward(x, np.random.default_rng(5)), clean.forward(x)
    np.testing.assert_array_equal(y[..., 2:4], ideal[..., 2:4])
    assert np.all(np.abs(y[..., [0, 1, 4, 5]] - ideal[..., [0, 1, 4, 5]]).max(axis=(0, 1, 2)) > 0)
    # a block run in pieces (memory chunks) draws the noise it draws in one piece
    whole = noisy.forward(x, noise=NoiseSpan(123, 3, 0))
    parts = [noisy.forward(x[lo:hi], noise=NoiseSpan(123, 3, lo)) for lo, hi in ((0, 1), (1, 3))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def _peak_bytes(run: Callable[[], T]) -> tuple[int, T]:
    """The most bytes traced at once while `run` runs (numpy's arrays included), and its result."""
    tracemalloc.start()
    try:
        result = run()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def test_a_depthwise_layers_forward_calibration_and_reference_run_take_a_few_times_its_own_bytes(tmp_path) -> None:
    # 128 channels: computing every column for every group's vector took a (..., 128, 128) intermediate (66x the
    # layer's input and output bytes in the executor, 54x in calibration); each group on its own columns takes 4x
    # and 5.4x, whatever G
    program = _program(tmp_path, 128, 128, CompileOptions(k=1, placer="greedy"), spatial=6)
    x = _vectors(program, 4)  # (4, 6, 6, 128, 9)
    layer = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0))
    peak, y = _peak_bytes(lambda: layer.forward(x, np.random.default_rng(1), EventCounts()))
    own = x.nbytes + y.nbytes
    assert y.shape == (4, 6, 6, 128)
    assert peak < 8 * own, peak / own
    data = np.random.default_rng(2).standard_normal((4, 128, 6, 6)).astype(F)
    peak, _ = _peak_bytes(lambda: calibrate(program, [Dataset("d", data, np.zeros(4, np.int64))], program.chip))
    assert peak < 10 * own, peak / own
    graph = Canonicalize().run(import_model(onnx.load(tmp_path / "m.onnx")))
    peak, _ = _peak_bytes(lambda: interpreter.run(graph, {"x": data}))
    assert peak < 3 * own, peak / own  # the patches (9x the output) and the output


def test_a_board_files_grouped_vectors_per_sample_must_be_runs_of_the_groups(tmp_path, capsys) -> None:
    program = _program(tmp_path, 4, 4, CompileOptions(k=1, placer="greedy"))
    path = tmp_path / "dw.jsonl"
    emit_board(program, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    (start,) = [r for r in lines if r.get("op") == "layer"]
    assert (start["groups"], start["vectors_per_sample"]) == (4, 100)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r | {"vectors_per_sample": 98} if r.get("op") == "layer" else r)
                             for r in lines) + "\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["board", "validate", str(bad)]) != 0
    printed = capsys.readouterr()
    assert "layer.groups: 98 vectors per sample are not runs of 4 (one per group)" in printed.out + printed.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_grouped_layers_read_energy_is_v_squared_on_every_device_of_the_regions_it_drives(tmp_path) -> None:
    """Brute force over reads, runs and groups: vector g of a run drives V_i^2 into every device on the rows of
    each region it reads (those holding a column of group g), N times for N reads: the other groups' columns of
    the region conduct too (their bit lines are at virtual ground; they are only not converted)."""
    program = _program(tmp_path, 6, 3, CompileOptions(k=2, bias="row", block_rows=7, block_cols=3, reads=2,
                                                      placer="greedy"))
    plan = schedule_of(program).layers["dw"]
    conductances = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0)).executor.conductances
    executor = CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=24)
    executor.x_fs = 3.0
    x = _vectors(program, 2)  # (2, 5, 5, G, K)
    executor.forward(x)
    dac = 127
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    flat = np.hstack([flat, np.ones((len(flat), 1))])  # the bias row
    v = plan.scale.v_read_V * np.round(np.clip(flat / 3.0, -1, 1) * dac) / dac
    columns = {block: c0 for block, c0, _ in plan.accumulate.terms}
    width = 6 // 3
    want = 0.0
    for (read, _), g in zip(plan.reads, conductances, strict=True):
        for index, vector in enumerate(v):
            group = index % 3  # vector i of the flattened runs is group i mod G
            if any((columns[read.block] + j) // width == group for j in range(g.shape[1])):  # it reads the region
                rows = vector[read.x_start:read.x_start + read.rows]
                for j in range(g.shape[1]):  # every column of the region, whichever group's
                    want += read.reads * float(np.sum(rows**2 * g[:, j]))
    assert executor.read_power == pytest.approx(want, rel=1e-6)  # the executor's voltages are float32


def test_group_overlaps_and_groups_reading_count_each_groups_columns_of_a_block_by_brute_force() -> None:
    from lea_compiler.grouping import group_overlaps, groups_reading

    cols, groups = 12, 4  # groups of 3 columns
    blocks = [(c0, c1) for c0 in range(cols) for c1 in range(c0, cols + 1)]
    overlaps = group_overlaps(np.array([b[0] for b in blocks]), np.array([b[1] for b in blocks]), cols, groups)
    for (c0, c1), row in zip(blocks, overlaps, strict=True):
        counts = [sum(1 for c in range(c0, c1) if c // 3 == g) for g in range(groups)]
        assert np.maximum(row, 0).tolist() == counts
        assert list(groups_reading(c0, c1, cols, groups)) == [g for g in range(groups) if counts[g]]
