"""What reading a chip file's defects in bulk (lea_compiler/chip/defect_text.py) costs when it works, and what
trying it costs when it does not (the file then goes through the JSON decoder as well).

Cases, each a chip file written to a temporary folder:

- `written`: a 2%-stuck chip of 256 arrays of 128 x 128 (`synth_chip`, seed 1; ~84,000 defect entries), as
  `chip_to_text` writes it: read in bulk;
- `whole_row`: the same with one whole-row entry appended: the bulk path cannot take it;
- `g_uS`: the same with `"g_uS": 4.25` on every entry: neither;
- `long_numbers` (the worst case): ~60 MB of 1,000,000 short entries of a 4 x 4 array and a last entry with three
  18-digit numbers (an unknown array): an invalid file in the written layout.

For each, in a fresh process: `load_chip` (the minimum and median of `--repeats` runs), `written_chip` alone (the
bulk attempt), and the bulk attempt's peak memory (tracemalloc: numpy's allocations are traced).

Run:  python benchmarks/bench_chip_bulk.py [--repeats 5] [--cases written,whole_row,g_uS,long_numbers]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from lea_compiler.chip import Array, Chip, Defect, chip_to_text, load_chip, synth_chip
from lea_compiler.chip.io import written_chip
from lea_compiler.errors import InvalidChipError

_CLOSE = "\n  ]\n}\n"


def _cases() -> dict[str, Callable[[], str]]:
    def written() -> str:
        return chip_to_text(synth_chip(arrays=256, rows=128, cols=128, stuck_high=0.015, stuck_low=0.005, seed=1))

    def whole_row() -> str:
        text = written()
        return text[:-len(_CLOSE)] + ',\n    {"array": 0, "row": 5, "state": "stuck_low"}' + _CLOSE

    def g_us() -> str:
        return written().replace('"}', '", "g_uS": 4.25}')

    def long_numbers() -> str:
        text = chip_to_text(Chip(arrays=(Array(0, 4, 4),), defects=(Defect(0, 1, 1, "stuck_low"),)))
        line = '    {"array": 0, "row": 1, "col": 1, "state": "stuck_low"}'
        last = '    {"array": 123456789012345678, "row": 123456789012345678, "col": 123456789012345678, ' \
               '"state": "stuck_high"}'
        return text[:-len(line + _CLOSE)] + ",\n".join([line] * 1_000_000 + [last]) + _CLOSE

    return {"written": written, "whole_row": whole_row, "g_uS": g_us, "long_numbers": long_numbers}


def _times(run: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def measure(path: Path, repeats: int) -> str:
    """One case's line: `load_chip` and the bulk attempt on the file's text, `repeats` times each."""
    text = path.read_text()

    def load() -> str:
        try:
            load_chip(path)
            return "valid"
        except InvalidChipError:
            return "invalid"

    outcome = load()
    bulk = written_chip(text, path.name) is not None
    loads = _times(load, repeats)
    attempts = _times(lambda: written_chip(text, path.name), repeats)
    tracemalloc.start()
    written_chip(text, path.name)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (f"{path.stem}: {len(text) / 1e6:.1f} MB, {outcome}, bulk path {'taken' if bulk else 'not taken'}; "
            f"load_chip min {min(loads) * 1e3:.0f} ms median {statistics.median(loads) * 1e3:.0f} ms; "
            f"bulk attempt min {min(attempts) * 1e3:.1f} ms median {statistics.median(attempts) * 1e3:.1f} ms, "
            f"peak {peak / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default="written,whole_row,g_uS,long_numbers")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # one file, in this process
    args = parser.parse_args()
    if args.measure is not None:
        print(measure(args.measure, args.repeats), flush=True)
        return
    cases = _cases()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            path = Path(tmp) / f"{name}.json"
            path.write_text(cases[name]())
            # Each case in a fresh process: the allocator's state after making the file (or after another case)
            # moved the bulk attempt's time by up to 20 ms (page faults of fresh large allocations).
            subprocess.run([sys.executable, __file__, "--measure", str(path), "--repeats", str(args.repeats)],
                           check=True)


if __name__ == "__main__":
    main()
