"""The `.leac` format's versions: version 2 packs a layer's copy halves, targets and selections into a few
arrays (lea_compiler/program/file.py); version-1 files, one array per copy half, still load.

The golden files tests/golden/program_v1.leac and program_v1_programmed.leac were written by leac before
version 2 (commit f74de59), from the Program of tests/test_program.py's fixture (the MLP of
`tests.helpers.mlp_model()` compiled at k = 2 with the greedy placer for `synth_chip(arrays=8, rows=16,
cols=16, stuck_high=0.05, stuck_low=0.02, seed=5)`) and that Program programmed open loop on
`SimulatedBoard(chip, 0)`.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lea_compiler.backends.sim import simulate
from lea_compiler.datasets import Dataset
from lea_compiler.errors import CompileError, InvalidInputError, UsageError
from lea_compiler.program import Program, program_problems
from lea_compiler.program import file as program_file
from tests.helpers import archive_entries as _entries
from tests.helpers import assert_program_refused
from tests.helpers import edit_npy as _pack
from tests.helpers import edit_program_json as _header
from tests.helpers import zip_archive as _archive

GOLDEN = Path(__file__).parent / "golden"
Entries = dict[str, bytes]


@pytest.fixture(scope="module", params=["program_v1.leac", "program_v1_programmed.leac"])
def golden(request: pytest.FixtureRequest) -> bytes:
    return (GOLDEN / request.param).read_bytes()


def _v2(golden: bytes) -> bytes:
    return Program.from_bytes(golden).to_bytes()


# ------------------------------------------------------------- round trips
def test_a_version_1_file_loads_and_writes_back_byte_identical(golden) -> None:
    program = Program.from_bytes(golden)
    assert program_problems(program) == []
    assert json.loads(_entries(golden)["program.json"])["version"] == 1
    assert program_file.program_bytes(program, version=1) == golden  # the version-1 writer is leac's old one


def test_version_2_holds_the_same_program_and_re_saves_byte_identical(golden, tmp_path) -> None:
    program = Program.from_bytes(golden)
    data = program.to_bytes()
    assert json.loads(_entries(data)["program.json"])["version"] == 2
    again = Program.from_bytes(data)
    assert program_problems(again) == []
    # every field, array, dtype and shape the same: version 1 writes each of them on its own
    assert program_file.program_bytes(again, version=1) == golden
    path = tmp_path / "p.leac"
    again.save(path)
    assert path.read_bytes() == data
    assert Program.load(path).to_bytes() == data
    for layer, old in zip(again.layers, program.layers, strict=True):
        for block, old_block in zip(layer.blocks, old.blocks, strict=True):
            assert block.target_pos.dtype == old_block.target_pos.dtype
            assert block.selection.dtype == np.bool_ and block.selection.shape == old_block.selection.shape
            for copy, old_copy in zip(block.copies, old_block.copies, strict=True):
                for half, old_half in ((copy.pos, old_copy.pos), (copy.neg, old_copy.neg)):
                    assert half.levels.dtype == old_half.levels.dtype
                    assert np.array_equal(half.levels, old_half.levels)
                    assert half.region == old_half.region and half.cost_uS == old_half.cost_uS
                    if old_half.programmed_uS is None:
                        assert half.programmed_uS is None
                    else:
                        assert np.array_equal(half.programmed_uS, old_half.programmed_uS)


def test_version_2_has_a_fixed_number_of_arrays_per_layer(golden) -> None:
    program = Program.from_bytes(golden)
    names = sorted(_entries(program.to_bytes()))
    per_layer = 3 + program.as_programmed  # levels, targets, selection (and programmed_uS)
    graph = [n for n in names if n.startswith("arrays/graph.")]
    layers = {n for n in names if n.startswith("arrays/layer")}
    assert layers == {f"arrays/layer{i}.{key}.npy" for i, layer in enumerate(program.layers)
                      for key in ("scale", "levels", "targets", "selection",
                                  *(["programmed_uS"] if program.as_programmed else []),
                                  *([] if layer.column_gain is None else ["column_gain", "column_offset"]))}
    assert len(layers) >= per_layer * len(program.layers)
    assert len(names) == len(graph) + len(layers) + 3  # program.json, chip.json, model.onnx
    assert len(_entries(golden)) > len(names)


def test_a_program_from_version_2_simulates_as_the_one_saved(golden) -> None:
    program = Program.from_bytes(golden)
    loaded = Program.from_bytes(program.to_bytes())
    x = np.random.default_rng(3).standard_normal((40, 4)).astype(np.float32)
    data = [Dataset("d", x, np.zeros(40, np.int64))]

    def report(p: Program) -> dict[str, Any]:
        out = simulate(p, data, seed=7).to_json()
        del out["seconds"]
        return out

    assert report(loaded) == report(program)


def test_the_version_2_writer_refuses_halves_that_do_not_fit_its_packs(golden) -> None:
    program = Program.from_bytes(golden)
    layer = program.layers[0]
    block = layer.blocks[0]
    copy = block.copies[0]
    if program.as_programmed:  # one half without its conductances
        bad = dataclasses.replace(copy, pos=dataclasses.replace(copy.pos, programmed_uS=None))
        message = "some copy halves have programmed conductances"
    else:
        bad = dataclasses.replace(copy, pos=dataclasses.replace(copy.pos, levels=copy.pos.levels[:, :-1]))
        message = "a copy half's levels are not of its block's shape"
    blocks = (dataclasses.replace(block, copies=(bad, *block.copies[1:])), *layer.blocks[1:])
    broken = dataclasses.replace(program, layers=(dataclasses.replace(layer, blocks=blocks), *program.layers[1:]))
    with pytest.raises(CompileError, match=message):
        broken.to_bytes()
    with pytest.raises(UsageError, match=r"leac writes Program versions \(1, 2\), not 3"):
        program_file.program_bytes(program, version=3)


# ------------------------------------------------------------- damaged version-2 files
def _header_only(name: str, shape: tuple[int, ...], extra: int) -> Callable[[Entries], None]:
    """The pack's member replaced by an `.npy` header declaring `shape` and `extra` bytes of data."""
    def edit(entries: Entries) -> None:
        key = f"arrays/{name}.npy"
        dtype = np.load(io.BytesIO(entries[key])).dtype
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": dtype.str, "fortran_order": False, "shape": shape})
        entries[key] = header.getvalue() + bytes(extra)

    return edit


def _delete(key: str) -> Callable[[Entries], None]:
    def edit(entries: Entries) -> None:
        del entries[key]

    return edit


def _third_copy(header: dict[str, Any]) -> None:
    """Layer 0 at alpha = 3, each block given a third copy: its halves now run past the end of its levels."""
    layer = header["layers"][0]
    layer["alpha"] = 3
    for block in layer["blocks"]:
        block["copies"].append({**block["copies"][0], "copy": 2})


def _as_version_1(header: dict[str, Any]) -> None:
    """A version-2 header whose layer 0 names per-half arrays, as version 1 did."""
    layer = header["layers"][0]
    del layer["levels"]
    for block in layer["blocks"]:
        for copy in block["copies"]:
            copy["pos"]["levels"] = copy["neg"]["levels"] = "layer0.levels"


LEVELS0 = 2 * 2 * 4 * 12  # layer 0's levels: 2 copies x 2 halves of its one 4 x 12 block
DAMAGES_V2: dict[str, tuple[Callable[[Entries], None], str]] = {
    "levels_short": (_pack("layer0.levels", lambda a: a[:-1]),
                     rf"array layer0.levels is int8\[{LEVELS0 - 1}\], not an integer vector of {LEVELS0} levels "
                     r"\(the layer's 4 copy halves end to end\)"),
    "levels_long": (_pack("layer0.levels", lambda a: np.concatenate([a, a[:3]])),
                    rf"array layer0.levels is int8\[{LEVELS0 + 3}\], not an integer vector of {LEVELS0} levels"),
    "levels_float": (_pack("layer1.levels", lambda a: a.astype(np.float64)),
                     r"array layer1.levels is float64\[\d+\], not an integer vector"),
    "levels_two_dimensional": (_pack("layer1.levels", lambda a: a.reshape(2, -1)),
                               r"array layer1.levels is int8\[2, \d+\], not an integer vector"),
    "levels_out_of_range": (_pack("layer0.levels", lambda a: np.full_like(a, 100)),
                            r"layer 'fc0' block 0: copy 0 pos: the levels has a level index outside -1\.\.\d+"),
    "targets_short": (_pack("layer2.targets", lambda a: a[1:]), r"array layer2.targets is int8\[\d+\], not an "
                                                                r"integer vector of \d+ levels \(the layer's 1 blocks"),
    "selection_integers": (_pack("layer0.selection", lambda a: a.astype(np.int8)),
                           r"array layer0.selection is int8\[24\], not a boolean vector of 24 values"),
    "selection_beta": (_pack("layer0.selection", np.zeros_like), "the selection does not pick beta = 2"),
    "data_short_of_its_header": (_header_only("layer0.levels", (LEVELS0,), LEVELS0 - 5),
                                 rf"array layer0.levels declares int8\[{LEVELS0}\] \({LEVELS0} bytes\) but its "
                                 rf"entry holds {LEVELS0 - 5}"),
    "huge_header": (_header_only("layer0.levels", (2**40,), 64),
                    r"array layer0.levels is int8\[1099511627776\], not an integer vector"),
    "halves_past_the_pack": (_header(_third_copy), rf"array layer0.levels is int8\[{LEVELS0}\], not an integer "
                                                   rf"vector of {LEVELS0 * 3 // 2} levels"),
    "block_narrower": (_header(lambda h: h["layers"][2]["blocks"][0].update(cols=[0, 2])),
                       r"array layer2.levels is int8\[72\], not an integer vector of 48 levels"),
    "member_missing": (_delete("arrays/layer1.levels.npy"), r"damaged Program: it has no arrays/layer1.levels.npy"),
    "key_missing": (_header(lambda h: h["layers"][1].pop("targets")),
                    "layer 'fc1' names no targets array \\(a version-2 Program packs each layer's targets in one\\)"),
    "per_half_references": (_header(_as_version_1), "layer 'fc0' names no levels array"),
    "pack_shared": (_header(lambda h: h["layers"][1].update(levels="layer0.levels")),
                    "array layer0.levels is referenced twice"),
    "newer_version": (_header(lambda h: h.update(version=3)), "Program version 3; this leac reads versions 1, 2"),
    "version_not_an_integer": (_header(lambda h: h.update(version="2")), "Program version '2'; this leac reads"),
    "version_a_float": (_header(lambda h: h.update(version=2.0)), "Program version 2.0; this leac reads"),
    "version_true": (_header(lambda h: h.update(version=True)), "Program version True; this leac reads"),
}


@pytest.mark.parametrize("damage", list(DAMAGES_V2), ids=list(DAMAGES_V2))
def test_damaged_version_2_files_are_refused_naming_the_problem(damage, tmp_path, capsys) -> None:
    edit, message = DAMAGES_V2[damage]
    entries = _entries(_v2((GOLDEN / "program_v1.leac").read_bytes()))
    edit(entries)
    assert_program_refused(_archive(entries), message, tmp_path, capsys)


@pytest.mark.parametrize("damage, message", [
    (lambda a: np.where(np.arange(a.size) == 5, np.nan, a), "array layer1.programmed_uS holds NaN or infinity"),
    (lambda a: a.astype(np.int64), r"array layer1.programmed_uS is int64\[\d+\], not a vector of \d+ conductances"),
    (lambda a: a[:-1], r"array layer1.programmed_uS is float64\[\d+\], not a vector of \d+ conductances \(the "
                       r"layer's 4 copy halves end to end\)"),
    (lambda a: np.full_like(a, -1.0), "layer 'fc1' block 0: copy 0 pos: programmed_uS holds a conductance that is "
                                      "not a finite number"),
], ids=["nan", "integers", "short", "negative"])
def test_damaged_programmed_conductances_are_refused(damage, message) -> None:
    entries = _entries(_v2((GOLDEN / "program_v1_programmed.leac").read_bytes()))
    _pack("layer1.programmed_uS", damage)(entries)
    with pytest.raises(InvalidInputError, match=message):
        Program.from_bytes(_archive(entries))


def test_an_unpacker_refuses_a_pack_too_short_or_too_long() -> None:
    """The loader's own count of a pack's parts (array_specs sizes the packs from the same blocks first)."""
    unpacker = program_file._Unpacker(np.arange(7), "p")
    assert unpacker.take((2, 3)).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="array p holds 7 values, its parts 6"):
        unpacker.finish()
    with pytest.raises(ValueError, match=r"array p ends before its 1 x 2 part at 6"):
        unpacker.take((1, 2))
