"""Encodings against each other (issue 7): simple / rme / joint at k = 1, 2, 4, 6 on float models.

Models and chips:

- `yinyang`: the float Yin-Yang MLP (lea_compiler/data/yinyang_mlp_float.onnx), mean accuracy over the two
  task test sets, on paper-like chips `synth_chip(seed=s)` (32 arrays of 25 x 25, 2.5% stuck high, 0.5% low);
- `digits`: the float digits MLP (examples/data/digits_mlp_float.onnx) on `synth_chip(arrays=400, seed=s)`,
  compiled with `--calibrate examples/data/digits_calib.npz`;
- `digits-20`: the same at 20% stuck devices (`stuck_high=0.1, stuck_low=0.1/0.9`).

Every case is compiled with alpha = beta = k (`CompileOptions(k=k, encoding=e)`, CP-SAT with a 2 s
deterministic budget) and simulated with the chip's write and read noise (seeded: `accuracy`), and the same
Program again on the same chip without noise (`accuracy_no_noise`: the stuck devices only, what the encoding
can act on; the gap to `accuracy` is the write/read noise). `accuracy_ideal` is `leac simulate --ideal` of
the model compiled for a defect-free chip of the same size: the quantization alone (independent of the
seed, so computed once per model, encoding and k). Mapping error of the mean: the relative RMS error, in
weight units over all crossbar layers, of the matrix the Program represents on its chip without noise
(the mean over each column's selected copies, stuck devices at their stuck conductance, no compensation;
`program.represented_matrix`) against the float weights: `mean_error_chip`, and on the defect-free chip:
`mean_error_ideal`.

Run (about 8 minutes on 2 cores):

    nice python benchmarks/bench_encoding.py --seeds 3 --jobs 2

Results: benchmarks/results/encoding.json (every run, and the medians per model, encoding and k).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

import numpy as np
from lea_runs import DATA, EXAMPLES, ROOT, _portable, median_of

ENCODINGS = ("simple", "rme", "joint")
MODELS: dict[str, dict[str, Any]] = {
    "yinyang": {"model": str(DATA / "yinyang_mlp_float.onnx"),
                "data": [str(DATA / "yinyang_task1_test.npz"), str(DATA / "yinyang_task2_test.npz")],
                "chip": {}},
    "digits": {"model": str(EXAMPLES / "digits_mlp_float.onnx"), "data": [str(EXAMPLES / "digits_test.npz")],
               "calibrate": str(EXAMPLES / "digits_calib.npz"), "chip": {"arrays": 400}},
    "digits-20": {"model": str(EXAMPLES / "digits_mlp_float.onnx"), "data": [str(EXAMPLES / "digits_test.npz")],
                  "calibrate": str(EXAMPLES / "digits_calib.npz"),
                  "chip": {"arrays": 400, "stuck_high": 0.1, "stuck_low": 0.1 / 0.9}},
}


def mean_error(program: Any, chip: Any) -> float:
    """Relative RMS error (weight units, all crossbar layers) of the represented matrices against the weights."""
    from lea_compiler.passes.quantize import crossbar_matrix
    from lea_compiler.program import represented_matrix

    num = den = 0.0
    for layer in program.layers:
        w = crossbar_matrix(program.graph.node(layer.name), layer.bias_row)
        num += float(np.sum((represented_matrix(layer, chip) - w) ** 2))
        den += float(np.sum(w**2))
    return float(np.sqrt(num / den)) if den > 0 else 0.0


def run(case: dict[str, Any]) -> dict[str, Any]:
    """Compile case["model"] for synth_chip(**case["chip"]) with case["options"]; simulate (see the docstring).
    With case["ideal_only"], the chip is defect-free and only the ideal simulation runs."""
    from lea_compiler.backends.sim import load_data, simulate
    from lea_compiler.chip import synth_chip
    from lea_compiler.compiler import compile_model
    from lea_compiler.errors import DoesNotFitError
    from lea_compiler.pipeline import CompileOptions

    start = time.perf_counter()
    chip = synth_chip(**case["chip"])
    try:
        result = compile_model(case["model"], chip, CompileOptions(**case["options"]),
                               calibrate_on=case.get("calibrate"))
    except DoesNotFitError as exc:
        return {**case, "error": str(exc)}
    program = result.program
    datasets = [load_data(path, program.graph) for path in case["data"]]
    out: dict[str, Any] = {**case}
    if case.get("ideal_only"):
        out["accuracy_ideal"] = simulate(program, datasets, ideal=True).accuracy
        out["mean_error_ideal"] = mean_error(program, chip)
    else:
        out["accuracy"] = simulate(program, datasets, seed=case["sim_seed"]).accuracy
        quiet = dataclasses.replace(chip, device=dataclasses.replace(chip.device, write_noise_uS=0.0,
                                                                     read_noise_uS=0.0))
        out["accuracy_no_noise"] = simulate(program, datasets, chip=quiet, seed=case["sim_seed"]).accuracy
        out["mean_error_chip"] = mean_error(program, chip)
        out["devices_used"] = program.devices_used
    out["seconds"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ks", default="1,2,4,6")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--time-limit", type=float, default=2.0, help="CP-SAT budget (deterministic s)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "encoding.json"))
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    cases = []
    for name in args.models.split(","):
        spec = MODELS[name]
        base = {"name": name, "model": spec["model"], "data": spec["data"],
                **({"calibrate": spec["calibrate"]} if "calibrate" in spec else {})}
        for encoding in ENCODINGS:
            for k in ks:
                options = {"k": k, "encoding": encoding, "time_limit_s": args.time_limit}
                if not spec["chip"].get("stuck_high"):  # the ideal runs once per model, not per fault rate
                    clean = {**spec["chip"], "stuck_high": 0.0, "stuck_low": 0.0, "seed": 0}
                    cases.append({**base, "chip": clean, "options": options, "ideal_only": True})
                for seed in range(args.seeds):
                    cases.append({**base, "chip": {**spec["chip"], "seed": seed}, "options": options,
                                  "sim_seed": seed})
    from concurrent.futures import ProcessPoolExecutor

    results = []
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        for done, result in enumerate(pool.map(run, cases, chunksize=1), start=1):
            results.append(_portable(result))
            print(f"\r{done}/{len(cases)} runs, {time.perf_counter() - start:.0f} s", end="", file=sys.stderr,
                  flush=True)
    print(file=sys.stderr)
    summary = summarise(results)
    payload = {"command": "python benchmarks/bench_encoding.py " + " ".join(sys.argv[1:]), "summary": summary,
               "runs": results}
    path = args.out
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")
    print(table(summary))
    print(f"wrote {path}")


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (model, encoding, k); the ideal numbers come from the defect-free runs of the base model."""
    ideal = {(r["name"], r["options"]["encoding"], r["options"]["k"]): r for r in results if r.get("ideal_only")}
    rows = []
    keys = sorted({(r["name"], r["options"]["k"], r["options"]["encoding"]) for r in results if "accuracy" in r},
                  key=lambda key: (list(MODELS).index(key[0]), key[1], ENCODINGS.index(key[2])))
    for name, k, encoding in keys:
        runs = [r for r in results if "accuracy" in r and (r["name"], r["options"]["k"],
                                                          r["options"]["encoding"]) == (name, k, encoding)]
        clean = ideal.get((name.split("-")[0], encoding, k), {})
        rows.append({
            "model": name, "k": k, "encoding": encoding, "n": len(runs),
            "accuracy_ideal": clean.get("accuracy_ideal"), "mean_error_ideal": clean.get("mean_error_ideal"),
            "accuracy": median_of([r["accuracy"] for r in runs]),
            "accuracy_no_noise": median_of([r["accuracy_no_noise"] for r in runs]),
            "mean_error_chip": median_of([r["mean_error_chip"] for r in runs]),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the summary (accuracy %, mapping error of the mean as % of the RMS weight)."""
    lines = ["| model | k | encoding | ideal acc | ideal mean err | chip acc (noise) | chip acc (no noise) "
             "| chip mean err |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    for r in rows:
        lines.append(f"| {r['model']} | {r['k']} | {r['encoding']} | {pct(r['accuracy_ideal'])} "
                     f"| {pct(r['mean_error_ideal'])} | {pct(r['accuracy'])} | {pct(r['accuracy_no_noise'])} "
                     f"| {pct(r['mean_error_chip'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
