"""`leac compile`: model + chip -> Program file, with a summary (text or JSON)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lea_compiler.compiler import CompileResult, compile_model
from lea_compiler.errors import UsageError
from lea_compiler.passes.compensate import COMPENSATE_MODES
from lea_compiler.passes.quantize import BIAS_MODES, ENCODINGS, SCALE_MODES
from lea_compiler.pipeline import ENSEMBLE_MODES, CompileOptions
from lea_compiler.placement import PLACERS
from lea_compiler.tables import format_table


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac compile`."""
    p = commands.add_parser(
        "compile",
        help="map a model onto one chip with k copies per layer and write the Program",
        description=(
            "Compile an ONNX model for one chip: quantize weights to the chip's conductance levels, "
            "tile matrices into blocks that fit its arrays, make k copies of every block (layer "
            "ensemble averaging) and place them on the least-defective regions with OR-Tools. "
            "With --ensemble network, make k copies of the whole network instead, averaged only at the outputs "
            "(a committee machine, the scheme LEA is compared against at equal device count). "
            "Writes the Program (default: MODEL's name + .leac in the current folder) and prints a summary."
        ),
    )
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    p.add_argument("--chip", required=True, metavar="CHIP.json", help="the chip file (leac-chip format)")
    p.add_argument("-k", type=int, default=3,
                   help="copies of every block, alpha; with --ensemble network, copies of the network (default 3)")
    p.add_argument("--beta", type=int,
                   help="copies averaged per output column (default: k; --ensemble layer only)")
    p.add_argument("--ensemble", choices=ENSEMBLE_MODES, default="layer",
                   help="layer: k copies of every layer, averaged after every layer (LEA); network: k copies of "
                        "the whole network, each run end to end on its own devices, averaged only at the outputs "
                        "(a committee machine; layers appear as LAYER@0 .. LAYER@k-1, each with alpha = beta = 1; "
                        "an ArgMax label output is re-applied to the mean of its float input). Both use 2*k*m*n "
                        "devices per m x n layer (default layer)")
    p.add_argument("-o", "--output", metavar="OUT.leac", help="Program file to write")
    p.add_argument("--encoding", choices=ENCODINGS, default="simple",
                   help="level pairs for a weight: simple (one device at the lowest level) or rme "
                        "(reduced mapping error: any pair, and stuck devices' partners re-chosen) (default simple)")
    p.add_argument("--placer", choices=sorted(PLACERS), default="cpsat",
                   help="cpsat: OR-Tools, exact where it can prove it; greedy / random: the paper's baselines "
                        "(default cpsat)")
    p.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                   help="solver time budget in seconds (deterministic time for CP-SAT) (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed for the solver and the random placer (default 0)")
    p.add_argument("--block", metavar="ROWSxCOLS", help="block shape (default: the chip's main array shape)")
    p.add_argument("--scale", choices=SCALE_MODES, default="per-column",
                   help="one weight scale per output column or per layer (default per-column)")
    p.add_argument("--bias", choices=BIAS_MODES, default="digital",
                   help="bias added digitally, or as one more crossbar row (default digital)")
    p.add_argument("--compensate", choices=COMPENSATE_MODES, default="columns",
                   help="columns: with --calibrate, fit a digital gain and offset per output column that cancel "
                        "the coherent error of the chip's known stuck devices (2 digital ops per column); none: "
                        "the paper's LEA alone (default columns; without --calibrate nothing is fitted)")
    p.add_argument("--calibrate", metavar="DATA.npz",
                   help="set the DAC and ADC ranges from this data (x, y) and store them in the Program, so the "
                        "board and the simulator use the same ranges (default: the simulator calibrates on the "
                        "data it simulates; the board scales each input vector by its own maximum)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--dump-ir", metavar="DIR", help="write the IR after each pass to DIR as numbered text files")
    p.add_argument("--time-passes", action="store_true", help="print each pass's time")
    p.set_defaults(func=run)


def _block(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise UsageError(f"--block takes ROWSxCOLS, e.g. 25x25, got {text!r}")
    return int(parts[0]), int(parts[1])


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    if args.beta is not None and args.ensemble == "network":
        raise UsageError("--beta applies to --ensemble layer only: the network ensemble averages all k copies "
                         "at the outputs")
    if args.beta is not None and not 1 <= args.beta <= args.k:
        raise UsageError(f"--beta must be between 1 and k = {args.k}, got {args.beta}")
    if args.time_limit <= 0:
        raise UsageError(f"--time-limit must be positive, got {args.time_limit}")
    rows, cols = _block(args.block)
    output = Path(args.output) if args.output else Path(Path(args.model).stem + ".leac")
    for given in (args.model, args.chip):
        if output.exists() and Path(given).exists() and os.path.samefile(output, given):
            raise UsageError(f"the output {output} would overwrite the input {given}")
    if output.parent and not output.parent.exists():
        raise UsageError(f"the output folder {output.parent} does not exist")
    options = CompileOptions(
        k=args.k, beta=args.beta, encoding=args.encoding, placer=args.placer, time_limit_s=args.time_limit,
        seed=args.seed, block_rows=rows, block_cols=cols, scale=args.scale, bias=args.bias, ensemble=args.ensemble,
        compensate=args.compensate,
    )
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(name: str, seconds: float) -> None:
            print(f"  {name} done ({seconds:.2f} s)", file=sys.stderr)
    result = compile_model(args.model, args.chip, options, dump_dir=args.dump_ir, on_pass=progress,
                           calibrate_on=args.calibrate)
    result.program.save(output)
    report = summary(result, output)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_summary(report, time_passes=args.time_passes)
    return 0


def summary(result: CompileResult, output: Path) -> dict[str, Any]:
    """The compile report as JSON-ready data (keys documented in README)."""
    program = result.program
    placement = program.placement
    ensemble = program.options.get("ensemble", "layer")
    return {
        "program": str(output),
        "model": program.model["file"] or program.model["name"],
        "chip": program.chip.name,
        "chip_fingerprint": program.chip_fingerprint,
        "k": program.options["k"],
        "ensemble": ensemble,
        "beta": None if ensemble == "network" else program.options["beta"] or program.options["k"],
        "encoding": program.options["encoding"],
        "placer": placement.get("placer"),
        "calibration": program.extra.get("calibration"),
        "layers": [
            {
                "name": layer.name,
                "rows": layer.rows,
                "cols": layer.cols,
                "blocks": len(layer.blocks),
                "alpha": layer.alpha,
                "beta": layer.beta,
                "devices": layer.devices,
                "quantization_relative_rms_error": layer.quantization["relative_rms_error"],
                "mapping_error_uS": layer.mapping_error_uS,
                "effective_error_uS": layer.effective_error_uS,
                "compensated_columns": 0 if layer.column_gain is None else int(np.sum(
                    (layer.column_gain != 1) | (layer.column_offset != 0))),
            }
            for layer in program.layers
        ],
        "copies": placement.get("copies"),
        "devices_used": program.devices_used,
        "devices_total": program.chip.device_count,
        "arrays_used": len(program.arrays_used),
        "arrays_total": len(program.chip.arrays),
        "mapping_error_uS": program.mapping_error_uS,
        "effective_error_uS": sum(layer.effective_error_uS for layer in program.layers),
        "solver_status": placement.get("status"),
        "solver_method": placement.get("method"),
        "solver_bound_uS": placement.get("bound_uS"),
        "optimality_gap": placement.get("gap"),
        "pass_seconds": {t.name: t.seconds for t in result.timings},
        "compile_seconds": result.seconds,
    }


def print_summary(report: dict[str, Any], *, time_passes: bool) -> None:
    rows = [("layer", "matrix", "blocks", "alpha/beta", "devices", "quant. error", "mapping error uS",
             "after selection uS")]
    for layer in report["layers"]:
        rows.append((
            layer["name"], f"{layer['rows']} x {layer['cols']}", str(layer["blocks"]),
            f"{layer['alpha']}/{layer['beta']}", str(layer["devices"]),
            f"{100 * layer['quantization_relative_rms_error']:.2f}%",
            f"{layer['mapping_error_uS']:.1f}", f"{layer['effective_error_uS']:.1f}",
        ))
    print(f"compiled {report['model']} for chip {report['chip']!r} -> {report['program']}")
    if report["ensemble"] == "network":
        print(f"network ensemble: {report['k']} copies of the whole network, averaged at the outputs")
    print(format_table(rows))
    used, total = report["devices_used"], report["devices_total"]
    print(f"devices used: {used} of {total} ({100 * used / total:.1f}%), on {report['arrays_used']} of "
          f"{report['arrays_total']} arrays; {report['copies']} block copies")
    compensated = sum(layer["compensated_columns"] for layer in report["layers"])
    if compensated:
        print(f"stuck-device compensation: digital gain and offset on {compensated} of "
              f"{sum(layer['cols'] for layer in report['layers'])} output columns")
    gap = report["optimality_gap"]
    print(f"placement: {report['placer']} ({report['solver_method']}) {report['solver_status']}, mapping error "
          f"{report['mapping_error_uS']:.1f} uS, bound {report['solver_bound_uS']:.1f} uS, "
          f"gap {100 * gap:.2f}%")
    if time_passes:
        width = max(13, *(len(name) for name in report["pass_seconds"]))
        for name, seconds in report["pass_seconds"].items():
            print(f"  pass {name:<{width}} {seconds:8.3f} s")
    print(f"compile time: {report['compile_seconds']:.2f} s")
