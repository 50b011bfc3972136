"""A crossbar layer's reads as tables with records made on demand (`schedule.read_pairs`): the records lowering
makes when asked for are the ones it made eagerly before (field for field, type for type: a board file's bytes),
the tables and the records are made from each other without loss, and the simulator and the cost model never
ask for the records."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from lea_compiler.backends.cost import estimate_cost, read_runs
from lea_compiler.backends.crossbar import CrossbarLayer
from lea_compiler.backends.timing import block_columns, read_jobs
from lea_compiler.chip import synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.grouping import groups_reading
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.programming.devices import nominal_pulses, total_nominal_pulses
from lea_compiler.schedule.lower import inference_records, prepare, region_window
from lea_compiler.schedule.plan import layer_plans, schedule_of
from lea_compiler.schedule.read_pairs import CONVERT_FIELDS, ReadPairs, conversion_table, read_table
from lea_compiler.schedule.records import READ_FIELDS, Convert, Read
from tests.helpers import mlp_model


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> list[Program]:
    """A three-layer MLP on a chip with stuck devices and dead lines (k = 3, beta = 2), and the same with the bias
    as a crossbar row (a read's one_row) and three reads per region."""
    model = tmp_path_factory.mktemp("model") / "mlp.onnx"
    onnx.save(mlp_model((12, 16, 10, 4), seed=1), model)
    chip = synth_chip(arrays=90, rows=8, cols=8, stuck_high=0.08, stuck_low=0.04, dead_rows=0.02, seed=2)
    return [compile_model(model, chip, CompileOptions(k=3, beta=2, placer="greedy")).program,
            compile_model(model, chip, CompileOptions(k=2, bias="row", reads=3, placer="greedy")).program]


def eager_pairs(program: Program, name: str) -> list[tuple[Read, Convert]]:
    """A layer's read and convert records as lowering made them, one per copy half in a loop, before they were
    made on demand: the fields from the Program's blocks and copies, the ADC range the block's calibrated one or
    v_read x its largest column sum over its copy halves (each region's conductances from the arrays' programs)."""
    schedule = schedule_of(program)
    layer = program.layer(name)
    inputs = layer.rows - int(layer.bias_row)
    adcs = program.chip.periphery.adcs_per_array
    v_read = program.chip.periphery.v_read_V
    pairs = []
    for block in layer.blocks:
        rows, cols = block.shape
        one_row = layer.rows - 1 - block.row_start if layer.bias_row and block.row_stop == layer.rows else None
        reads = []
        for copy in block.copies:
            for polarity, half in (("pos", copy.pos), ("neg", copy.neg)):
                r = half.region
                reads.append(Read(name, block.index, copy.copy, polarity, r.array, r.row, r.col, rows, cols,
                                  min(block.row_start, inputs), min(block.row_stop, inputs), one_row, program.reads))
        full_scale = block.adc_full_scale_uA
        if full_scale is None:
            full_scale = v_read * max(float(np.max(np.sum(schedule.arrays[read.array].conductance(
                read, schedule.levels_uS), axis=0))) for read in reads)
        pairs += [(read, Convert(name, block.index, read.copy, read.polarity, read.array, read.col, read.col + cols,
                                 adcs, -(-cols // adcs), full_scale)) for read in reads]
    return pairs


def test_records_made_on_demand_are_the_eager_ones(programs: list[Program]) -> None:
    """Lowering's records, made from its tables when first asked for, equal the ones made one copy half at a time
    from the Program, with the same Python types (so a board file's JSON is the same bytes), and
    `inference_records` yields them in that order."""
    for program in programs:
        schedule = schedule_of(program)
        for name, plan in schedule.layers.items():
            assert not plan.pairs.made
            want = eager_pairs(program, name)
            got = list(plan.reads)
            assert plan.pairs.made and len(got) == len(want)
            for (read, convert), (want_read, want_convert) in zip(got, want, strict=True):
                assert read == want_read
                assert [type(v) for v in dataclasses.astuple(read)] == [type(v) for v in
                                                                          dataclasses.astuple(want_read)]
                assert dataclasses.replace(convert, full_scale_uA=0.0) == dataclasses.replace(want_convert,
                                                                                              full_scale_uA=0.0)
                assert type(convert.full_scale_uA) is float
                assert convert.full_scale_uA == pytest.approx(want_convert.full_scale_uA, rel=1e-12)
        streamed = [r for r in inference_records(prepare(program)) if isinstance(r, (Read, Convert))]
        assert streamed == [r for plan in schedule_of(program).layers.values() for pair in plan.reads for r in pair]
    assert any(read.one_row is not None for read, _ in schedule_of(programs[1]).layers["fc0"].reads)


def test_tables_and_records_make_each_other(programs: list[Program]) -> None:
    """Records -> tables -> records is the identity (None one_row and range, both polarities); a sequence of
    pairs given to a LayerPlan becomes a ReadPairs; indexing, slicing, length and the reads' view."""
    plan = schedule_of(programs[1]).layers["fc0"]
    pairs = list(plan.reads)
    pairs[0] = (pairs[0][0], dataclasses.replace(pairs[0][1], full_scale_uA=None))
    given = ReadPairs.of("fc0", pairs)
    assert given.made and len(given) == len(pairs)
    made = ReadPairs.from_tables("fc0", given.table, given.conversions, given.full_scales)
    assert len(made) == len(pairs) and not made.made  # the length does not make the records
    assert repr(made) == f"ReadPairs('fc0', {len(pairs)} reads, records not made)"
    assert np.isnan(made.full_scales[0]) and made[0][1].full_scale_uA is None
    assert list(made) == pairs and made[1:3] == tuple(pairs[1:3])
    view = made.reads()
    assert len(view) == len(pairs) and view[-1] == pairs[-1][0] and view[:2] == (pairs[0][0], pairs[1][0])
    np.testing.assert_array_equal(read_table([r for r, _ in pairs]), made.table)
    table, scales = conversion_table([c for _, c in pairs])
    assert table.shape == (len(pairs), len(CONVERT_FIELDS)) and not table.flags.writeable
    np.testing.assert_array_equal(table, made.conversions)
    np.testing.assert_array_equal(scales, made.full_scales)  # NaN where none
    replaced = dataclasses.replace(plan, reads=tuple(pairs))
    assert isinstance(replaced.reads, ReadPairs) and replaced.pairs.made
    assert replaced.convert_fields("adcs")[0].tolist() == [c.adcs for _, c in pairs]
    assert ReadPairs.of("fc0", given) is given and repr(given) == f"ReadPairs('fc0', {len(pairs)} reads)"


def test_tables_of_the_wrong_shape_are_refused() -> None:
    """Tables that are not one row per read, or neither records nor tables, are refused, naming what is wrong."""
    table = np.zeros((3, len(READ_FIELDS)), dtype=np.int64)
    with pytest.raises(ValueError, match=r"layer 'fc': tables of shapes \(3, 12\), \(2, 4\) and \(3,\) are not one "
                                         r"row per read"):
        ReadPairs.from_tables("fc", table, np.zeros((2, len(CONVERT_FIELDS)), dtype=np.int64), np.zeros(3))
    with pytest.raises(TypeError, match="ReadPairs needs the records or all three tables"):
        ReadPairs("fc", table=table)
    with pytest.raises(TypeError, match="ReadPairs takes the records or the tables, not both"):
        ReadPairs("fc", (), table=table)


def test_the_simulator_and_the_cost_model_make_no_records(programs: list[Program]) -> None:
    """Lowering, the cost model (with or without measured device energy), the timeline's jobs and the simulator's
    programming and executor read the tables only, and find what a board file's schedule (records from the file)
    gives: the same tables, the executor's ranges and reads per region."""
    program = programs[1]
    board = layer_plans(inference_records(prepare(program)))
    schedule = schedule_of(program, check=False)
    estimate_cost(program, program.chip, schedule)
    estimate_cost(program, program.chip, schedule, device_read_pJ={name: 1.0 for name in schedule.layers})
    for name, plan in schedule.layers.items():
        executor = CrossbarLayer(plan, schedule, program.chip, np.random.default_rng(0), ideal=False,
                                 exact_read_noise=False).executor
        assert executor.full_scale == [c.full_scale_uA for _, c in board[name].reads]
        assert executor.reads == [r.reads for r, _ in board[name].reads] and set(executor.reads) == {3}
        read_jobs(plan)
        assert not plan.pairs.made, name
        assert board[name].pairs.made
        np.testing.assert_array_equal(board[name].read_table, plan.read_table)
        np.testing.assert_array_equal(board[name].pairs.conversions, plan.pairs.conversions)
        np.testing.assert_array_equal(board[name].full_scales, plan.full_scales)


def test_block_columns_and_runs_as_the_records_give_them(programs: list[Program]) -> None:
    """Each read's block columns from the accumulate's terms (the last of a block listed twice; a block not
    listed: its conversion's width) and its runs, against a dict over the records; a grouped run's count is the
    groups reading the block."""
    plan = schedule_of(programs[0]).layers["fc0"]
    terms = list(plan.accumulate.terms)
    terms = [*terms[1:], (terms[-1][0], 0, 0)]  # block 0 not listed, the last block listed twice (no columns)
    changed = dataclasses.replace(plan, accumulate=dataclasses.replace(plan.accumulate, terms=tuple(terms)))
    listed = {b: (c0, c1) for b, c0, c1 in terms}
    want = [listed.get(r.block, (0, c.col_stop - c.col_start)) for r, c in plan.reads]
    c0, c1 = block_columns(changed)
    assert list(zip(c0.tolist(), c1.tolist(), strict=True)) == want
    assert read_runs(changed).tolist() == [int(b > a) for a, b in want]
    grouped = dataclasses.replace(changed, start=dataclasses.replace(plan.start, groups=2))
    assert read_runs(grouped).tolist() == [len(groups_reading(a, b, plan.start.cols, 2)) for a, b in want]


@pytest.mark.parametrize("dtype", [np.int8, np.int64])
def test_total_nominal_pulses_is_the_sum_over_written_devices(dtype: type) -> None:
    """`total_nominal_pulses` (the levels' sum plus their count) against `nominal_pulses` summed over the levels
    >= 0, with and without the unwritten devices given; none written: 0."""
    rng = np.random.default_rng(3)
    level = rng.integers(-2, 100, size=(37, 41)).astype(dtype)
    want = int(np.sum(nominal_pulses(level[level >= 0])))
    assert total_nominal_pulses(level) == want
    assert total_nominal_pulses(level, np.flatnonzero(level.ravel() < 0)) == want
    assert total_nominal_pulses(np.full(5, -1, dtype=dtype)) == 0 and total_nominal_pulses(np.zeros(0, dtype)) == 0


def test_the_lowered_skipped_devices_are_found_when_asked(programs: list[Program]) -> None:
    """`Lowered.marked` and `marked_target`, made when first asked for: each skipped device's place in the arrays'
    buffer and the level its block's target gives it, against the copy halves one by one."""
    program = programs[0]
    lowered = prepare(program)
    assert "marked" not in lowered.__dict__ and "marked_target" not in lowered.__dict__
    want_at, want_target = [], []
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for half, target in ((copy.pos, block.target_pos), (copy.neg, block.target_neg)):
                    r = half.region
                    rows, cols = np.shape(half.levels)
                    window = lowered.layout.view(np.arange(lowered.layout.size), r.array)[
                        region_window(Read("", 0, 0, "pos", r.array, r.row, r.col, rows, cols, 0, 0, None))]
                    skipped = np.asarray(half.levels) == -1
                    want_at += window[skipped].tolist()
                    want_target += np.asarray(target)[skipped].tolist()
    assert want_at and lowered.marked.tolist() == want_at and lowered.marked_target.tolist() == want_target
