"""Encodings against each other (issue 7): simple / rme / joint at k = 1..6 on the float models.

Models and chips (every chip `synth_chip(..., seed=s)` for s < --seeds):

- `yinyang`: the float Yin-Yang MLP (lea_compiler/data/yinyang_mlp_float.onnx), mean accuracy over the two
  task test sets, on paper-like chips (32 arrays of 25 x 25, 2.5% stuck high, 0.5% low);
- `digits`: the float digits MLP (examples/data/digits_mlp_float.onnx) on paper-like chips of 400 arrays,
  compiled with `--calibrate examples/data/digits_calib.npz`;
- `cnn`: the float digits CNN (examples/data/digits_cnn_float.onnx) on the same chips, on the 8 x 8 images
  (`digits_test_images.npz`, calibrated on `digits_calib_images.npz`);
- `yinyang-20`, `digits-20`, `cnn-20`: the same at 20% stuck devices (`stuck_high=0.1, stuck_low=0.1/0.9`).

Every case is compiled with alpha = beta = k (`CompileOptions(k=k, encoding=e)`, CP-SAT with a 2 s
deterministic budget; the default compensation with calibration data) and its Program simulated on its chip
three times with the same seed: with the chip's write and read noise (`accuracy`), with write noise only
(`accuracy_write_noise`) and without noise (`accuracy_no_noise`: the stuck devices only, what the encoding
can act on). So `accuracy_no_noise - accuracy` is the loss to noise and `accuracy_ideal - accuracy_no_noise`
the loss to the stuck devices. `accuracy_ideal` is `leac simulate --ideal` of the model compiled for a
defect-free chip of the same size: the quantization alone (independent of the seed, so computed once per
model, encoding and k). Mapping error of the mean: the relative RMS error, in weight units over all crossbar
layers, of the matrix the Program represents on its chip without noise (the mean over each column's
selected copies, stuck devices at their stuck conductance, no compensation; `program.represented_matrix`)
against the float weights: `mean_error_chip`, and on the defect-free chip: `mean_error_ideal`.

The summary gives, per model, k and encoding, the mean over seeds (chip-to-chip spread at 20% stuck is
+-5-10 points, so the mean of paired runs, not a median of three, decides between encodings) and the
mean paired difference to `simple` on the same chips with its standard error.

Run (about 35 minutes on 2 cores):

    nice python benchmarks/bench_encoding.py --seeds 5 --jobs 2

Results: benchmarks/results/encoding.json (every run and the summary) and encoding.txt (the tables).
With `--scale-noise chip --out benchmarks/results/encoding_scale_noise.json`, every compile chooses its
weight scales for the chip's noise too (`leac compile --scale-noise chip`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from lea_runs import DATA, EXAMPLES, ROOT, compile_case, median_of, run_all, with_noise

ENCODINGS = ("simple", "rme", "joint")
STUCK_20 = {"stuck_high": 0.1, "stuck_low": 0.1 / 0.9}
_YY = {"model": str(DATA / "yinyang_mlp_float.onnx"),
       "data": [str(DATA / "yinyang_task1_test.npz"), str(DATA / "yinyang_task2_test.npz")], "chip": {}}
_DIGITS = {"model": str(EXAMPLES / "digits_mlp_float.onnx"), "data": [str(EXAMPLES / "digits_test.npz")],
           "calibrate": str(EXAMPLES / "digits_calib.npz"), "chip": {"arrays": 400}}
_CNN = {"model": str(EXAMPLES / "digits_cnn_float.onnx"), "data": [str(EXAMPLES / "digits_test_images.npz")],
        "calibrate": str(EXAMPLES / "digits_calib_images.npz"), "chip": {"arrays": 400}}
MODELS: dict[str, dict[str, Any]] = {
    "yinyang": _YY, "digits": _DIGITS, "cnn": _CNN,
    **{f"{name}-20": {**spec, "chip": {**spec["chip"], **STUCK_20}}
       for name, spec in (("yinyang", _YY), ("digits", _DIGITS), ("cnn", _CNN))},
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
    from lea_compiler.backends.sim import simulate
    from lea_compiler.errors import DoesNotFitError

    start = time.perf_counter()
    try:
        chip, result, datasets = compile_case(case)
    except DoesNotFitError as exc:
        return {**case, "error": str(exc)}
    program = result.program
    out: dict[str, Any] = {**case}
    if case.get("ideal_only"):
        out["accuracy_ideal"] = simulate(program, datasets, ideal=True).accuracy
        out["mean_error_ideal"] = mean_error(program, chip)
    else:
        out["accuracy"] = simulate(program, datasets, seed=case["sim_seed"]).accuracy
        write_only = with_noise(chip, chip.device.write_noise_uS, 0.0)
        out["accuracy_write_noise"] = simulate(program, datasets, chip=write_only, seed=case["sim_seed"]).accuracy
        out["accuracy_no_noise"] = simulate(program, datasets, chip=with_noise(chip, 0.0, 0.0),
                                            seed=case["sim_seed"]).accuracy
        out["mean_error_chip"] = mean_error(program, chip)
        out["devices_used"] = program.devices_used
    out["seconds"] = time.perf_counter() - start
    return out


def cases_for(models: list[str], ks: list[int], seeds: int, time_limit: float,
              scale_noise: str = "none") -> list[dict[str, Any]]:
    """Every (model, encoding, k, seed) run, and one defect-free ideal run per (base model, encoding, k)."""
    cases = []
    for name in models:
        spec = MODELS[name]
        base = {"name": name, "model": spec["model"], "data": spec["data"],
                **({"calibrate": spec["calibrate"]} if "calibrate" in spec else {})}
        for encoding in ENCODINGS:
            for k in ks:
                options = {"k": k, "encoding": encoding, "time_limit_s": time_limit, "scale_noise": scale_noise}
                if not spec["chip"].get("stuck_high"):  # the ideal runs once per model, not per fault rate
                    clean = {**spec["chip"], "stuck_high": 0.0, "stuck_low": 0.0, "seed": 0}
                    cases.append({**base, "chip": clean, "options": options, "ideal_only": True})
                for seed in range(seeds):
                    cases.append({**base, "chip": {**spec["chip"], "seed": seed}, "options": options,
                                  "sim_seed": seed})
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ks", default="1,2,3,4,5,6")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--time-limit", type=float, default=2.0, help="CP-SAT budget (deterministic s)")
    parser.add_argument("--scale-noise", default="none", help="leac compile --scale-noise for every compile")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "encoding.json"))
    args = parser.parse_args()
    cases = cases_for(args.models.split(","), [int(k) for k in args.ks.split(",")], args.seeds, args.time_limit,
                      args.scale_noise)
    results = run_all(cases, args.jobs, run)
    summary = summarise(results)
    payload = {"command": "python benchmarks/bench_encoding.py " + " ".join(sys.argv[1:]), "summary": summary,
               "runs": results}
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")
    text = table(summary) + "\n\n" + noise_table(summary)
    with open(args.out.removesuffix(".json") + ".txt", "w") as f:
        f.write(text + "\n")
    print(text)
    print(f"wrote {args.out}")


def _key(r: dict[str, Any]) -> tuple[str, int, str]:
    return r["name"], r["options"]["k"], r["options"]["encoding"]


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means over seeds per (model, k, encoding), and the paired difference to `simple` on the same chips;
    the ideal numbers come from the defect-free runs of the base model."""
    ideal = {(r["name"], r["options"]["k"], r["options"]["encoding"]): r for r in results if r.get("ideal_only")}
    runs: dict[tuple[str, int, str], dict[int, dict[str, Any]]] = {}
    for r in results:
        if "accuracy" in r:
            runs.setdefault(_key(r), {})[r["chip"]["seed"]] = r
    rows = []
    for name, k, encoding in sorted(runs, key=lambda key: (list(MODELS).index(key[0]), key[1],
                                                          ENCODINGS.index(key[2]))):
        mine, simple = runs[(name, k, encoding)], runs.get((name, k, "simple"), {})
        clean = ideal.get((name.removesuffix("-20"), k, encoding), {})
        paired = [mine[s]["accuracy"] - simple[s]["accuracy"] for s in sorted(mine) if s in simple]

        def mean(field: str, group: dict[int, dict[str, Any]] = mine) -> float:
            return float(np.mean([r[field] for r in group.values()]))

        rows.append({
            "model": name, "k": k, "encoding": encoding, "n": len(mine),
            "accuracy_ideal": clean.get("accuracy_ideal"), "mean_error_ideal": clean.get("mean_error_ideal"),
            "accuracy": mean("accuracy"), "accuracy_median": median_of([r["accuracy"] for r in mine.values()]),
            "accuracy_write_noise": mean("accuracy_write_noise"), "accuracy_no_noise": mean("accuracy_no_noise"),
            "mean_error_chip": mean("mean_error_chip"),
            "vs_simple": float(np.mean(paired)) if paired else None,
            "vs_simple_se": float(np.std(paired, ddof=1) / np.sqrt(len(paired))) if len(paired) > 1 else None,
        })
    return rows


def _pct(x: float | None, signed: bool = False) -> str:
    return "-" if x is None else (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}")


def table(rows: list[dict[str, Any]]) -> str:
    """The accuracy table (means over seeds, %; mapping error of the mean as % of the RMS weight)."""
    lines = ["| model | k | encoding | ideal acc | ideal mean err | chip acc | vs simple (+-SE) | write noise only "
             "| no noise | chip mean err |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        versus = "" if r["encoding"] == "simple" else (
            f"{_pct(r['vs_simple'], True)} +- {_pct(r['vs_simple_se'])}" if r["vs_simple"] is not None else "-")
        lines.append(f"| {r['model']} | {r['k']} | {r['encoding']} | {_pct(r['accuracy_ideal'])} "
                     f"| {_pct(r['mean_error_ideal'])} | {_pct(r['accuracy'])} | {versus} "
                     f"| {_pct(r['accuracy_write_noise'])} | {_pct(r['accuracy_no_noise'])} "
                     f"| {_pct(r['mean_error_chip'])} |")
    return "\n".join(lines)


def noise_table(rows: list[dict[str, Any]]) -> str:
    """Where the loss to the ideal (quantized) accuracy goes, per model and k, for joint encoding: to noise
    (no noise - with noise; of which read noise: write noise only - with noise) and to stuck devices
    (ideal - no noise), in points."""
    lines = ["| model | k | ideal | chip | loss to noise | of it read noise | loss to stuck devices |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["encoding"] != "joint" or r["accuracy_ideal"] is None:
            continue
        lines.append(f"| {r['model']} | {r['k']} | {_pct(r['accuracy_ideal'])} | {_pct(r['accuracy'])} "
                     f"| {_pct(r['accuracy_no_noise'] - r['accuracy'])} "
                     f"| {_pct(r['accuracy_write_noise'] - r['accuracy'])} "
                     f"| {_pct(r['accuracy_ideal'] - r['accuracy_no_noise'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
