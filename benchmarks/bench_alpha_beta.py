"""(alpha, beta) grid on the multi-task Yin-Yang model (the seed paper's Fig. 5b).

The bundled 4-12-6-3 ternary tanh MLP (lea_compiler/data/yinyang_mlp.onnx) is
compiled for synthetic chips with the paper's statistics (32 arrays of
25 x 25, levels 133/167/200/233 uS, 2.5% stuck-high at 500 uS, 0.5%
stuck-low at 10 uS, write noise sigma 16.66 uS, read noise +-10 uS, 12-bit
DAC/ADC; and dead lines, which the paper's kernel maps show: each row and
column dead with probability 0.02, about one per array, as in the seed paper's
published kernel maps (kernel 0 has two dead columns, kernel 17 none);
`synth_chip(seed=s, dead_rows=0.02, dead_cols=0.02)`), for every 1 <= beta <= alpha <= 4, with the
greedy placer (the paper's) and OR-Tools CP-SAT (leac's default), and
simulated on both tasks' test sets (1,000 points each) with noise seed s.
Reported per (alpha, beta) and placer: median and quartiles over the chip
seeds of the mean two-task accuracy, and the mapping error (sum over copies
of |G on the chip - G target| over the placed regions, uS). A noise breakdown
at (1, 1) and (4, 4) reruns the same chips with write noise, read noise or
both switched off, to show where the remaining loss comes from.

Run:  python benchmarks/bench_alpha_beta.py [--seeds 20] [--jobs 2]
      [--out benchmarks/results/alpha_beta.json] [--png benchmarks/results/alpha_beta.png]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lea_runs import ROOT, YINYANG, group, pct, run_all, summarise
from plots import plot_alpha_beta

NOISE = {"write noise only": {"read_noise_uS": 0.0}, "read noise only": {"write_noise_uS": 0.0},
         "no noise (defects only)": {"write_noise_uS": 0.0, "read_noise_uS": 0.0}}
"""Noise breakdown at (1, 1) and (4, 4): the same chips with one or both noise sources off."""
PAIRS = [(a, b) for a in range(1, 5) for b in range(1, a + 1)]
PLACERS = ("greedy", "cpsat")
PAPER = {(1, 1): 56.5, (2, 2): 67.0, (3, 3): 68.2, (4, 1): 58.0, (4, 2): 66.8, (4, 3): 68.7, (4, 4): 70.3}
"""The paper's medians (hardware, greedy mapping, 100 runs; software baseline 72%)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dead-lines", type=float, default=0.02,
                        help="per-row and per-column probability of a dead line (default 0.02: about one per array)")
    parser.add_argument("--time-limit", type=float, default=10.0, help="CP-SAT budget (deterministic s)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "alpha_beta.json"))
    parser.add_argument("--png", default=str(ROOT / "benchmarks" / "results" / "alpha_beta.png"))
    args = parser.parse_args()
    lines = {"dead_rows": args.dead_lines, "dead_cols": args.dead_lines}
    cases = [{**YINYANG, "chip": {"seed": seed, **lines}, "sim_seed": seed,
              "options": {"k": alpha, "beta": beta, "placer": placer, "time_limit_s": args.time_limit}}
             for seed in range(args.seeds) for alpha, beta in PAIRS for placer in PLACERS]
    noise_cases = [{**YINYANG, "chip": {"seed": seed, **lines, **noise}, "sim_seed": seed, "noise": label,
                    "options": {"k": k, "placer": "cpsat", "time_limit_s": args.time_limit}}
                   for seed in range(args.seeds) for k in (1, 4) for label, noise in NOISE.items()]
    results = run_all(cases + noise_cases, args.jobs)
    noise_results, results = results[len(cases):], results[:len(cases)]
    key = lambda r: (r["options"]["k"], r["options"]["beta"], r["options"]["placer"])  # noqa: E731
    acc = group(results, key)
    err = group(results, key, "mapping_error_uS")
    software = results[0]["software_accuracy"]
    rows = []
    print(f"mean two-task accuracy %, median [q1, q3] over {args.seeds} chip seeds; software {pct(software)}")
    print(f"{'(a, b)':8} {'devices':>7} {'paper':>6} {'greedy':>20} {'cpsat':>20} {'map. err. greedy':>16}"
          f" {'cpsat':>8}")
    for alpha, beta in PAIRS:
        row = {"alpha": alpha, "beta": beta, "paper_median": PAPER.get((alpha, beta)),
               "devices": next(r["devices_used"] for r in results if key(r)[:2] == (alpha, beta))}
        for placer in PLACERS:
            row[placer] = {"accuracy": summarise(acc[(alpha, beta, placer)]),
                           "mapping_error_uS": summarise(err[(alpha, beta, placer)])}
        rows.append(row)
        cells = [f"{pct(row[p]['accuracy']['median'])} [{pct(row[p]['accuracy']['q1'])}, "
                 f"{pct(row[p]['accuracy']['q3'])}]" for p in PLACERS]
        paper = f"{row['paper_median']:.1f}" if row["paper_median"] else "-"
        print(f"({alpha}, {beta}){'':2} {row['devices']:>7} {paper:>6} {cells[0]:>20} {cells[1]:>20} "
              f"{row['greedy']['mapping_error_uS']['median']:>16.0f} "
              f"{row['cpsat']['mapping_error_uS']['median']:>8.0f}")
    breakdown = []
    print("\nnoise breakdown (cpsat), median [q1, q3]:")
    for k in (1, 4):
        for label in ["both (as above)", *NOISE]:
            values = (acc[(k, k, "cpsat")] if label.startswith("both") else
                      [r["accuracy"] for r in noise_results if r["noise"] == label and r["options"]["k"] == k])
            st = summarise(values)
            breakdown.append({"alpha": k, "beta": k, "noise": label, "accuracy": st})
            print(f"  ({k}, {k}) {label:26} {pct(st['median'])} [{pct(st['q1'])}, {pct(st['q3'])}]")
    out = {"benchmark": "alpha_beta", "model": "yinyang_mlp.onnx", "seeds": args.seeds, "dead_lines": args.dead_lines,
           "software_accuracy": software, "rows": rows, "noise_breakdown": breakdown,
           "runs": results + noise_results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    plot_alpha_beta(out, Path(args.png))

if __name__ == "__main__":
    main()
