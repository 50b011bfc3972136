"""The board backend: emit, read back, validate, and `leac emit` / `leac board validate`.

Programs are compiled from the inline test models on small synthetic chips
with a few percent stuck devices (greedy placer: fast, and it leaves some
stuck devices inside copies, so the stream has skips to check).
"""

from __future__ import annotations

import dataclasses
import json
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest

from lea_compiler.backends import BACKENDS, board
from lea_compiler.backends.board import (
    RECORD_TYPES,
    Accumulate,
    Bias,
    BoardStream,
    Combine,
    Convert,
    Digital,
    LayerStart,
    Read,
    SelectArray,
    Skip,
    Write,
    board_schedule,
    board_stream,
    emit_board,
    read_board,
    validate_board,
)
from lea_compiler.chip import Array, Chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.ir import Graph
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.schedule.digital import digital_record
from lea_compiler.schedule.execute import CrossbarExecutor
from tests.helpers import cnn_model, mlp_model


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Program:
    """4-12-6-3 MLP, k=3 beta=2, digital bias, on 3 arrays with 5% + 2% stuck devices."""
    folder = tmp_path_factory.mktemp("mlp")
    onnx.save(mlp_model(), folder / "mlp.onnx")
    chip = synth_chip(arrays=3, rows=25, cols=25, stuck_high=0.05, stuck_low=0.02, seed=3)
    options = CompileOptions(k=3, beta=2, placer="greedy")
    return compile_model(folder / "mlp.onnx", chip, options).program


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Program:
    """Small CNN (im2col), k=2, bias rows, 8x8 blocks (several row and column blocks)."""
    folder = tmp_path_factory.mktemp("cnn")
    onnx.save(cnn_model(), folder / "cnn.onnx")
    chip = synth_chip(arrays=12, rows=16, cols=16, stuck_high=0.04, stuck_low=0.01, seed=1)
    options = CompileOptions(k=2, bias="row", block_rows=8, block_cols=8, placer="greedy")
    return compile_model(folder / "cnn.onnx", chip, options).program


@pytest.fixture(params=["mlp", "cnn"])
def program(request: pytest.FixtureRequest) -> Program:
    return request.getfixturevalue(request.param)


@pytest.fixture
def board_file(mlp: Program, tmp_path: Path) -> Path:
    path = tmp_path / "mlp.board.jsonl"
    emit_board(mlp, path)
    return path


def _halves(program: Program):
    """(layer, block, copy, polarity, region, levels) for every copy half of the Program."""
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for polarity, half in (("pos", copy.pos), ("neg", copy.neg)):
                    yield layer, block, copy.copy, polarity, half.region, half.levels


# ------------------------------------------------------------------ registry


def test_registry_and_record_kinds_are_explicit() -> None:
    assert BACKENDS == {"board": emit_board}
    for op, kind in RECORD_TYPES.items():
        assert kind.op == op
        assert list(board._SCHEMAS[op]) == [f.name for f in dataclasses.fields(kind)]


# ---------------------------------------------------------- emit / round trip


def test_round_trip_and_byte_identical(program: Program, tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    summary = emit_board(program, first)
    emit_board(program, second)
    assert first.read_bytes() == second.read_bytes()
    stream = read_board(first)
    assert stream == board_stream(program)  # every record, typed, equal to what was emitted
    assert stream.to_text().encode() == first.read_bytes()
    # a saved and reloaded Program emits the same bytes
    program.save(tmp_path / "p.leac")
    emit_board(Program.load(tmp_path / "p.leac"), second)
    assert second.read_bytes() == first.read_bytes()
    assert validate_board(first) == []
    text = first.read_text()
    assert text.isascii() and text.endswith("\n")
    assert summary.bytes == len(first.read_bytes())
    assert summary.records == len(text.splitlines()) - 1 == len(stream.records)
    assert (summary.writes, summary.skips) == (len(stream.of(Write)), len(stream.of(Skip)))
    assert (summary.arrays, summary.reads) == (len(stream.of(SelectArray)), len(stream.of(Read)))


def test_every_device_appears_once_and_skips_are_the_stuck_ones(program: Program) -> None:
    stream = board_stream(program)
    levels = program.chip.device.levels_uS
    writes = {(w.array, w.row, w.col): w for w in stream.of(Write)}
    skips = {(s.array, s.row, s.col): s for s in stream.of(Skip)}
    assert len(writes) == len(stream.of(Write)) and len(skips) == len(stream.of(Skip))
    assert not writes.keys() & skips.keys()
    assert len(writes) + len(skips) == program.devices_used
    assert skips, "the test chips are meant to leave some stuck devices inside copies"
    stuck_maps = {a: program.chip.stuck_map(a) for a in program.arrays_used}
    for layer, block, copy, polarity, region, half_levels in _halves(program):
        state, g_uS = stuck_maps[region.array]
        targets = block.target_pos if polarity == "pos" else block.target_neg
        for (r, c), level in np.ndenumerate(half_levels):
            key = (region.array, region.row + r, region.col + c)
            if level == -1:
                skip = skips[key]
                assert state[key[1], key[2]] != 0
                assert skip.state == ("stuck_high" if state[key[1], key[2]] > 0 else "stuck_low")
                assert skip.g_uS == g_uS[key[1], key[2]]
                assert (skip.layer, skip.block, skip.copy, skip.polarity) == (
                    layer.name,
                    block.index,
                    copy,
                    polarity,
                )
                assert skip.target_level == targets[r, c]
            else:
                write = writes[key]
                assert state[key[1], key[2]] == 0
                assert write.level == level and write.target_uS == levels[level]
    header = stream.header
    assert header.counts["write"] == len(writes) and header.counts["skip"] == len(skips)
    assert sum(header.skipped.values()) == len(skips)
    assert header.tolerance_uS == pytest.approx(33 / 4)  # a quarter of min(167-133, 200-167, ...)
    assert header.levels_uS == levels and header.max_pulses == 50
    assert all(
        w.tolerance_uS == header.tolerance_uS and w.max_pulses == 50 for w in writes.values()
    )


def test_programming_is_grouped_by_array(program: Program) -> None:
    stream = board_stream(program)
    selects = stream.of(SelectArray)
    assert [s.array for s in selects] == program.arrays_used  # one per array, ascending
    assert [a.id for a in stream.header.arrays] == program.arrays_used
    current, position, seen = None, None, 0
    for record in stream.records:
        if isinstance(record, SelectArray):
            current, position, seen = record, None, 0
        elif isinstance(record, (Write, Skip)):
            assert current is not None and record.array == current.array
            assert position is None or (record.row, record.col) > position  # row, then col
            position, seen = (record.row, record.col), seen + 1
            if seen == current.devices:
                current = None
        else:
            break
    kinds = [type(r) for r in stream.records]
    first_schedule = next(i for i, k in enumerate(kinds) if k not in (SelectArray, Write, Skip))
    assert all(k not in (SelectArray, Write, Skip) for k in kinds[first_schedule:])


def test_schedule_follows_the_graph(program: Program) -> None:
    stream = board_stream(program)
    schedule = [r for r in stream.records if isinstance(r, (Digital, LayerStart))]
    nodes = program.graph.nodes
    assert [r.node if isinstance(r, Digital) else r.name for r in schedule] == [
        n.name for n in nodes
    ]
    for record, node in zip(schedule, nodes, strict=True):
        is_mvm = node.op_type == "MVM" and node.domain == "leac"
        assert isinstance(record, LayerStart) == is_mvm
        if isinstance(record, Digital):
            assert (record.op_type, record.domain) == (node.op_type, node.domain)
            assert list(record.inputs) == [v.name if v else None for v in node.inputs]
            assert list(record.outputs) == [v.name for v in node.outputs]
            json.dumps(record.attrs, allow_nan=False)  # JSON-safe
    for layer in program.layers:
        reads = [r for r in stream.of(Read) if r.layer == layer.name]
        assert len(reads) == len({(r.block, r.copy, r.polarity) for r in reads})
        assert len(reads) == len(layer.blocks) * layer.alpha * 2
        regions = {
            (block.index, copy, polarity): (region, block.shape)
            for owner, block, copy, polarity, region, _ in _halves(program)
            if owner is layer
        }
        for read in reads:
            region, shape = regions[(read.block, read.copy, read.polarity)]
            assert (read.array, read.row, read.col) == (region.array, region.row, region.col)
            assert (read.rows, read.cols) == shape
        combines = [r for r in stream.of(Combine) if r.layer == layer.name]
        assert len(combines) == len(layer.blocks)
        for combine, block in zip(combines, layer.blocks, strict=True):
            assert combine.divisor == layer.beta
            for j, chosen in enumerate(combine.copies):
                assert list(chosen) == np.flatnonzero(block.selection[:, j]).tolist()
        biases = [r for r in stream.of(Bias) if r.layer == layer.name]
        digital_bias = program.graph.node(layer.name).input(2) is not None and not layer.bias_row
        assert len(biases) == int(digital_bias)


def _execute_layer(stream: BoardStream, name: str, x: np.ndarray) -> np.ndarray:
    """Run one layer's records, read back from the file, with the schedule interpreter: every device at the
    conductance the file gives it (writes at their target, skips at their stuck value) and 24-bit DACs and
    ADCs, whose steps lie below the interpreter's float32 resolution."""
    schedule = board_schedule(stream)
    plan = schedule.layers[name]
    conductances = [schedule.arrays[read.array].conductance(read, schedule.levels_uS) for read, _ in plan.reads]
    return CrossbarExecutor(plan, conductances, dac_bits=24, adc_bits=24).forward(x[None, :])[0]


def _expected_layer(program: Program, name: str, x: np.ndarray) -> np.ndarray:
    """x @ (the matrix the Program puts on the chip, stuck devices included), compensated, + digital bias."""
    layer = program.layer(name)
    levels = np.asarray(program.chip.device.levels_uS)
    matrix = np.zeros((layer.rows, layer.cols))
    for block in layer.blocks:
        diffs = []
        for copy in block.copies:
            halves = []
            for half in (copy.pos, copy.neg):
                _, g_stuck = program.chip.stuck_map(half.region.array)
                rows, cols = half.levels.shape
                window = g_stuck[
                    half.region.row : half.region.row + rows,
                    half.region.col : half.region.col + cols,
                ]
                halves.append(
                    np.where(half.levels >= 0, levels[np.maximum(half.levels, 0)], window)
                )
            diffs.append(halves[0] - halves[1])
        mean = (np.stack(diffs) * block.selection[:, None, :]).sum(axis=0) / layer.beta
        matrix[block.row_start : block.row_stop, block.col_start : block.col_stop] = mean
    matrix /= layer.scale
    x_aug = np.concatenate([x, [1.0]]) if layer.bias_row else x
    y = x_aug @ matrix
    if layer.column_gain is not None:  # the stuck-device compensation (passes/compensate.py)
        y = y * layer.column_gain + layer.column_offset
    bias = program.graph.node(name).input(2)
    if bias is not None and not layer.bias_row:
        y = y + bias.const
    return y


def test_executing_the_schedule_computes_each_layer(program: Program) -> None:
    """The read/convert/combine/accumulate/scale/bias records, executed, give x @ W_programmed + b for every
    layer (bias rows, row blocks and compensation included) to float32's resolution."""
    stream = board_stream(program)
    rng = np.random.default_rng(0)
    for layer in program.layers:
        inputs = layer.rows - int(layer.bias_row)
        for magnitude in (0.3, 5.0):  # below and above the bias row's x_fs floor of 1
            x = rng.standard_normal(inputs) * magnitude
            got = _execute_layer(stream, layer.name, x)
            expected = _expected_layer(program, layer.name, x)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(expected))))


def test_layer_records_describe_the_layer(cnn: Program) -> None:
    stream = board_stream(cnn)
    conv1 = next(r for r in stream.of(LayerStart) if r.name == "conv1")
    assert (conv1.rows, conv1.inputs, conv1.bias_row, conv1.bias) == (10, 9, True, "row")
    assert conv1.vectors_per_sample == 64  # 8 x 8 output pixels
    assert conv1.row_blocks == ((0, 5), (5, 10))
    reads = [r for r in stream.of(Read) if r.layer == "conv1"]
    assert {(r.block, r.x_start, r.x_stop, r.one_row) for r in reads} == {
        (0, 0, 5, None),
        (1, 5, 9, 4),
    }
    conv2 = next(r for r in stream.of(LayerStart) if r.name == "conv2")
    assert conv2.bias == "none" and len(conv2.row_blocks) == 5
    accumulate = next(r for r in stream.of(Accumulate) if r.layer == "conv2")
    assert len(accumulate.terms) == 5  # five row blocks' partial sums into one column range
    convert = stream.of(Convert)[0]
    assert convert.adcs == 1 and convert.rounds == convert.col_stop - convert.col_start


def test_options_and_their_errors(mlp: Program, tmp_path: Path) -> None:
    stream = board_stream(mlp, tolerance_uS=5, max_pulses=7)
    assert stream.header.tolerance_uS == 5.0 and stream.header.tolerance_rule == "given"
    assert all(w.tolerance_uS == 5.0 and w.max_pulses == 7 for w in stream.of(Write))
    for bad in ({"tolerance_uS": 0.0}, {"tolerance_uS": float("nan")}, {"max_pulses": 0}):
        with pytest.raises(UsageError):
            emit_board(mlp, tmp_path / "x.jsonl", **bad)
    assert not (tmp_path / "x.jsonl").exists()


def test_a_program_that_contradicts_its_chip_is_refused(mlp: Program, tmp_path: Path) -> None:
    perfect = Chip(arrays=tuple(Array(i, 25, 25) for i in range(3)), device=mlp.chip.device)
    with pytest.raises(InvalidInputError, match="marked stuck .* healthy on the chip"):
        emit_board(dataclasses.replace(mlp, chip=perfect), tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_attributes_become_json_safe() -> None:
    graph = Graph("g")
    x = graph.add_input("x", np.float32, ("N", 2))
    shift = graph.add_initializer("shift", np.array([1.5, -2.0], dtype=np.float32))
    node = graph.add_node(
        "Add",
        [x, shift],
        ["y"],
        name="add",
        attrs={
            "t": np.array([[1, 2]], dtype=np.int64),
            "f": float("inf"),
            "n": np.float32(np.nan),
            "i": np.int64(3),
            "b": b"abc",
            "l": [1.5, float("-inf")],
        },
    )
    record = digital_record(node)
    assert record.attrs == {
        "b": "abc",
        "f": {"float": "inf"},
        "i": 3,
        "l": [1.5, {"float": "-inf"}],
        "n": {"float": "nan"},
        "t": {"tensor": {"dtype": "int64", "shape": [1, 2], "data": [1, 2]}},
    }
    assert record.constants == {"shift": {"dtype": "float32", "shape": [2], "data": [1.5, -2.0]}}
    json.dumps(board.record_line(record))


# ------------------------------------------------------------------ validator


def _rewrite(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("".join(line + "\n" for line in lines))


def _set(lines: list[str], index: int, **changes) -> None:
    record = json.loads(lines[index])
    for key, value in changes.items():
        if value is _DELETE:
            del record[key]
        else:
            record[key] = value
    lines[index] = json.dumps(record)


_DELETE = object()
_W = 2  # line index of the first write (line 3): header, select_array, write


def _first(lines: list[str], op: str) -> int:
    return next(i for i, line in enumerate(lines) if f'"op":"{op}"' in line.replace(" ", ""))


def _schedule_write_at_end(lines: list[str]) -> None:
    lines.append(lines.pop(_W))


def _huge_attribute(lines: list[str]) -> None:
    index = _first(lines, "digital")
    _set(lines, index, attrs={"alpha": 12345})
    lines[index] = lines[index].replace("12345", "1e999")  # decodes to inf, not NaN/Infinity


CORRUPTIONS = {
    "bad JSON": (lambda ls: ls.__setitem__(_W, ls[_W][:-5]), "line 3: not valid JSON"),
    "NaN": (
        lambda ls: ls.__setitem__(_W, ls[_W].replace('"target_uS":', '"target_uS":NaN,"x":')),
        "line 3: not valid JSON (NaN is not a finite number)",
    ),
    "duplicate key": (
        lambda ls: ls.__setitem__(_W, ls[_W][:-1] + ',"row":1}'),
        "line 3: not valid JSON (key 'row' appears twice",
    ),
    "huge integer": (  # Python's message told the user to call sys.set_int_max_str_digits()
        lambda ls: ls.__setitem__(_W, ls[_W].replace('"target_uS":', '"target_uS":' + "9" * 5000 + ',"x":')),
        "line 3: not valid JSON (a number of more than 4300 digits)",
    ),
    "unknown op": (
        lambda ls: _set(ls, _W, op="frobnicate"),
        'line 3: op: "frobnicate" is not a known record kind',
    ),
    "missing op": (lambda ls: _set(ls, _W, op=_DELETE), "line 3: missing key 'op'"),
    "missing key": (lambda ls: _set(ls, _W, level=_DELETE), "line 3: write: missing key 'level'"),
    "unknown key": (lambda ls: _set(ls, _W, colour="red"), "line 3: write: unknown key 'colour'"),
    "wrong type": (lambda ls: _set(ls, _W, row="3"), 'line 3: write.row: "3" is not an integer'),
    "bool for int": (
        lambda ls: _set(ls, _W, col=True),
        "line 3: write.col: true is not an integer",
    ),
    "row outside": (
        lambda ls: _set(ls, _W, row=99),
        "line 3: write.row: 99 is outside array 0 (25 rows)",
    ),
    "col outside": (lambda ls: _set(ls, _W, col=25), "line 3: write.col: 25 is outside array 0"),
    "unknown array": (
        lambda ls: _set(ls, 1, array=31),
        "line 2: select_array.array: 31 is not one of",
    ),
    "written twice": (lambda ls: ls.insert(_W + 1, ls[_W]), "line 4: write: device (array 0, row"),
    "target not a level": (
        lambda ls: _set(ls, _W, target_uS=150.0),
        "line 3: write.target_uS: 150.0 is not levels_uS[",
    ),
    "level out of range": (
        lambda ls: _set(ls, _W, level=9),
        "line 3: write.level: 9 is not a level index",
    ),
    "tolerance differs": (
        lambda ls: _set(ls, _W, tolerance_uS=1.0),
        "line 3: write.tolerance_uS: 1.0 is not the header's 8.25",
    ),
    "no select_array": (
        lambda ls: ls.pop(1),
        "line 2: no select_array before this write/skip (nor before the",
    ),
    "wrong array": (
        lambda ls: _set(ls, _W, array=1),
        "line 3: write.array: 1 is not the selected array 0",
    ),
    "devices count": (lambda ls: _set(ls, 1, devices=3), "line 2: select_array.devices: 3, but"),
    "write after schedule": (
        _schedule_write_at_end,
        "write: programming records must all come before the inference schedule",
    ),
    "empty line": (lambda ls: ls.insert(_W, ""), "line 3: empty line"),
    "header count": (
        lambda ls: ls.__setitem__(0, ls[0].replace('"write":', '"write":1')),
        "line 1: header.counts.write: 1",
    ),
    "header missing key": (
        lambda ls: ls.__setitem__(0, ls[0].replace('"max_pulses":50,', "")),
        "line 1: header: missing key 'max_pulses'",
    ),
    "read outside array": (
        lambda ls: _set(ls, _first(ls, "read"), row=24),
        "read: region rows 24..27",
    ),
    "convert without read": (
        lambda ls: ls.pop(_first(ls, "read")),
        "convert: does not follow the read of the same block",
    ),
    "huge number": (_huge_attribute, 'digital.attrs: {"alpha": Infinity} holds a number'),
    "undefined value": (
        lambda ls: _set(ls, _first(ls, "digital"), inputs=["nowhere"]),
        "digital.inputs[0]: 'nowhere' is not a graph input",
    ),
    "bad copies": (
        lambda ls: _set(ls, _first(ls, "combine"), divisor=1),
        "combine.copies[0]: [0, 1] is not 1 distinct ascending copy indices",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_validator_names_the_line_and_field(board_file: Path, name: str) -> None:
    edit, expected = CORRUPTIONS[name]
    _rewrite(board_file, edit)
    problems = validate_board(board_file)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("line ") for p in problems[:-1]), problems
    assert problems[-1].startswith(("line ", "... and ")), problems
    with pytest.raises(InvalidInputError, match="invalid board file"):
        read_board(board_file)


@pytest.mark.parametrize(
    "header, expected",
    [
        (
            {"format": "leac-chip"},
            "line 1: header.format: \"leac-chip\", not 'leac-board': not a leac board file",
        ),
        (
            {"version": 4},
            "line 1: header.version: 4 is newer than this leac reads (it reads versions 1, 2 and 3)",
        ),
        (
            {"version": "1"},
            'line 1: header.version: "1" is not a version leac knows (it reads versions 1, 2 and 3)',
        ),
    ],
)
def test_wrong_format_or_version_is_the_only_problem(board_file: Path, header, expected) -> None:
    def edit(lines: list[str]) -> None:
        first = json.loads(lines[0])
        first.update(header)
        lines[0] = json.dumps(first)

    _rewrite(board_file, edit)
    assert validate_board(board_file) == [expected]


def test_files_that_are_not_board_files(tmp_path: Path, mlp: Program) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert validate_board(empty) == ["line 1: the file is empty (expected the leac-board header)"]
    mlp.save(tmp_path / "p.leac")
    assert validate_board(tmp_path / "p.leac")[0].startswith("line 1: the header is not valid JSON")
    with pytest.raises(InvalidInputError, match="no such board file"):
        validate_board(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------ CLI


@pytest.fixture
def program_file(mlp: Program, tmp_path: Path) -> Path:
    path = tmp_path / "mlp.leac"
    mlp.save(path)
    return path


def test_cli_emit_text_and_json(program_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    assert main(["emit", str(program_file), "--target", "board", "-o", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and line.startswith(f"wrote {out}: leac-board v1 for mlp")
    assert "skipped stuck devices" in line and "tolerance 8.25 uS, at most 50 pulses" in line
    first = out.read_bytes()
    assert (
        main(
            [
                "emit",
                str(program_file),
                "-o",
                str(out),
                "--json",
                "--tolerance-uS",
                "4",
                "--max-pulses",
                "9",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {
        "output",
        "target",
        "format",
        "version",
        "writes",
        "skips",
        "arrays",
        "reads",
        "records",
        "bytes",
        "tolerance_uS",
        "max_pulses",
    }
    assert (report["tolerance_uS"], report["max_pulses"], report["bytes"]) == (
        4.0,
        9,
        out.stat().st_size,
    )
    assert out.read_bytes() != first
    assert main(["board", "validate", str(out)]) == 0
    assert "valid leac-board v1" in capsys.readouterr().out


def test_cli_bad_program_exits_3_and_writes_nothing(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.leac"
    bad.write_text("not a program")
    out = tmp_path / "out.jsonl"
    assert main(["emit", str(bad), "-o", str(out)]) == 3
    assert "not a leac Program file" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-o", "{program}"], "refusing to write over the input file"),
        (["-o", "{tmp}/no/such/folder/x.jsonl"], "does not exist"),
        (["-o", "{tmp}/x.jsonl", "--tolerance-uS", "0"], "--tolerance-uS must be a positive"),
        (["-o", "{tmp}/x.jsonl", "--max-pulses", "0"], "--max-pulses must be at least 1"),
        (["-o", "{tmp}/x.jsonl", "--target", "fpga"], "invalid choice"),
    ],
)
def test_cli_usage_errors_exit_2(program_file: Path, tmp_path: Path, capsys, argv, message) -> None:
    argv = [a.format(program=program_file, tmp=tmp_path) for a in argv]
    before = program_file.read_bytes()
    assert main(["emit", str(program_file), *argv]) == 2
    assert message in capsys.readouterr().err
    assert program_file.read_bytes() == before and not (tmp_path / "x.jsonl").exists()


def test_cli_validate_reports_problems_with_line_numbers(board_file: Path, capsys) -> None:
    _rewrite(board_file, lambda ls: _set(ls, _W, row=99))
    assert main(["board", "validate", str(board_file)]) == 3
    assert "line 3: write.row: 99 is outside array 0" in capsys.readouterr().err
    assert main(["board", "validate", str(board_file), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and any("line 3" in p for p in report["problems"])


def test_cli_help(capsys) -> None:
    assert main(["emit", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--tolerance-uS" in text and "--max-pulses" in text and "leac board validate" in text
    assert main(["board", "validate", "--help"]) == 0
    assert "exits 3" in capsys.readouterr().out


# ------------------------------------------------- streaming and capped problems (issue 13, items 11, 12, 19)
def _traced_peak(run) -> int:  # noqa: ANN001 - a callable
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_flood_of_empty_lines_is_streamed_and_reported_once(board_file: Path, tmp_path: Path, capsys) -> None:
    """Item 12: 30 MB of empty lines after a valid header took 31 s and 5.7 GB (a MemoryError with --json):
    every line was kept, and every empty line was a problem kept. Here 500,000 of them."""
    flood = tmp_path / "flood.jsonl"
    flood.write_bytes(board_file.read_bytes() + b"\n" * 500_000)
    lines = len(board_file.read_bytes().splitlines())
    problems: list[str] = []
    peak = _traced_peak(lambda: problems.extend(validate_board(flood)))
    assert peak < 16 * 2**20, f"validating held {peak / 2**20:.1f} MiB"
    assert problems == [f"line {lines + 1}: empty line (every line after the header is one record)",
                        f"line {lines + 2}: the 499999 lines {lines + 2}..{lines + 500_000} are the same as line "
                        f"{lines + 1}, with the same problem"]
    assert main(["board", "validate", str(flood), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["problem_count"] == 2 and report["problems"] == problems


def test_problems_are_capped_in_file_order_with_a_count_of_the_rest(board_file: Path, tmp_path: Path,
                                                                   monkeypatch, capsys) -> None:
    monkeypatch.setattr(board.reader, "MAX_PROBLEMS", 10)
    text = board_file.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*text[:2], *(f"x{i}" for i in range(1000)), *text[2:]]) + "\n")
    problems = validate_board(bad)
    assert len(problems) == 11 and problems[-1] == "... and 990 more problems", problems
    assert problems[:10] == [f"line {3 + i}: not valid JSON (Expecting value: line 1 column 1 (char 0))"
                             for i in range(10)]
    assert main(["board", "validate", str(bad), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["problem_count"] == 1000 and report["problems"] == problems
    assert main(["board", "validate", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "invalid board file (1000 problems)" in err and err.rstrip().endswith("... and 990 more")


def test_deeply_nested_json_in_a_line_is_a_problem_of_that_line(board_file: Path, capsys) -> None:
    """Item 11: it was a RecursionError traceback."""
    _rewrite(board_file, lambda ls: ls.insert(_W, "[" * 100_000 + "]" * 100_000))
    assert validate_board(board_file)[0] == "line 3: not valid JSON (nested too deeply)"
    assert main(["board", "validate", str(board_file)]) == 3
    err = capsys.readouterr().err
    assert "line 3: not valid JSON (nested too deeply)" in err and "Traceback" not in err


def test_a_byte_order_mark_is_refused_saying_what_it_is(board_file: Path) -> None:
    """Item 19: it said "Expecting value: line 1 column 1". The format is ASCII only; a BOM is refused (the
    board's parser need not skip one) and the rest is checked as if it were removed."""
    board_file.write_bytes(b"\xef\xbb\xbf" + board_file.read_bytes())
    assert validate_board(board_file) == [
        "line 1: the file starts with a UTF-8 byte order mark (bytes EF BB BF), which a leac-board file "
        "(ASCII only) never has: remove those three bytes"]


def test_a_line_longer_than_the_limit_is_skipped_unread(board_file: Path, monkeypatch) -> None:
    monkeypatch.setattr(board.reader, "MAX_LINE_BYTES", 4096)
    monkeypatch.setattr(board.reader, "_CHUNK", 1000)  # the long line spans chunks
    _rewrite(board_file, lambda ls: ls.insert(_W, '{"op": "write", "x": "' + "y" * 10_000 + '"}'))
    problems = validate_board(board_file)
    assert problems[0] == "line 3: longer than 4096 bytes, more than leac reads", problems
    assert not any("line 4:" in p for p in problems), problems  # the lines after it are read as before


def test_a_program_whose_board_lines_fit_validates_after_streaming(board_file: Path, monkeypatch) -> None:
    monkeypatch.setattr(board.reader, "_CHUNK", 7)  # lines cut across many chunks read back whole
    assert validate_board(board_file) == []
    assert read_board(board_file).to_text() == board_file.read_text()
