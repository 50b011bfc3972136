"""Same timeline, bit for bit: the cost model of this tree against the tree at a baseline commit.

A speed change to the event-driven timing (`backends/timing.py`) or the cost model must not change a number.
This script compiles, once, the anchor workload of bench_sim.py (the 784-150-10 tanh MLP on 2%-stuck chips of
128 x 128 and 25 x 25 arrays, k = 1 and 6), the README's main job (the bundled Yin-Yang MLP on the bundled chip)
and the digits CNN (on bench_cost.py's paper-like chip of 400 arrays, calibrated) at k = 1, 3 and 6, then in a
fresh process of each tree (the baseline a `git archive` of COMMIT) computes for each Program, with its chip's
periphery and with an odd one (non-round times, 3 ADCs per array, 3 digital lanes, a 150 MHz clock):
`estimate_cost` without data (every field of the CostModel) and `timeline_of(..., bars=True)` (every field of
the Timing and every bar), and compares them with `==` (floats exactly, not within a tolerance).

Run:  python benchmarks/bench_timing_same.py --baseline COMMIT
Exit status 0 when everything is the same, 1 otherwise (the differing fields are printed).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from trees import archive_tree

ROOT = Path(__file__).resolve().parents[1]

_DUMP = """
import dataclasses, pickle, sys
from pathlib import Path
from lea_compiler.backends.cost import estimate_cost, timeline_of
from lea_compiler.program import Program
from lea_compiler.schedule.plan import schedule_of
result = {}
for path in sorted(Path(sys.argv[1]).glob("*.leac")):
    program = Program.load(path)
    schedule = schedule_of(program)
    odd = dataclasses.replace(program.chip.periphery, t_dac_ns=3.3, t_adc_ns=7.1, clock_MHz=150.0, t_mvm_ns=97.3,
                              digital_lanes=3, adcs_per_array=3)
    for name, chip in (("chip's periphery", program.chip),
                       ("odd periphery", dataclasses.replace(program.chip, periphery=odd))):
        cost = estimate_cost(program, chip, schedule)
        timing = timeline_of(program, schedule, chip.periphery, bars=True)
        fields = {f"cost.{k}": v for k, v in vars(cost).items()}
        fields.update({f"timing.{k}": v for k, v in vars(timing).items() if k != "bars"})
        fields["timing.bars"] = [(b.resource, b.kind, b.step, b.start.tolist(), b.end.tolist()) for b in timing.bars]
        result[f"{path.stem}, {name}"] = fields
pickle.dump(result, open(sys.argv[2], "wb"))
"""


def programs(folder: Path) -> None:
    """The Programs, compiled by this tree."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_sim import ARRAYS, COPIES, anchor_mlp, anchor_program
    from lea_runs import DATA, EXAMPLES

    import lea_compiler as leac
    from lea_compiler.chip import load_chip, synth_chip

    anchor_mlp(folder / "mlp.onnx")
    for size in ARRAYS:
        for k in COPIES:
            anchor_program(folder / "mlp.onnx", size, k).save(folder / f"mlp_{size}_{k}.leac")
    for k in (1, 3, 6):
        leac.compile(str(DATA / "yinyang_mlp.onnx"), load_chip(DATA / "paper_chip.json"), k=k).save(
            folder / f"yinyang_{k}.leac")
        leac.compile(str(EXAMPLES / "digits_cnn_float.onnx"), synth_chip(arrays=400, seed=0), k=k,
                     calibrate_on=str(EXAMPLES / "digits_calib_images.npz")).save(folder / f"cnn_{k}.leac")


def dump(tree: Path, folder: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    # in the tree: `python -c` puts the working directory before PYTHONPATH (trees.run_in_tree)
    subprocess.run([sys.executable, "-c", _DUMP, str(folder), str(out)], env=env, check=True, cwd=tree)
    with open(out, "rb") as f:
        return pickle.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare with (git archive of it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = archive_tree(args.baseline, tmp / "baseline")
        programs(tmp)
        before, after = dump(base, tmp, tmp / "before.pkl"), dump(ROOT, tmp, tmp / "after.pkl")
    same = 0
    for case, fields in before.items():
        differ = [key for key, value in fields.items() if after[case].get(key) != value]
        same += not differ
        print(f"{case}: {'the same' if not differ else 'DIFFERENT: ' + ', '.join(differ)} "
              f"({len(fields)} fields, {len(fields['timing.bars'])} bars)")
    print(f"{same} of {len(before)} the same (baseline {args.baseline}, this tree {ROOT})")
    return 0 if same == len(before) and before.keys() == after.keys() else 1


if __name__ == "__main__":
    sys.exit(main())
