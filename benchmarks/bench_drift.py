"""Accuracy against time after programming, and against k, on a PCM-like drifting chip; and a
conductance-dependent write-noise table against the constant sigma of the same mean (issue 21).

Drift: the digits MLP (examples/data/digits_mlp.onnx, ternary) is compiled at k = 1, 3 and 6 for synthetic
chips of 64 x 64 arrays (`synth_chip`, 2.5% stuck high, 0.5% stuck low) whose device is PCM-like, with
aihwkit's PCM numbers (src/aihwkit/inference/noise/pcm.py, `PCMLikeNoiseModel`, g_max = 25 uS):

- levels 6.25, 12.5, 18.75, 25 uS; stuck high 40 uS, stuck low 0.5 uS;
- write noise: aihwkit's programming-noise polynomial, sigma(G) = 0.26348 + 1.9650 x - 1.1731 x^2 uS,
  x = G / 25 uS (`write_noise_model`);
- read noise: uniform +-0.25 uS;
- drift: nu per level from aihwkit's `generate_drift_coefficients`, mu = clamp(-0.0155 ln(G / 25) + 0.0244,
  0.049, 0.1) and sigma = clamp(-0.0125 ln(G / 25) - 0.0059, 0.008, 0.045), t0 = 20 s (`drift`).

Each Program is simulated at --after 0, 1 s, 1 h, 1 d and 30 d with --trials seeds (one draw of the write
noise, the drift exponents and the read noise each); the accuracy is given as the mean and the standard
deviation over chips x trials. No drift compensation (aihwkit's global drift compensation rescales outputs by
a measured reference; leac's Programs keep their compile-time scales).

Write-noise table: the same model at k = 1 and 3 on the seed paper's RRAM device (levels 133 to 233 uS, read
noise +-10 uS) with the write noise as its constant 16.66 uS, and as a table proportional to the conductance
(CrossSim's NormalProportional form, sigma = a G) with the same mean over the levels, 16.66 uS.

Read-noise model: the k = 3 Programs of the paper's device again, with the uniform +-10 uS read noise, and
with a `read_noise_model` of the same variance at every level (sigma = 10 / sqrt(3) uS, Gaussian): accuracy,
and the wall time of one `simulate` of the 540 test digits (median of 5, one thread), which the model's
second product per read (the variances) costs.

Run:  python benchmarks/bench_drift.py [--chips 3] [--trials 3] [--out benchmarks/results/drift.json]
      (writes drift.json and drift.txt beside it; about 2 minutes on 2 shared cores)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lea_compiler.backends.sim import load_data, simulate, software_predictions  # noqa: E402
from lea_compiler.chip import DeviceModel, synth_chip  # noqa: E402
from lea_compiler.chip.variability import DriftModel, NoiseModel  # noqa: E402
from lea_compiler.compiler import compile_model  # noqa: E402
from lea_compiler.pipeline import CompileOptions  # noqa: E402

MODEL = ROOT / "examples" / "data" / "digits_mlp.onnx"
DATA = ROOT / "examples" / "data" / "digits_test.npz"
RESULTS = ROOT / "benchmarks" / "results"
TIMES = (("0", 0.0), ("1 s", 1.0), ("1 h", 3600.0), ("1 d", 86400.0), ("30 d", 30 * 86400.0))
KS = (1, 3, 6)
G_MAX = 25.0
PCM_LEVELS = (6.25, 12.5, 18.75, 25.0)
PCM_PROGRAMMING = (0.26348, 1.9650, -1.1731)  # aihwkit's prog_coeff, for g_max = 25 uS


def aihwkit_nu(g_uS: float) -> tuple[float, float]:
    """aihwkit's PCM drift exponent's mean and spread at a conductance (`generate_drift_coefficients`)."""
    relative = max(abs(g_uS / G_MAX), 1e-7)
    mu = min(max(-0.0155 * math.log(relative) + 0.0244, 0.049), 0.1)
    sigma = min(max(-0.0125 * math.log(relative) - 0.0059, 0.008), 0.045)
    return mu, sigma


def pcm_device() -> DeviceModel:
    nu = tuple(aihwkit_nu(g)[0] for g in PCM_LEVELS)
    nu_sigma = tuple(aihwkit_nu(g)[1] for g in PCM_LEVELS)
    return DeviceModel(levels_uS=PCM_LEVELS, stuck_high_uS=40.0, stuck_low_uS=0.5, write_noise_uS=0.0,
                       read_noise_uS=0.25, write_noise_model=NoiseModel(polynomial=PCM_PROGRAMMING, g_ref_uS=G_MAX),
                       drift=DriftModel(nu=nu, nu_sigma=nu_sigma, t0_s=20.0))


def rram_devices() -> dict[str, DeviceModel]:
    paper = DeviceModel()
    mean_level = sum(paper.levels_uS) / len(paper.levels_uS)
    proportional = tuple(paper.write_noise_uS * g / mean_level for g in paper.levels_uS)
    return {"constant": paper,
            "table": dataclasses.replace(paper, write_noise_model=NoiseModel(sigma_uS=proportional))}


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values),
            "max": max(values), "n": len(values)}


def run(chips: int, trials: int) -> dict:
    started = time.perf_counter()
    out: dict = {"model": str(MODEL.relative_to(ROOT)), "data": str(DATA.relative_to(ROOT)), "chips": chips,
                 "trials": trials, "pcm_device": dataclasses.asdict(pcm_device()), "drift": [], "write_noise": []}
    for chip_seed in range(chips):
        for k in KS:
            chip = synth_chip(arrays=96, rows=64, cols=64, seed=chip_seed, device=pcm_device())
            program = compile_model(MODEL, chip, CompileOptions(k=k, placer="greedy")).program
            data = [load_data(DATA, program.graph)]
            for label, after in TIMES:
                accuracy = [simulate(program, data, seed=seed, after=after).accuracy for seed in range(trials)]
                out["drift"].append({"chip": chip_seed, "k": k, "after": label, "after_s": after,
                                     "accuracy": accuracy, "devices": program.devices_used})
                print(f"drift chip {chip_seed} k={k} after {label}: {np.mean(accuracy):.4f}", file=sys.stderr)
        for name, device in rram_devices().items():
            for k in (1, 3):
                chip = synth_chip(arrays=96, rows=64, cols=64, seed=chip_seed, device=device)
                program = compile_model(MODEL, chip, CompileOptions(k=k, placer="greedy")).program
                data = [load_data(DATA, program.graph)]
                reports = [simulate(program, data, seed=seed) for seed in range(trials)]
                accuracy = [r.accuracy for r in reports]
                out["write_noise"].append({"chip": chip_seed, "k": k, "write_noise": name, "accuracy": accuracy,
                                           "layer_error": reports[0].layer_error})
                print(f"write noise {name} chip {chip_seed} k={k}: {np.mean(accuracy):.4f}", file=sys.stderr)
    out["read_noise"] = read_noise_runs(chips, trials)
    out["software_accuracy"] = simulate(program, data, ideal=True).data[0].software_accuracy
    out["seconds"] = time.perf_counter() - started
    return out


def read_noise_runs(chips: int, trials: int) -> list[dict]:
    paper = DeviceModel()
    gaussian = dataclasses.replace(paper, read_noise_model=NoiseModel(
        sigma_uS=(paper.read_noise_uS / math.sqrt(3.0),) * len(paper.levels_uS)))
    rows = []
    for chip_seed in range(chips):
        chip = synth_chip(arrays=96, rows=64, cols=64, seed=chip_seed, device=paper)
        program = compile_model(MODEL, chip, CompileOptions(k=3, placer="greedy")).program
        data = [load_data(DATA, program.graph)]
        software = software_predictions(program, data)  # onnxruntime once, outside the timed runs
        for name, device in (("uniform", paper), ("model", gaussian)):
            simulated = dataclasses.replace(chip, device=device)
            accuracy = [simulate(program, data, chip=simulated, seed=seed).accuracy for seed in range(trials)]
            times = []
            for _ in range(5):
                start = time.perf_counter()
                simulate(program, data, chip=simulated, seed=0, software=software)
                times.append(time.perf_counter() - start)
            rows.append({"chip": chip_seed, "read_noise": name, "accuracy": accuracy,
                         "seconds": statistics.median(times)})
            print(f"read noise {name} chip {chip_seed}: {np.mean(accuracy):.4f}", file=sys.stderr)
    return rows


def table(result: dict) -> str:
    lines = [f"digits MLP on PCM-like chips (aihwkit's PCM write noise and drift), {result['chips']} chips x "
             f"{result['trials']} trials; software {100 * result['software_accuracy']:.1f}%",
             "accuracy % after programming: mean +- std over chips x trials (min .. max)"]
    header = "k  devices " + "".join(f"{label:>26}" for label, _ in TIMES)
    lines.append(header)
    for k in KS:
        rows = [r for r in result["drift"] if r["k"] == k]
        cells = []
        for label, _ in TIMES:
            values = [100 * a for r in rows if r["after"] == label for a in r["accuracy"]]
            s = summary(values)
            cells.append(f"{s['mean']:6.1f} +- {s['std']:4.1f} ({s['min']:.1f}..{s['max']:.1f})")
        devices = statistics.fmean(r["devices"] for r in rows)
        lines.append(f"{k}  {devices:7.0f} " + "".join(f"{c:>26}" for c in cells))
    lines.append("")
    lines.append("write noise on the paper's RRAM device: constant 16.66 uS vs a table proportional to G "
                 "(same mean 16.66 uS)")
    lines.append("k  write noise   accuracy % mean +- std   layer output error (first trial, mean over chips)")
    for k in (1, 3):
        for name in ("constant", "table"):
            rows = [r for r in result["write_noise"] if r["k"] == k and r["write_noise"] == name]
            s = summary([100 * a for r in rows for a in r["accuracy"]])
            errors = {layer: statistics.fmean(r["layer_error"][layer] for r in rows)
                      for layer in rows[0]["layer_error"]}
            text = ", ".join(f"{layer} {100 * e:.2f}%" for layer, e in errors.items())
            lines.append(f"{k}  {name:11} {s['mean']:8.1f} +- {s['std']:4.1f}          {text}")
    lines.append("")
    lines.append("read noise on the paper's RRAM device, k = 3: uniform +-10 uS vs a read_noise_model of the same "
                 "variance (sigma 5.77 uS)")
    for name in ("uniform", "model"):
        rows = [r for r in result["read_noise"] if r["read_noise"] == name]
        s = summary([100 * a for r in rows for a in r["accuracy"]])
        seconds = statistics.fmean(r["seconds"] for r in rows)
        lines.append(f"  {name:8} accuracy {s['mean']:.1f} +- {s['std']:.1f} %, simulate (540 digits) "
                     f"{1e3 * seconds:.0f} ms (median of 5, mean over chips)")
    lines.append(f"({result['seconds']:.0f} s)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chips", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "drift.json"))
    args = parser.parse_args()
    result = run(args.chips, args.trials)
    text = table(result)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    Path(args.out).with_suffix(".txt").write_text(text)
    print(text, end="")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.txt')}")


if __name__ == "__main__":
    main()
