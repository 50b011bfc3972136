"""Accuracy against the stuck-at-fault rate (the seed paper's Fig. 4b), and LEA against a committee machine.

The scikit-learn digits MLP (64-150-10, ternary weights, examples/digits.py)
is compiled for synthetic chips of 400 arrays of 25 x 25 with the paper's
device model (levels 133/167/200/233 uS, write noise sigma 16.66 uS, read
noise +-10 uS, 12-bit DAC/ADC) and a stuck-at-fault rate of 0, 5, 10, 20,
40, 50%: half of the faulty devices stuck high (500 uS), half stuck low
(10 uS), independently per device; `synth_chip(arrays=400, seed=s,
stuck_high=r/2, stuck_low=(r/2)/(1-r/2))`. For k = 1..6 (alpha = beta = k),
each placer (greedy, the paper's; cpsat, leac's default) and each ensemble
(`layer`: LEA; `network`: a committee machine of k whole-network copies
averaged at the output, same device count), the Program is simulated on the
digits test set with noise seed s. At k = 6 the model needs 133,200 of the
chip's 250,000 devices, so the placer has some choice of regions.

Every Program is compiled with `--calibrate digits_calib.npz` (256 training
images) and simulated twice: as compiled, with leac's stuck-device
compensation (passes/compensate.py: a per-column gain and offset fitted to
the known stuck devices), and with that compensation removed, which is the
paper's LEA. Same placement, same noise.

Reported per point: mean, standard deviation, median and quartiles of top-1
accuracy over the chip seeds; devices used. Plots: accuracy against fault
rate, one line per k, and at the largest k each part of leac and the committee machine (benchmarks/plots.py).

Run:  python benchmarks/bench_fault_rate.py [--seeds 10] [--jobs 2]
      [--placers greedy,cpsat] [--ensembles layer,network] [--committee-k 2,4,6] [--time-limit 2] [--encoding E]
      [--out benchmarks/results/fault_rate.json] [--png benchmarks/results/fault_rate.png]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lea_runs import EXAMPLES, FAULT_RATES, PAPER_MNIST, ROOT, group, pct, run_all, summarise
from plots import plot_fault_rate

from lea_compiler.pipeline import CompileOptions

RATES = FAULT_RATES
PAPER = PAPER_MNIST
"""The paper's MNIST 784-150-10 results (alpha = 1 and LEA alpha = 6), for the same rates."""


def chip_for(rate: float, seed: int, arrays: int) -> dict:
    high = rate / 2
    return {"arrays": arrays, "seed": seed, "stuck_high": high, "stuck_low": high / (1 - high) if high < 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--arrays", type=int, default=400)
    parser.add_argument("--ks", default="1,2,3,4,5,6")
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES))
    parser.add_argument("--placers", default="greedy,cpsat")
    parser.add_argument("--ensembles", default="layer,network")
    parser.add_argument("--committee-k", default="2,4,6", help="k values for --ensemble network (cpsat placer)")
    parser.add_argument("--time-limit", type=float, default=2.0, help="CP-SAT budget (deterministic s)")
    parser.add_argument("--encoding", default=None, help="--encoding for every compile (default: leac's default)")
    parser.add_argument("--model", default=str(EXAMPLES / "digits_mlp.onnx"))
    parser.add_argument("--data", default=str(EXAMPLES / "digits_test.npz"))
    parser.add_argument("--calibrate", default=str(EXAMPLES / "digits_calib.npz"),
                        help="calibration data for leac compile --calibrate ('' for none)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fault_rate.json"))
    parser.add_argument("--png", default=str(ROOT / "benchmarks" / "results" / "fault_rate.png"))
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    placers = args.placers.split(",")
    ensembles = args.ensembles.split(",")
    committee_k = [int(k) for k in args.committee_k.split(",")]
    base = {"model": args.model, "data": [args.data], "uncompensated": True,
            **({"calibrate": args.calibrate} if args.calibrate else {})}
    encoding = {"encoding": args.encoding} if args.encoding else {}
    cases = []
    for seed in range(args.seeds):
        for rate in rates:
            chip = chip_for(rate, seed, args.arrays)
            for k in ks:
                for placer in placers:
                    cases.append({**base, "chip": chip, "sim_seed": seed, "rate": rate,
                                  "options": {"k": k, "placer": placer, "time_limit_s": args.time_limit, **encoding}})
            if "network" in ensembles:
                for k in committee_k:
                    cases.append({**base, "chip": chip, "sim_seed": seed, "rate": rate,
                                  "options": {"k": k, "placer": "cpsat", "time_limit_s": args.time_limit,
                                              "ensemble": "network", **encoding}})
    results = run_all(cases, args.jobs)
    # every run answers twice: with leac's stuck-device compensation (as compiled) and without (the paper's LEA)
    rows = []
    for r in results:
        if "accuracy" in r:
            e, p = r["options"].get("ensemble", "layer"), r["options"]["placer"]
            rows.append({"key": (e, p, "compensated", r["options"]["k"], r["rate"]), "accuracy": r["accuracy"],
                         "devices_used": r["devices_used"]})
            rows.append({"key": (e, p, "none", r["options"]["k"], r["rate"]),
                         "accuracy": r["accuracy_uncompensated"], "devices_used": r["devices_used"]})
    acc = group(rows, lambda r: r["key"])
    devices = {r["key"][3]: r["devices_used"] for r in rows}
    failed = [r for r in results if "error" in r]
    software = next(r["software_accuracy"] for r in results if "software_accuracy" in r)
    points = [{"ensemble": e, "placer": p, "compensation": c, "k": k, "rate": rate, "devices": devices.get(k),
               "accuracy": summarise(values)} for (e, p, c, k, rate), values in sorted(acc.items())]
    print(f"{Path(args.model).name}, top-1 % mean +- std over {args.seeds} chip seeds; software {pct(software)}")
    header = "".join(f"{int(100 * r):>12}%" for r in rates)
    schemes = sorted({key[:3] for key in acc}, key=lambda t: (t[0], t[1] != "greedy", t[2] != "none"))
    for ensemble, placer, comp in schemes:
        label = "with compensation" if comp == "compensated" else "no compensation"
        print(f"\n{ensemble} ensemble, {placer} placer, {label}; rate:{header}")
        for k in sorted({key[3] for key in acc if key[:3] == (ensemble, placer, comp)}):
            cells = []
            for rate in rates:
                values = acc.get((ensemble, placer, comp, k, rate))
                st = summarise(values) if values else None
                cells.append(f"{pct(st['mean']):>6} +-{pct(st['std']):>4}" if st else f"{'-':>12}")
            print(f"k = {k} ({devices.get(k, 0):>6} devices) " + " ".join(cells))
    for k, row in PAPER.items():
        print(f"paper MNIST alpha = {k}: " + " ".join(f"{v:>6}" for v in row))
    if failed:
        print(f"{len(failed)} runs did not fit: {failed[0]['error']}")
    out = {"benchmark": "fault_rate", "model": Path(args.model).name, "seeds": args.seeds, "arrays": args.arrays,
           "calibrate": Path(args.calibrate).name if args.calibrate else None, "time_limit_s": args.time_limit,
           "encoding": args.encoding or CompileOptions().encoding, "software_accuracy": software,
           "paper_mnist": {str(k): v for k, v in PAPER.items()},
           "points": points, "runs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    plot_fault_rate(out, Path(args.png))

if __name__ == "__main__":
    main()
