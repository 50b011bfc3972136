"""Devices against accuracy: what each extra copy buys (issue 5, benchmark 3).

Reads the results of the (alpha, beta) grid (Yin-Yang) and of the fault-rate
sweeps (digits MLP, and the digits CNN when its sweep was run) and puts, for
every k, the devices the Program uses beside the accuracy it reaches (mean over
the chip seeds), for LEA with and without leac's stuck-device compensation and
for the committee machine. No new runs: rerun those benchmarks first.

Run:  python benchmarks/bench_devices.py [--png benchmarks/results/devices.png]
      [--out benchmarks/results/devices.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lea_runs import ROOT, pct
from plots import plot_devices

RESULTS = ROOT / "benchmarks" / "results"


def yinyang_rows() -> list[dict]:
    data = json.loads((RESULTS / "alpha_beta.json").read_text())
    return [{"model": "Yin-Yang 4-12-6-3", "scheme": f"LEA {placer}, paper-like chip", "k": row["alpha"],
             "devices": row["devices"], "accuracy": row[placer]["accuracy"]["mean"],
             "median": row[placer]["accuracy"]["median"], "software": data["software_accuracy"]}
            for row in data["rows"] if row["alpha"] == row["beta"] for placer in ("greedy", "cpsat")]


def fault_rows(path: Path, rates: tuple[float, ...]) -> list[dict]:
    data = json.loads(path.read_text())
    names = {("layer", "none"): "LEA", ("layer", "compensated"): "LEA + compensation",
             ("network", "none"): "committee", ("network", "compensated"): "committee + compensation"}
    rows = []
    for p in data["points"]:
        if p["rate"] in rates and p["placer"] == "cpsat":
            rows.append({"model": data["model"], "scheme": f"{names[(p['ensemble'], p['compensation'])]}, "
                                                           f"{int(100 * p['rate'])}% stuck",
                         "k": p["k"], "devices": p["devices"], "accuracy": p["accuracy"]["mean"],
                         "median": p["accuracy"]["median"], "software": data["software_accuracy"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="0.1,0.2", help="fault rates to show from the sweeps")
    parser.add_argument("--out", default=str(RESULTS / "devices.json"))
    parser.add_argument("--png", default=str(RESULTS / "devices.png"))
    args = parser.parse_args()
    rates = tuple(float(r) for r in args.rates.split(","))
    panels = {"Yin-Yang": yinyang_rows()}
    for name, file in (("digits MLP", "fault_rate.json"), ("digits CNN", "fault_rate_cnn.json")):
        if (RESULTS / file).exists():
            panels[name] = fault_rows(RESULTS / file, rates)
    for name, rows in panels.items():
        print(f"\n{name} (software {pct(rows[0]['software'])}%): accuracy % (mean over chip seeds) by devices used")
        for scheme in dict.fromkeys(r["scheme"] for r in rows):
            cells = [f"k={r['k']}: {r['devices']} -> {pct(r['accuracy'])}" for r in rows if r["scheme"] == scheme]
            print(f"  {scheme:42} " + "; ".join(cells))
    Path(args.out).write_text(json.dumps(panels, indent=1) + "\n")
    print(f"wrote {args.out}")
    plot_devices(panels, Path(args.png))

if __name__ == "__main__":
    main()
