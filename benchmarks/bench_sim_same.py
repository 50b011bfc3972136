"""Same seed, same report: the simulator of this tree against the tree at a baseline commit (issue 19).

A speed change that leaves the noise draws as they were must leave every report as it was. This script
compiles, once, the anchor workload of bench_sim.py (the 784-150-10 tanh MLP on 2%-stuck chips of 128 x 128
and 25 x 25 arrays, k = 1 and 6) and the README's main job (the bundled Yin-Yang MLP at k = 3 on the bundled
chip), then simulates each Program with several seeds in a fresh process of each tree (the baseline is a
`git archive` of COMMIT) and compares the reports' JSON, all but the wall time `seconds`, key by key.

`--ideal` simulates with ideal devices (no defects, no noise: `simulate(ideal=True)`): the reports that a change
of the noise draws (e.g. the linear reads) must leave as they were, whatever it does to the noisy ones.

Run:  python benchmarks/bench_sim_same.py --baseline COMMIT [--samples 300] [--ideal]
Exit status 0 when every report is the same, 1 otherwise (the differing keys are printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from trees import archive_tree, run_in_tree

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"
SEEDS = (0, 3, 11)

_SIMULATE = """
import json, sys
import numpy as np
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.datasets import load_data
from lea_compiler.program import Program
folder, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
ideal = sys.argv[4] == "ideal"
reports = {}
for path in sorted(__import__("pathlib").Path(folder).glob("*.leac")):
    program = Program.load(path)
    if path.stem == "yinyang":
        data = [load_data(f"{sys.argv[3]}/yinyang_task{i}_test.npz", program.graph) for i in (1, 2)]
    else:
        d = np.load(f"{folder}/data.npz")
        data = [Dataset("random", d["x"], d["y"])]
    for seed in seeds:
        report = simulate(program, data, seed=seed, ideal=ideal).to_json()
        report.pop("seconds")
        reports[f"{path.stem} seed {seed}"] = report
import lea_compiler
print(json.dumps({"tree": lea_compiler.__file__, "reports": reports}))
"""


def programs(folder: Path, samples: int) -> None:
    """The anchor workload's Programs and the README's main job's, compiled by this tree, and the data."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    from bench_sim import ARRAYS, COPIES, SIZES, anchor_mlp, ideal_forward

    from lea_compiler.chip import load_chip, synth_chip
    from lea_compiler.compiler import compile_model
    from lea_compiler.pipeline import CompileOptions

    x = np.random.default_rng(1).uniform(0, 1, size=(samples, SIZES[0])).astype(np.float32)
    weights, biases = anchor_mlp(folder / "mlp.onnx")
    np.savez(folder / "data.npz", x=x, y=ideal_forward(x, weights, biases, 1).argmax(axis=1))
    for size in ARRAYS:
        for k in COPIES:
            regions = sum(-(-(m + 1) // size) * -(-n // size) for m, n in zip(SIZES[:-1], SIZES[1:], strict=True))
            regions *= 2 * k
            chip = synth_chip(arrays=regions + regions // 10 + 4, rows=size, cols=size, stuck_high=0.015,
                              stuck_low=0.005, seed=0)
            _save(compile_model(folder / "mlp.onnx", chip, CompileOptions(k=k, placer="greedy")).program,
                  folder / f"mlp_{size}_{k}.leac")
    _save(compile_model(DATA / "yinyang_mlp.onnx", load_chip(DATA / "paper_chip.json"), CompileOptions(k=3)).program,
          folder / "yinyang.leac")


def _save(program: Any, path: Path) -> None:
    """The Program as a version-1 `.leac` file, which every tree reads (a baseline from before the version-2
    format, 900712e, cannot read what `Program.save` writes now)."""
    from lea_compiler.program.file import program_bytes

    path.write_bytes(program_bytes(program, version=1))


def baseline_and_programs(tmp: Path, commit: str, samples: int) -> tuple[Path, Path]:
    """The tree at `commit` unpacked into tmp/baseline, and the Programs and data (`programs`) in tmp/programs."""
    baseline = archive_tree(commit, tmp / "baseline")
    folder = tmp / "programs"
    folder.mkdir()
    programs(folder, samples)
    return baseline, folder


def reports(tree: Path, folder: Path, ideal: bool = False) -> dict:
    out = json.loads(run_in_tree(tree, _SIMULATE, str(folder), ",".join(map(str, SEEDS)), str(DATA),
                                 "ideal" if ideal else "noisy"))
    if not Path(out["tree"]).resolve().is_relative_to(tree.resolve()):
        sys.exit(f"the process meant to run {tree} imported {out['tree']}")
    return out["reports"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the commit to compare with")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--ideal", action="store_true", help="simulate with ideal devices (no defects, no noise)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        baseline, folder = baseline_and_programs(tmp, args.baseline, args.samples)
        before, after = reports(baseline, folder, args.ideal), reports(ROOT, folder, args.ideal)
    differing = 0
    for name in sorted(before):
        keys = sorted(k for k in set(before[name]) | set(after.get(name, {}))
                      if before[name].get(k) != after.get(name, {}).get(k))
        differing += bool(keys)
        print(f"{name}: accuracy {before[name]['accuracy']:.4f} -> {after[name]['accuracy']:.4f}; "
              + ("the same report" if not keys else f"differs in {', '.join(keys)}"))
    print(f"{len(before) - differing} of {len(before)} reports the same as at {args.baseline}")
    sys.exit(1 if differing or set(before) != set(after) else 0)


if __name__ == "__main__":
    main()
