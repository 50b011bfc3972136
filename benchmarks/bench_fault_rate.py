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

Reported per point: mean, standard deviation, median and quartiles of top-1
accuracy over the chip seeds; devices used. Plots: accuracy against fault
rate, one line per k (and the committee machine against LEA).

Run:  python benchmarks/bench_fault_rate.py [--seeds 10] [--jobs 2]
      [--placers greedy,cpsat] [--ensembles layer,network] [--committee-k 2,4,6]
      [--out benchmarks/results/fault_rate.json] [--png benchmarks/results/fault_rate.png]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lea_runs import EXAMPLES, ROOT, group, pct, pyplot, run_all, save_png, summarise

RATES = (0.0, 0.05, 0.10, 0.20, 0.40, 0.50)
PAPER = {1: (94.0, 87.6, 72.7, 43.4, 19.7, 15.2), 6: (94.3, 93.5, 92.3, 89.6, 62.4, 45.3)}
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
    parser.add_argument("--time-limit", type=float, default=5.0, help="CP-SAT budget (deterministic s)")
    parser.add_argument("--model", default=str(EXAMPLES / "digits_mlp.onnx"))
    parser.add_argument("--data", default=str(EXAMPLES / "digits_test.npz"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fault_rate.json"))
    parser.add_argument("--png", default=str(ROOT / "benchmarks" / "results" / "fault_rate.png"))
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    placers = args.placers.split(",")
    ensembles = args.ensembles.split(",")
    committee_k = [int(k) for k in args.committee_k.split(",")]
    base = {"model": args.model, "data": [args.data]}
    cases = []
    for seed in range(args.seeds):
        for rate in rates:
            chip = chip_for(rate, seed, args.arrays)
            for k in ks:
                for placer in placers:
                    cases.append({**base, "chip": chip, "sim_seed": seed, "rate": rate,
                                  "options": {"k": k, "placer": placer, "time_limit_s": args.time_limit}})
            if "network" in ensembles:
                for k in committee_k:
                    cases.append({**base, "chip": chip, "sim_seed": seed, "rate": rate,
                                  "options": {"k": k, "placer": "cpsat", "time_limit_s": args.time_limit,
                                              "ensemble": "network"}})
    results = run_all(cases, args.jobs)

    def key(r: dict) -> tuple:
        return r["options"].get("ensemble", "layer"), r["options"]["placer"], r["options"]["k"], r["rate"]

    acc = group(results, key)
    devices = {key(r): r["devices_used"] for r in results if "devices_used" in r}
    failed = [r for r in results if "error" in r]
    software = next(r["software_accuracy"] for r in results if "software_accuracy" in r)
    points = [{"ensemble": e, "placer": p, "k": k, "rate": rate, "devices": devices.get((e, p, k, rate)),
               "accuracy": summarise(values)} for (e, p, k, rate), values in sorted(acc.items())]
    print(f"digits MLP, top-1 % mean +- std over {args.seeds} chip seeds; software {pct(software)}")
    header = "".join(f"{int(100 * r):>12}%" for r in rates)
    for ensemble, placer in sorted({(e, p) for e, p, _, _ in acc}):
        print(f"\n{ensemble} ensemble, {placer} placer; rate:{header}")
        for k in sorted({k for e, p, k, _ in acc if (e, p) == (ensemble, placer)}):
            cells = []
            for rate in rates:
                values = acc.get((ensemble, placer, k, rate))
                s = summarise(values) if values else None
                cells.append(f"{pct(s['mean']):>6} +-{pct(s['std']):>4}" if s else f"{'-':>12}")
            print(f"k = {k} ({devices.get((ensemble, placer, k, rates[0]), 0):>6} devices) " + " ".join(cells))
    for k, row in PAPER.items():
        print(f"paper MNIST alpha = {k}: " + " ".join(f"{v:>6}" for v in row))
    if failed:
        print(f"{len(failed)} runs did not fit: {failed[0]['error']}")
    out = {"benchmark": "fault_rate", "model": Path(args.model).name, "seeds": args.seeds, "arrays": args.arrays,
           "software_accuracy": software, "paper_mnist": {str(k): v for k, v in PAPER.items()},
           "points": points, "runs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    plt = pyplot()
    if plt is None:
        return
    panels = sorted({(e, p) for e, p, _, _ in acc if e == "layer"}) + (
        [("network", "cpsat")] if "network" in ensembles else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (ensemble, placer) in zip(axes[0], panels, strict=True):
        shown = ks if ensemble == "layer" else committee_k
        for k in shown:
            xs = [100 * r for r in rates if (ensemble, placer, k, r) in acc]
            stats = [summarise(acc[(ensemble, placer, k, r)]) for r in rates if (ensemble, placer, k, r) in acc]
            ax.errorbar(xs, [100 * s["mean"] for s in stats], yerr=[100 * s["std"] for s in stats], marker="o",
                        capsize=3, label=f"k = {k}")
            if ensemble == "network":
                lea = [summarise(acc[("layer", "cpsat", k, r)]) for r in rates if ("layer", "cpsat", k, r) in acc]
                if len(lea) == len(xs):
                    ax.plot(xs, [100 * s["mean"] for s in lea], ls=":", color=ax.lines[-1].get_color(),
                            label=f"LEA k = {k}")
        ax.axhline(100 * software, color="gray", ls="--", label="software")
        ax.set_title(f"{'LEA' if ensemble == 'layer' else 'committee machine'}, {placer} placer")
        ax.set_xlabel("stuck-at-fault rate (%)")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"digits top-1 accuracy (%), mean +- std over {args.seeds} chips")
    save_png(fig, Path(args.png))


if __name__ == "__main__":
    main()
