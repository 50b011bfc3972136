"""`leac simulate`: run a Program on a simulated chip and report accuracy, cycles, energy and device cost."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from lea_compiler.backends.sim import load_data, simulate
from lea_compiler.chip import load_chip
from lea_compiler.program import Program
from lea_compiler.tables import format_table


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac simulate`."""
    p = commands.add_parser(
        "simulate",
        help="run a compiled Program on a simulated chip: accuracy, cycles, energy, device cost",
        description=(
            "Simulate a Program (from leac compile) on its chip, or on another chip file: devices with "
            "write and read noise and stuck values, DACs and ADCs, beta-of-alpha averaging and the digital "
            "periphery. Reports top-1 accuracy per data file against onnxruntime's on the original model, "
            "per-layer output error, and the cycle, energy and programming cost model."
        ),
    )
    p.add_argument("program", metavar="PROGRAM.leac", help="the compiled Program")
    p.add_argument("--data", action="append", required=True, metavar="DATA.npz",
                   help=".npz with x (inputs, batch first) and y (integer labels); repeat for several sets")
    p.add_argument("--chip", metavar="CHIP.json",
                   help="simulate on this chip file instead of the one compiled for (same array ids and sizes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the write and read noise (default 0)")
    p.add_argument("--ideal", action="store_true",
                   help="no noise and no defects: every device reads its target (a joint Program: the "
                        "weights it represents on the chip it was compiled for, stuck devices included; "
                        "docs/simulator.md)")
    p.add_argument("--exact-read-noise", action="store_true",
                   help="draw every device's uniform read noise (slow) instead of its exact-variance Gaussian sum")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                   help="worker threads for the crossbar layers (default: min(4, CPUs)); results do not depend on it")
    p.add_argument("--output", metavar="NAME", help="model output to take the top-1 from (default: see docs/cli.md)")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object (report leac-simulate, docs/reports.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    program = Program.load(args.program)
    datasets = [load_data(path, program.graph) for path in args.data]
    chip = load_chip(args.chip) if args.chip else None
    report = simulate(program, datasets, chip=chip, seed=args.seed, ideal=args.ideal,
                      exact_read_noise=args.exact_read_noise, output=args.output, threads=args.threads)
    data = report.to_json()
    data["program"] = args.program
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_report(data)
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_report(r: dict[str, Any]) -> None:
    which = "the chip it was compiled for" if r["compiled_for_chip"] else "another chip than compiled for"
    mode = "ideal devices" if r["ideal"] else f"seed {r['seed']}"
    print(f"simulated {r['program']} on chip {r['chip']!r} ({which}), {mode}")
    rows = [("data", "samples", "accuracy", "software", "agreement")]
    for d in r["data"]:
        rows.append((d["name"], str(d["samples"]), _pct(d["accuracy"]), _pct(d["software_accuracy"]),
                     _pct(d["agreement"])))
    if len(r["data"]) > 1:
        rows.append(("mean", "", _pct(r["accuracy"]), _pct(r["software_accuracy"]), _pct(r["agreement"])))
    print(format_table(rows))
    errors = ", ".join(f"{k} {100 * v:.2f}%" for k, v in r["layer_output_error"].items())
    print(f"layer output error (relative RMS against the digital reference): {errors}")
    print(f"devices used: {r['devices_used']} of {r['devices_total']} ({100 * r['utilisation']:.1f}%), "
          f"on {r['arrays_used']} of {r['arrays_total']} arrays")
    e = r["energy_breakdown_pJ"]
    print(f"per inference: {r['cycles_per_inference']:.0f} cycles, latency {r['latency_ns'] / 1e3:.2f} us, "
          f"{r['throughput_per_s']:.0f} inferences/s, {r['energy_pJ_per_inference']:.1f} pJ "
          f"(device reads {e['device_reads']:.1f}, ADC {e['adc']:.1f}, DAC {e['dac']:.1f})")
    print(f"programming: {r['program_pulses']} write-verify pulses, {1e3 * r['program_time_s']:.2f} ms, "
          f"{r['program_energy_uJ']:.3f} uJ")
