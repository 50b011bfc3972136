"""The crossbar executor's set-up (`read_layout.lay_out`, `_row_conductance`, `_bands`), vectorised over
all reads at once, against a per-read reference kept here: the loops it replaced, read after read, which must
give the same values to the bit (the same float64 sums in the same order, the same float32 matrices)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from lea_compiler.backends.sim import CrossbarLayer
from lea_compiler.chip import synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidInputError
from lea_compiler.grouping import groups_reading
from lea_compiler.pipeline import CompileOptions
from lea_compiler.schedule import execute, read_layout
from lea_compiler.schedule.execute import CrossbarExecutor
from lea_compiler.schedule.plan import LayerPlan, schedule_of
from lea_compiler.schedule.regions import Regions
from tests.helpers import make_model

F = np.float32


def _plan_and_conductances(tmp_path: Path, channels: int, group: int, options: CompileOptions
                           ) -> tuple[LayerPlan, list[np.ndarray]]:
    """A 3 x 3 convolution ("dw") compiled for 16 x 16 arrays, and its regions as the simulator programs them."""
    r = np.random.default_rng(channels)
    model = make_model(
        [helper.make_node("Conv", ["x", "W", "b"], ["y"], name="dw", group=group, pads=[1, 1, 1, 1])],
        {"x": (F, ["N", channels, 5, 5])}, ["y"],
        {"W": r.standard_normal((channels, channels // group, 3, 3)).astype(F),
         "b": r.standard_normal(channels).astype(F)})
    onnx.save(model, tmp_path / "m.onnx")
    chip = synth_chip(arrays=40, rows=16, cols=16, stuck_high=0.02, stuck_low=0.01, seed=1)
    program = compile_model(tmp_path / "m.onnx", chip, options).program
    conductances = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0)).executor.conductances
    return schedule_of(program).layers["dw"], conductances


def _reference(executor: CrossbarExecutor) -> tuple[np.ndarray, list[tuple]]:
    """The row conductance and the bands of the per-read loops: each read's place, row sums and matrices one
    read after the other (later reads overwrite earlier ones, as assignment does)."""
    plan = executor.plan
    alpha, cols, groups = executor.alpha, executor.cols, executor.groups
    columns = {block: (c0, c1) for block, c0, c1 in plan.accumulate.terms}
    ids: dict[int, set[int]] = {}
    for read, _ in plan.reads:
        ids.setdefault(read.block, set()).add(read.copy)
    slots = {block: {copy: slot for slot, copy in enumerate(sorted(copies))} for block, copies in ids.items()}
    band_of: dict[int, tuple[int, int]] = {}
    layout = []
    for read, _ in plan.reads:
        band_of[read.block] = (read.x_start, read.x_start + read.rows)
        layout.append((*band_of[read.block], 0 if read.polarity == "pos" else 1, slots[read.block][read.copy],
                       *columns[read.block]))
    averaged = [(band_of[c.block], slots[c.block][copy], columns[c.block][0] + j, 1.0 / c.divisor)
                for c in plan.combines for j, chosen in enumerate(c.copies) for copy in chosen]
    total = np.zeros((groups, executor.rows))
    for (r0, r1, _, _, c0, _), g, reads in zip(layout, executor.conductances, executor.reads, strict=True):
        sums = reads * np.asarray(g, dtype=np.float64).sum(axis=1)
        for group in groups_reading(c0, c0 + g.shape[1], cols, groups):
            total[group, r0:r1] += sums
    adc = (1 << (executor.adc_bits - 1)) - 1
    bands: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    variances: dict[tuple[int, int], np.ndarray] = {}
    for k, ((r0, r1, polarity, slot, c0, c1), g, fs, reads) in enumerate(zip(
            layout, executor.read_maps, executor.full_scale, executor.reads, strict=True)):
        if (r0, r1) not in bands:
            bands[(r0, r1)] = (np.zeros((r1 - r0, 2, alpha, cols)), np.ones((2, alpha, cols)),
                               np.zeros((alpha, cols)), np.zeros((2, alpha, cols)))
        band_g, step, _, counts = bands[(r0, r1)]
        band_g[:, polarity, slot, c0:c1] = g
        if executor.read_sigma is not None:
            variances.setdefault((r0, r1), np.zeros_like(band_g))[:, polarity, slot, c0:c1] = \
                np.square(executor.read_sigma[k])
        step[polarity, slot, c0:c1] = fs / adc
        counts[polarity, slot, c0:c1] = reads
    for band, slot, column, weight in averaged:
        bands[band][2][slot, column] = weight
    prepared = []
    for (r0, r1), (band_g, step, mask, counts) in sorted(bands.items()):
        inv_step = (1.0 / step).reshape(-1)
        weights = np.concatenate([mask * step[0], -mask * step[1]])
        counts[counts == 0] = counts.max()
        uneven = counts.reshape(-1).astype(np.float32) if counts.min() != counts.max() else None
        g = executor._per_group((band_g.reshape(r1 - r0, -1) * inv_step).astype(np.float32))
        variance = None if (r0, r1) not in variances else executor._per_group(
            (variances[(r0, r1)].reshape(r1 - r0, -1) * np.square(inv_step)).astype(np.float32))
        prepared.append((r0, r1, g, inv_step.astype(np.float32), weights.astype(np.float32), int(counts.max()),
                         uneven, variance))
    return (total[0] if groups == 1 else total), prepared


def _assert_as_reference(executor: CrossbarExecutor) -> None:
    total, bands = _reference(executor)
    assert executor.row_conductance.dtype == np.float64
    np.testing.assert_array_equal(executor.row_conductance, total, strict=True)
    got = executor._bands()
    assert len(got) == len(bands)
    for band, want in zip(got, bands, strict=True):
        assert (band.r0, band.r1, band.reads) == (want[0], want[1], want[5])
        for value, expected in ((band.g, want[2]), (band.inv_step, want[3]), (band.weights, want[4]),
                                (band.counts, want[6]), (band.variance, want[7])):
            if expected is None:
                assert value is None
            else:
                np.testing.assert_array_equal(value, expected, strict=True)


CASES = [
    # 6 x 6 convolution: 54 inputs + the bias row in bands of 7 rows (the last of 6), 2 copies, 2 reads, blocks
    # of 13 columns (numpy sums rows of 9 or more in 8 partial sums: the reference sums them so too)
    (6, 1, CompileOptions(k=2, bias="row", block_rows=7, block_cols=13, reads=2, placer="greedy")),
    # 3 groups of 2 columns, blocks of 3 columns straddling the groups, 3 row bands
    (6, 3, CompileOptions(k=2, bias="row", block_rows=7, block_cols=3, reads=2, placer="greedy")),
    # depthwise: 8 groups of 1 column, 3 copies
    (8, 8, CompileOptions(k=3, block_cols=3, placer="greedy")),
]


@pytest.mark.parametrize("channels, group, options", CASES, ids=["dense", "grouped", "depthwise"])
def test_the_set_up_gives_what_the_per_read_loops_give_to_the_bit(tmp_path, channels, group, options) -> None:
    plan, conductances = _plan_and_conductances(tmp_path, channels, group, options)
    assert len({read.x_start for read, _ in plan.reads}) == (8 if group == 1 else 3 if group == 3 else 1)
    _assert_as_reference(CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=10))
    # float32 conductances of their own (not views of one buffer), a read-noise model, uneven reads per region
    rng = np.random.default_rng(3)
    own = [g.astype(F) for g in conductances]
    sigmas = [rng.uniform(0.0, 2.0, g.shape) for g in conductances]
    uneven = dataclasses.replace(plan, reads=tuple((dataclasses.replace(read, reads=1 + i % 3), convert)
                                                   for i, (read, convert) in enumerate(plan.reads)))
    executor = CrossbarExecutor(uneven, own, dac_bits=8, adc_bits=12, read_sigma_uS=sigmas,
                                read_maps=[g * 0.9 for g in conductances])
    _assert_as_reference(executor)
    assert any(band.counts is not None for band in executor._bands())
    executor.full_scale = [fs * 2 for fs in executor.full_scale]  # calibration's new ranges: the bands again
    _assert_as_reference(executor)


@pytest.mark.parametrize("channels, group, options", CASES[:2], ids=["dense", "grouped"])
def test_the_programmed_buffer_gives_the_layer_its_regions_give(tmp_path, channels, group, options) -> None:
    """The simulator's programmed devices as one buffer (`Regions`, read as it is) and as a list of separate
    arrays with the same values: the same row conductance, bands and noisy outputs, to the bit."""
    plan, conductances = _plan_and_conductances(tmp_path, channels, group, options)
    assert isinstance(conductances, Regions)
    apart = [np.array(g) for g in conductances]
    one, two = (CrossbarExecutor(plan, regions, dac_bits=8, adc_bits=10, read_noise_uS=0.4)
                for regions in (conductances, apart))
    assert one.conductances is conductances and one.read_maps is conductances
    np.testing.assert_array_equal(one.row_conductance, two.row_conductance, strict=True)
    for a, b in zip(one._bands(), two._bands(), strict=True):
        for field in dataclasses.fields(a):
            np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name), strict=True)
    x = np.random.default_rng(5).uniform(-1.0, 1.0, (9, *([group] if group > 1 else []), plan.start.inputs))
    np.testing.assert_array_equal(one.forward(x, np.random.default_rng(6)), two.forward(x, np.random.default_rng(6)),
                                  strict=True)
    assert one.read_power == two.read_power


def test_a_read_repeated_overwrites_as_the_per_read_loop_does(tmp_path) -> None:
    """A region read twice (a board file the validator refuses, but the executor runs what it is given): the
    later read's devices, ADC range and reads are the ones the band keeps, as assigning read by read leaves."""
    plan, conductances = _plan_and_conductances(tmp_path, *CASES[0])
    first, convert = plan.reads[0]
    again = (dataclasses.replace(first, reads=5), dataclasses.replace(convert, full_scale_uA=3.0))
    twice = dataclasses.replace(plan, reads=(*plan.reads, again))
    executor = CrossbarExecutor(twice, [*conductances, conductances[0] * 0.5], dac_bits=8, adc_bits=10)
    _assert_as_reference(executor)
    band = executor._bands()[0]
    assert band.counts is not None and band.counts.max() == 5



def test_blocks_of_two_widths_that_overlap_leave_the_later_ones_devices(tmp_path) -> None:
    """A hand-made block over all but the first of another block's columns, on the same devices shifted by one
    (regions of two shapes filling some columns twice): the later block's devices and ranges stay where they
    overlap, as assigning read after read leaves them, not as placing one shape at a time would."""
    plan, conductances = _plan_and_conductances(tmp_path, *CASES[0])
    block = plan.reads[0][0].block
    chosen = [i for i, (read, _) in enumerate(plan.reads) if read.block == block]
    combine = next(c for c in plan.combines if c.block == block)
    assert combine.col_stop - combine.col_start > 1
    extra = 1 + max(read.block for read, _ in plan.reads)
    reads = [(dataclasses.replace(read, block=extra, col=read.col + 1, cols=read.cols - 1),
              dataclasses.replace(convert, block=extra, col_start=convert.col_start + 1, full_scale_uA=3.0))
             for read, convert in (plan.reads[i] for i in chosen)]
    narrower = dataclasses.replace(combine, block=extra, col_start=combine.col_start + 1,
                                   copies=combine.copies[1:])
    terms = (*plan.accumulate.terms, (extra, combine.col_start + 1, combine.col_stop))
    overlapping = dataclasses.replace(plan, reads=(*plan.reads, *reads), combines=(*plan.combines, narrower),
                                      accumulate=dataclasses.replace(plan.accumulate, terms=terms))
    _assert_as_reference(CrossbarExecutor(overlapping, [*conductances, *(conductances[i][:, 1:] for i in chosen)],
                                          dac_bits=8, adc_bits=10))


def test_a_column_slot_no_read_fills_is_as_the_per_read_loop_leaves_it(tmp_path) -> None:
    """A block whose G- reads are missing (a hand-made plan): the slots no read fills weigh nothing and take
    their band's count, as the per-read loop leaves them."""
    plan, conductances = _plan_and_conductances(tmp_path, *CASES[0])
    block = plan.reads[0][0].block
    keep = [i for i, (read, _) in enumerate(plan.reads) if not (read.block == block and read.polarity == "neg")]
    assert len(keep) < len(plan.reads)
    cut = dataclasses.replace(plan, reads=tuple(plan.reads[i] for i in keep))
    _assert_as_reference(CrossbarExecutor(cut, [conductances[i] for i in keep], dac_bits=8, adc_bits=10))

def test_conductances_that_are_not_the_reads_regions_are_refused(tmp_path) -> None:
    plan, conductances = _plan_and_conductances(tmp_path, *CASES[0])
    shape = conductances[1].shape
    with pytest.raises(InvalidInputError, match=rf"layer 'dw': the conductances of read 1 are \({shape[0]}, 1\), "
                                                rf"its region \({shape[0]}, {shape[1]}\)"):
        CrossbarExecutor(plan, [conductances[0], conductances[1][:, :1], *conductances[2:]], dac_bits=8, adc_bits=8)
    with pytest.raises(InvalidInputError, match=f"layer 'dw': {len(conductances) - 1} read maps for "
                                                f"{len(conductances)} reads"):
        CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=8, read_maps=conductances[1:])


def test_a_combine_of_a_copy_the_block_does_not_read_is_refused(tmp_path) -> None:
    plan, conductances = _plan_and_conductances(tmp_path, *CASES[0])
    combine = plan.combines[1]
    wrong = dataclasses.replace(combine, copies=((99,), *combine.copies[1:]))
    bad = dataclasses.replace(plan, combines=(plan.combines[0], wrong, *plan.combines[2:]))
    with pytest.raises(InvalidInputError, match=f"layer 'dw': the combine of block {combine.block} averages copies "
                                                "or columns the block's reads do not give"):
        CrossbarExecutor(bad, conductances, dac_bits=8, adc_bits=8)
    assert not math.isnan(CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=8).row_conductance.sum())


def test_entries_of_shared_and_separate_tuples_are_the_tuples_end_to_end() -> None:
    """`_entries` reads a tuple object that rows share once; the values are those of every row laid end to end,
    whichever rows share their tuple (equal tuples that are separate objects, an empty one, none shared)."""
    shared, other = (4, 0, 2), (7,)
    for rows in ([shared, other, shared, (), other, tuple([4, 0, 2]), (9, 9)], [(1,), (2, 3)], []):
        values, lengths = read_layout._entries(list(rows))
        np.testing.assert_array_equal(values, np.array([v for row in rows for v in row], dtype=np.int64),
                                      strict=True)
        np.testing.assert_array_equal(lengths, np.array([len(row) for row in rows], dtype=np.int64), strict=True)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 40), shape=st.sampled_from([(3,), (1,), (2, 5), (7,), (40,)]), piece=st.integers(1, 9),
       seed=st.integers(0, 2**32 - 1), order=st.sampled_from("CF"))
def test_squares_down_sums_as_numpy_does_to_the_bit(rows, shape, piece, seed, order) -> None:
    """`squares_down` (the read power's column sums, a piece of rows at a time) against numpy's sum of the whole
    array of float64 squares: the same float64 sums, to the bit, whatever the piece size, carried across pieces,
    and whatever v's memory order (numpy sums a Fortran-ordered array pairwise along its columns); NaN and
    infinity where numpy gives them."""
    v = np.random.default_rng(seed).standard_normal((rows, *shape)).astype(np.float32) * F(1e3)
    v = np.asarray(v, order=order)
    if rows > 2:
        v[1].flat[0] = np.nan
        v[2].flat[-1] = np.inf
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execute, "_SQUARE_ROWS", piece)
        found = execute.squares_down(v)
    np.testing.assert_array_equal(found, np.square(v, dtype=np.float64).sum(axis=0), strict=True)


def test_the_forward_does_not_write_its_float32_input(tmp_path) -> None:
    """The forward reads a float32 input as it is (no copy of it made) and leaves it as it was given."""
    channels, group, options = CASES[0]
    plan, conductances = _plan_and_conductances(tmp_path, channels, group, dataclasses.replace(options,
                                                                                               bias="digital"))
    assert plan.start.rows == plan.start.inputs  # no bias row: the input is not joined to a column of ones
    executor = CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=10, read_noise_uS=0.4)
    x = np.random.default_rng(5).uniform(-3.0, 3.0, (9, plan.start.inputs)).astype(F)
    given = x.copy()
    executor.forward(x, np.random.default_rng(6))
    np.testing.assert_array_equal(x, given, strict=True)


@pytest.mark.parametrize("channels, group, options", CASES[:2], ids=["dense", "grouped"])
@pytest.mark.parametrize("x_fs", [None, 0.7])
def test_the_dac_in_pieces_gives_what_it_gives_whole(tmp_path, channels, group, options, x_fs) -> None:
    """The DAC step a few vectors at a time (`_DAC_ROWS`) against all of them at once: the same outputs and read
    power, to the bit, with each vector's own full scale and with the layer's."""
    plan, conductances = _plan_and_conductances(tmp_path, channels, group, options)
    x = np.random.default_rng(5).uniform(-2.0, 2.0, (11, *([group] if group > 1 else []), plan.start.inputs))
    x[3] = 0.0  # a vector of zeros: full scale x_fs_min
    found = []
    for rows in (2, 10**6):
        executor = CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=10, read_noise_uS=0.4)
        executor.x_fs = x_fs
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(execute, "_DAC_ROWS", rows)
            found.append((executor.forward(x, np.random.default_rng(6)), executor.read_power))
    np.testing.assert_array_equal(found[0][0], found[1][0], strict=True)
    assert found[0][1] == found[1][1]


def test_a_transposed_input_reads_the_power_it_read_before(tmp_path) -> None:
    """A float32 input in Fortran order (a transposed view, as a Transpose before a MatMul gives one sample):
    the DAC keeps its memory order and the read power is numpy's sum of that array's squares, to the bit, as
    when the whole-array passes made it (the pairwise sum along memory, not the row-by-row one)."""
    channels, group, options = CASES[0]
    plan, conductances = _plan_and_conductances(tmp_path, channels, group, dataclasses.replace(options,
                                                                                               bias="digital"))
    x = np.asfortranarray(np.random.default_rng(5).uniform(-2.0, 2.0, (300, plan.start.inputs)).astype(F))
    executor = CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=10, read_noise_uS=0.4)
    seen = []
    original = executor.read_power_of
    executor.read_power_of = lambda v: (seen.append(v), original(v))[1]  # type: ignore[method-assign]
    executor.forward(x, np.random.default_rng(6))
    assert seen[0].flags.f_contiguous and not seen[0].flags.c_contiguous
    expected = float(np.sum(np.square(seen[0], dtype=np.float64).sum(axis=0) * executor.row_conductance))
    assert executor.read_power == expected
