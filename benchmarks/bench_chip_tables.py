"""Loading a chip whose device has the largest per-level tables: 65,535 levels with a write-noise table, a
read-noise table and per-level drift nu and nu_sigma, against the same chip without the tables.

The tables are checked once (`variability_problems`, in numpy for a valid file), not again in the models'
constructors. The difference of the two times is what the four 65,535-value tables cost to parse, check
and build.

Run:  python benchmarks/bench_chip_tables.py [--repeat N]
      (prints CPU seconds of `load_chip`, the best of N runs (default 5); writes results/chip_tables.txt)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lea_compiler.chip import load_chip  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LEVELS = 65_535


def _document(tables: bool) -> dict[str, object]:
    levels = [1.0 + 0.01 * i for i in range(LEVELS)]
    device: dict[str, object] = {"levels_uS": levels}
    if tables:
        device["write_noise_model"] = {"sigma_uS": [0.5 + 1e-5 * i for i in range(LEVELS)]}
        device["read_noise_model"] = {"sigma_uS": [0.2 + 1e-5 * i for i in range(LEVELS)]}
        device["drift"] = {"nu": [0.1 - 7e-7 * i for i in range(LEVELS)],
                           "nu_sigma": [0.01 + 1e-7 * i for i in range(LEVELS)]}
    return {"format": "leac-chip", "version": 1, "name": "tables" if tables else "plain",
            "arrays": {"count": 1, "rows": 8, "cols": 8}, "defects": [], "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for tables in (False, True):
            path = Path(tmp) / f"{tables}.json"
            path.write_text(json.dumps(_document(tables)))
            best = float("inf")
            for _ in range(args.repeat):
                start = time.process_time()
                load_chip(path)
                best = min(best, time.process_time() - start)
            what = "with the four tables" if tables else "without tables     "
            lines.append(f"{LEVELS} levels, {what}: load_chip {best:.3f} s CPU (best of {args.repeat}), "
                         f"file {path.stat().st_size / 1e6:.2f} MB")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chip_tables.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
