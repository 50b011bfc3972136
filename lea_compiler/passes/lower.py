"""lower: collect the facts the passes attached to the IR into a Program, the pipeline's last step.

Not a graph-to-graph pass (it is not in `pipeline.PASSES`): the compile
driver (lea_compiler/compiler.py) calls it after the passes. For every
`leac.MVM` node it reads `QuantizedLayer` (targets, scale, levels), `Tiling`
(the blocks), `Ensemble` (alpha, beta), `Placed` (each copy half's region
and cost), `Encoded` (the levels programmed), `Selection` (the beta-of-alpha
masks) and, when present, `Compensation` (the column gain and offset), and
makes its `Layer`; the graph's `PlacementSummary` (and `PlacementLatency`,
when placement was latency-aware) becomes the Program's placement record.
Nothing is computed here: the Program says what the passes decided, in the
form the backends read.
"""

from __future__ import annotations

from typing import Any

from lea_compiler.chip import Chip
from lea_compiler.errors import CompileError
from lea_compiler.ir import Graph
from lea_compiler.passes.compensate import Compensation
from lea_compiler.passes.encode import Encoded
from lea_compiler.passes.ensemble import Ensemble
from lea_compiler.passes.place import Placed, PlacementLatency, PlacementSummary, PlacementWallClock
from lea_compiler.passes.quantize import QuantizedLayer
from lea_compiler.passes.select import Selection
from lea_compiler.passes.tile import Tiling
from lea_compiler.program import BlockCopy, CopyHalf, Layer, LevelsPack, Program, ProgramBlock


def lower_to_program(
    graph: Graph,
    chip: Chip,
    *,
    model: dict[str, Any],
    options: dict[str, Any],
    source_model: bytes | None = None,
) -> Program:
    """Collect the facts the passes attached to the IR into a Program (needs `select` to have run)."""
    layers = []
    for node in graph.nodes_of("MVM"):
        quantized, tiling = node.fact(QuantizedLayer), node.fact(Tiling)
        ensemble, placed = node.fact(Ensemble), node.fact(Placed)
        encoded, selection = node.fact(Encoded), node.fact(Selection)
        compensation = node.fact(Compensation)
        if None in (quantized, tiling, ensemble, placed, encoded, selection):
            raise CompileError(f"{node.describe()} is not fully mapped; run the whole pipeline")
        assert quantized and tiling and ensemble and placed and encoded and selection
        # every copy half's levels in one buffer (`LevelsPack`), block by block, copy by copy, G+ then G-: the
        # halves hold its views
        pack = LevelsPack.of([levels for block in tiling.blocks for copy in range(ensemble.alpha)
                              for levels in (encoded.get(block.index, copy).pos_levels,
                                             encoded.get(block.index, copy).neg_levels)])
        views = iter(pack.levels)
        blocks = []
        for block in tiling.blocks:
            rows = slice(block.row_start, block.row_stop)
            cols = slice(block.col_start, block.col_stop)
            copies = []
            for copy in range(ensemble.alpha):
                halves = []
                for polarity in ("pos", "neg"):
                    placed_copy = placed.get(block.index, polarity, copy)
                    halves.append(CopyHalf(placed_copy.region, next(views), placed_copy.cost_uS))
                copies.append(BlockCopy(copy, halves[0], halves[1]))
            blocks.append(
                ProgramBlock(
                    index=block.index, row_block=block.row_block, col_block=block.col_block,
                    row_start=block.row_start, row_stop=block.row_stop,
                    col_start=block.col_start, col_stop=block.col_stop,
                    target_pos=quantized.pos[rows, cols].copy(), target_neg=quantized.neg[rows, cols].copy(),
                    copies=tuple(copies), selection=selection.masks[block.index],
                )
            )
        rows_total, cols_total = quantized.shape
        layers.append(
            Layer(
                name=node.name, rows=rows_total, cols=cols_total, bias_row=quantized.bias_row,
                encoding=quantized.encoding, levels_uS=quantized.levels_uS, scale=quantized.scale,
                alpha=ensemble.alpha, beta=ensemble.beta, blocks=tuple(blocks),
                quantization={
                    "rms_error": quantized.rms_error,
                    "max_error": quantized.max_error,
                    "relative_rms_error": quantized.relative_rms_error,
                },
                mapping_error_uS=placed.cost_uS, effective_error_uS=selection.effective_error_uS,
                column_gain=None if compensation is None else compensation.gain.copy(),
                column_offset=None if compensation is None else compensation.offset.copy(),
                levels_pack=pack,
            )
        )
    summary = graph.fact(PlacementSummary)
    placement = {}
    if summary is not None:
        placement = {
            "placer": summary.placer, "status": summary.status, "method": summary.method,
            "objective_uS": summary.objective_uS, "bound_uS": summary.bound_uS, "gap": summary.gap,
            "copies": summary.copies,
        }
        limited = graph.fact(PlacementWallClock)
        if limited is not None:  # only then, so a reproducible placement's record is as before
            placement["wall_clock_limited"] = list(limited.stages)
    latency = graph.fact(PlacementLatency)
    if latency is not None:  # latency-aware placement only: a default compile's Program is as before the option
        placement.update(objective=latency.objective, analog_ns=latency.analog_ns,
                         analog_bound_ns=latency.analog_bound_ns, analog_gap=latency.analog_gap)
    return Program(graph=graph, layers=tuple(layers), chip=chip, model=model, options=options,
                   placement=placement, source_model=source_model)

