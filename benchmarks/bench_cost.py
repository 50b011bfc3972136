"""The cost model's numbers (docs/simulator.md, "Cost model"): latency, pipelined throughput and energy by
component of the bundled example and the digits CNN at k = 1, 3, 6; a sweep of `adcs_per_array`; the wall
time of the event-driven timeline.

Models: the README's main job (lea_compiler/data/yinyang_mlp.onnx on lea_compiler/data/paper_chip.json) and
the digits CNN (examples/data/digits_cnn_float.onnx, calibrated on digits_calib_images.npz, as
bench_allocation.py) on a synthetic paper-like chip of 400 arrays of 25 x 25 (2.5% stuck high, 0.5% low,
seed 0). Energy is `leac simulate`'s, measured over the first 200 test samples (device reads from V^2 G t).
The ADC sweep recompiles at k = 3 with each `adcs_per_array` from 1 to the array width (25), with the default
digital unit (1 lane) and with 16 lanes: the placement is the same (it does not depend on the periphery), the
conversion rounds change; the sweep's chips draw the static powers of ISAAC's components (`ISAAC_STATIC`), so
each row gives the ADC energy as conversions x e_adc_pJ plus the ADCs' static power x the latency. Wall time:
`backends.cost.timeline_of` per Program, the best of 5 runs, and the tasks it timed.

    OMP_NUM_THREADS=1 python benchmarks/bench_cost.py [--objectives error,latency]

`--objectives`: the placement objectives to compile with (default `error`, leac's only one today); any other
value is passed to compile as `objective=<value>` (the latency-aware placement's keyword), and a compile that
refuses it is reported in the results, not hidden.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

from lea_runs import DATA, EXAMPLES, ROOT

import lea_compiler as leac
from lea_compiler.backends.cost import estimate_cost, static_energy_pJ, timeline_of
from lea_compiler.backends.sim import Dataset, load_data, simulate
from lea_compiler.chip import Chip, load_chip, synth_chip
from lea_compiler.schedule.plan import schedule_of

RESULTS = ROOT / "benchmarks" / "results"
SAMPLES = 200
KS = (1, 3, 6)
ADCS = (1, 2, 4, 8, 16, 25)
LANES = (1, 16)
ISAAC_STATIC = {"p_static_adc_uW": 16_000 / 8, "p_static_dac_uW": 4_000 / (8 * 128), "p_static_array_uW": 10 / 8,
                "p_static_digital_uW": 200 / 4}
"""Static powers (uW) for the sweep: ISAAC's component powers (Shafiee et al., ISCA 2016, Table I, 32 nm) per
component: 8 ADCs 16 mW, 8 x 128 DACs 4 mW, the 8 arrays' sample-and-holds 10 uW, 4 shift-and-add units 0.2 mW
(docs/chip-format.md, "Static power"). ISAAC's ADC figure is its power converting at 1.28 GS/s, so charged as
idle power it is an upper bound of an ADC's static power."""


def _models() -> dict[str, dict[str, Any]]:
    return {
        "yinyang": {"model": str(DATA / "yinyang_mlp.onnx"), "chip": load_chip(DATA / "paper_chip.json"),
                    "data": str(DATA / "yinyang_task1_test.npz"), "calibrate": None},
        "cnn": {"model": str(EXAMPLES / "digits_cnn_float.onnx"),
                "chip": synth_chip(arrays=400, seed=0),
                "data": str(EXAMPLES / "digits_test_images.npz"),
                "calibrate": str(EXAMPLES / "digits_calib_images.npz")},
    }


def _compile(spec: dict[str, Any], chip: Chip, k: int, objective: str) -> tuple[Any, float]:
    extra = {} if objective == "error" else {"objective": objective}
    start = time.perf_counter()
    program = leac.compile(spec["model"], chip, k=k, calibrate_on=spec["calibrate"], **extra)  # type: ignore[arg-type]
    return program, time.perf_counter() - start


def _wall(program: Any) -> tuple[float, int]:
    schedule = schedule_of(program)
    best, tasks = float("inf"), 0
    for _ in range(5):
        start = time.perf_counter()
        timing = timeline_of(program, schedule, program.chip.periphery)
        best = min(best, time.perf_counter() - start)
        tasks = timing.tasks
    return best, tasks


def _row(name: str, k: int, objective: str, program: Any, data: Dataset, compile_s: float) -> dict[str, Any]:
    report = simulate(program, [data], seed=0)
    c = report.cost
    wall, tasks = _wall(program)
    return {"model": name, "k": k, "objective": objective, "placement_error_uS": program.mapping_error_uS,
            "arrays_used": len(program.arrays_used), "latency_ns": c.latency_ns, "cycles": c.cycles_per_inference,
            "throughput_per_s": c.throughput_per_s, "period_ns": c.period_ns, "bottleneck": c.bottleneck,
            "layer_latency_ns": c.layer_latency_ns, "busy_ns": c.busy_ns, "energy_pJ": c.energy_pJ_per_inference,
            "energy_breakdown_pJ": c.energy_breakdown_pJ, "accuracy": report.accuracy,
            "timeline_wall_ms": 1e3 * wall, "timeline_tasks": tasks, "compile_s": compile_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objectives", default="error", help="comma-separated placement objectives (default error)")
    parser.add_argument("--out", default="cost", help="results/<out>.json and .txt")
    args = parser.parse_args()
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    rows: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for name, spec in _models().items():
        full = load_data(spec["data"], leac.compile(spec["model"], spec["chip"], k=1,
                                                     calibrate_on=spec["calibrate"]).graph)
        data = Dataset(full.name, full.x[:SAMPLES], full.y[:SAMPLES])
        for objective in objectives:
            for k in KS:
                print(f"{name} k={k} objective={objective}", file=sys.stderr)
                try:
                    program, seconds = _compile(spec, spec["chip"], k, objective)
                except (leac.LeacError, TypeError) as exc:  # e.g. a compile without the `objective` keyword
                    refused.append({"model": name, "k": k, "objective": objective, "error": str(exc)})
                    continue
                rows.append(_row(name, k, objective, program, data, seconds))
            for lanes, adcs in ((lanes, adcs) for lanes in LANES for adcs in ADCS):
                chip = spec["chip"]
                chip = dataclasses.replace(chip, periphery=dataclasses.replace(chip.periphery, adcs_per_array=adcs,
                                                                               digital_lanes=lanes, **ISAAC_STATIC))
                try:
                    program, seconds = _compile(spec, chip, 3, objective)
                except (leac.LeacError, TypeError):
                    continue  # reported above
                cost = estimate_cost(program)
                adcs_total = adcs * len(program.arrays_used)
                adc_power = adcs_total * chip.periphery.p_static_adc_uW
                sweep.append({"model": name, "objective": objective, "digital_lanes": lanes, "adcs_per_array": adcs,
                              "adcs_total": adcs_total, "latency_ns": cost.latency_ns, "period_ns": cost.period_ns,
                              "throughput_per_s": cost.throughput_per_s, "bottleneck": cost.bottleneck,
                              "adc_busy_ns": cost.busy_ns["adc"], "adc_energy_pJ": cost.energy_breakdown_pJ["adc"],
                              "adc_static_power_uW": adc_power,
                              "adc_static_pJ": static_energy_pJ(adc_power, cost.latency_ns),
                              "adc_static_pipelined_pJ": static_energy_pJ(adc_power, cost.period_ns),
                              "static_power_uW": cost.static_power_uW, "static_pJ": cost.energy_breakdown_pJ["static"],
                              "energy_pJ": cost.energy_pJ_per_inference})
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"rows": rows, "adc_sweep": sweep, "refused": refused},
                                                         indent=1) + "\n")
    text = _text(rows, sweep, refused)
    (RESULTS / f"{args.out}.txt").write_text(text)
    print(text, end="")
    return 0


def _text(rows: list[dict[str, Any]], sweep: list[dict[str, Any]], refused: list[dict[str, Any]]) -> str:
    lines = [f"{'model':8} {'k':>2} {'objective':9} {'err uS':>7} {'arrays':>6} {'latency us':>10} {'cycles':>7} "
             f"{'inf/s':>9} {'bottleneck':>10} {'pJ':>8} {'dev':>7} {'ADC':>7} {'DAC':>7} {'digital':>7} "
             f"{'acc':>6} {'timeline ms':>11} {'tasks':>7}"]
    for r in rows:
        e = r["energy_breakdown_pJ"]
        lines.append(f"{r['model']:8} {r['k']:>2} {r['objective']:9} {r['placement_error_uS']:7.1f} "
                     f"{r['arrays_used']:>6} {r['latency_ns'] / 1e3:10.2f} {r['cycles']:7.0f} "
                     f"{r['throughput_per_s']:9.0f} {r['bottleneck']:>10} {r['energy_pJ']:8.1f} "
                     f"{e['device_reads']:7.1f} {e['adc']:7.1f} {e['dac']:7.1f} {e['digital']:7.1f} "
                     f"{100 * r['accuracy']:5.1f}% {r['timeline_wall_ms']:11.2f} {r['timeline_tasks']:>7}")
    lines.append("")
    lines.append("per-layer latency, us:")
    for r in rows:
        layers = ", ".join(f"{k} {v / 1e3:.2f}" for k, v in r["layer_latency_ns"].items())
        lines.append(f"  {r['model']} k={r['k']} {r['objective']}: {layers}")
    lines.append("")
    lines.append("adcs_per_array sweep at k = 3 with ISAAC's static powers (per ADC 2 mW, per DAC 3.9 uW, per array "
                 "1.25 uW, per digital lane 50 uW): ADC energy = conversions x e_adc_pJ (conv) + the ADCs' static "
                 "power x the latency (static; pipelined: x the period); total = every component's energy, static "
                 "included, of one inference:")
    lines.append(f"{'model':8} {'objective':9} {'lanes':>5} {'adcs':>4} {'ADCs used':>9} {'latency us':>10} "
                 f"{'inf/s':>9} {'bottleneck':>10} {'ADC busy us':>11} {'ADC conv pJ':>11} {'ADC static pJ':>13} "
                 f"{'ADC pJ':>9} {'ADC pipe pJ':>11} {'total pJ':>9}")
    for s in sweep:
        lines.append(f"{s['model']:8} {s['objective']:9} {s['digital_lanes']:>5} {s['adcs_per_array']:>4} "
                     f"{s['adcs_total']:>9} "
                     f"{s['latency_ns'] / 1e3:10.2f} {s['throughput_per_s']:9.0f} {s['bottleneck']:>10} "
                     f"{s['adc_busy_ns'] / 1e3:11.2f} {s['adc_energy_pJ']:11.1f} {s['adc_static_pJ']:13.1f} "
                     f"{s['adc_energy_pJ'] + s['adc_static_pJ']:9.1f} "
                     f"{s['adc_energy_pJ'] + s['adc_static_pipelined_pJ']:11.1f} {s['energy_pJ']:9.1f}")
    for r in refused:
        lines.append(f"REFUSED {r['model']} k={r['k']} objective={r['objective']}: {r['error']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
