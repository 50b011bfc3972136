"""Latency-aware placement (issue 18): the analog time and the mapping error of each placement objective.

For the bundled Yin-Yang MLP on the bundled paper-like chip (32 arrays of 25 x 25, 2.5% stuck high, 0.5% stuck
low) and the digits CNN (examples/data/digits_cnn_float.onnx, as in bench_allocation.py) on a paper-like chip of
64 such arrays (seed 0; at k = 6 it needs 22,368 devices), at k = 1, 3, 6, every objective (`error`, `latency`,
`balanced`) is compiled with the default CP-SAT placer and time limit, one after the other in this process.
Printed per compile: the mapping error and its gap, the latency proxy (analog time per sample: every crossbar
layer's busiest array's serial reads times its applications), its bound and gap, the arrays used, the
placement's method, the place pass's and the whole compile's wall time; and the event-driven latency of one
inference and the pipelined throughput (`estimate_cost`, backends/timing.py) with the chip's periphery (one
digital lane) and with 16 digital lanes (where the digital unit no longer hides the arrays).

    OMP_NUM_THREADS=1 python benchmarks/bench_objective.py

Results go to benchmarks/results/objective.json and objective.txt.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lea_compiler.analog_time import OBJECTIVES  # noqa: E402
from lea_compiler.backends.cost import estimate_cost  # noqa: E402
from lea_compiler.chip import load_chip, synth_chip  # noqa: E402
from lea_compiler.compiler import compile_model, program_summary  # noqa: E402
from lea_compiler.pipeline import CompileOptions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CASES = {
    "Yin-Yang MLP": (ROOT / "lea_compiler" / "data" / "yinyang_mlp.onnx",
                     lambda: load_chip(ROOT / "lea_compiler" / "data" / "paper_chip.json")),
    "digits CNN": (ROOT / "examples" / "data" / "digits_cnn_float.onnx",
                   lambda: synth_chip(arrays=64, rows=25, cols=25, seed=0)),
}
KS = (1, 3, 6)


def run_one(model: Path, chip: Any, k: int, objective: str) -> dict[str, Any]:
    start = time.perf_counter()
    result = compile_model(model, chip, CompileOptions(k=k, objective=objective))
    seconds = time.perf_counter() - start
    summary = program_summary(result.program)
    cost = estimate_cost(result.program)
    wide = dataclasses.replace(chip, periphery=dataclasses.replace(chip.periphery, digital_lanes=16))
    cost16 = estimate_cost(result.program, wide)
    return {
        "k": k, "objective": objective,
        "mapping_error_uS": summary["mapping_error_uS"], "mapping_error_bound_uS": summary["solver_bound_uS"],
        "mapping_error_gap": summary["optimality_gap"], "solver_status": summary["solver_status"],
        "analog_time_ns": summary["analog_time_ns"], "analog_time_bound_ns": summary["analog_time_bound_ns"],
        "analog_time_gap": summary["analog_time_gap"], "cost_model_analog_ns": cost.analog_ns,
        "latency_ns": cost.latency_ns, "throughput_per_s": cost.throughput_per_s,
        "latency_ns_16_lanes": cost16.latency_ns, "throughput_per_s_16_lanes": cost16.throughput_per_s,
        "bottleneck_16_lanes": cost16.bottleneck,
        "arrays_used": summary["arrays_used"], "method": summary["solver_method"],
        "place_seconds": next(t.seconds for t in result.timings if t.name == "place"), "compile_seconds": seconds,
    }


def main() -> None:
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, (model, make_chip) in CASES.items():
        chip = make_chip()
        rows[name] = []
        for k in KS:
            for objective in OBJECTIVES:
                row = run_one(model, chip, k, objective)
                rows[name].append(row)
                print(f"{name} k={k} {objective}: {row['analog_time_ns']:.0f} ns, {row['mapping_error_uS']:.1f} uS, "
                      f"{row['compile_seconds']:.2f} s", file=sys.stderr)
    lines = ["Latency-aware placement: analog time per sample (busiest array per crossbar layer x applications) and",
             "mapping error, per objective; default CP-SAT placer, --time-limit 10, OMP_NUM_THREADS=1, one process.",
             "lat us / inf/s: event-driven latency and pipelined throughput, 1 digital lane (the chip's) and 16.",
             ""]
    header = (f"{'model':<13} {'k':>2} {'objective':<9} {'error uS':>9} {'err gap':>8} {'analog ns':>10} "
              f"{'bound ns':>10} {'gap':>7} {'arrays':>6} {'lat us':>7} {'inf/s':>7} {'lat16 us':>8} "
              f"{'inf/s 16':>8} {'place s':>8} {'compile s':>9}  method")
    lines.append(header)
    for name, items in rows.items():
        for r in items:
            lines.append(f"{name:<13} {r['k']:>2} {r['objective']:<9} {r['mapping_error_uS']:>9.1f} "
                         f"{100 * r['mapping_error_gap']:>7.2f}% {r['analog_time_ns']:>10.1f} "
                         f"{r['analog_time_bound_ns']:>10.1f} {100 * r['analog_time_gap']:>6.2f}% "
                         f"{r['arrays_used']:>6} {r['latency_ns'] / 1e3:>7.2f} {r['throughput_per_s']:>7.0f} "
                         f"{r['latency_ns_16_lanes'] / 1e3:>8.2f} {r['throughput_per_s_16_lanes']:>8.0f} "
                         f"{r['place_seconds']:>8.2f} {r['compile_seconds']:>9.2f}  "
                         f"{r['method']}")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "objective.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "objective.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
