"""Same accuracy distribution: the simulator of this tree against the tree at a baseline commit (issue 19).

A change of the read-noise draws (another bit generator, another draw per current) changes each seed's report,
so bench_sim_same.py cannot check it; what must not change is the distribution of the results over seeds. This
script compiles, once, bench_sim_same.py's Programs (the anchor workload of bench_sim.py, the 784-150-10 tanh
MLP on 2%-stuck chips of 128 x 128 and 25 x 25 arrays at k = 1 and 6, and the README's main job, the bundled
Yin-Yang MLP at k = 3 on the bundled chip), simulates each with seeds 0 .. N-1 in a fresh process of each tree
(the baseline is a `git archive` of COMMIT), and compares, per Program and metric (accuracy, agreement with
the software model, the last layer's output error), the two samples of N values:

- their means and standard deviations;
- a two-sided permutation test of the difference of the means (all 2N values pooled and split at random,
  `--permutations` times, seeded): the share of splits whose difference of means is at least the observed one;
- the two-sample Kolmogorov-Smirnov statistic D (the largest gap between the two empirical distribution
  functions) and its asymptotic p-value (Kolmogorov's series, with Stephens' small-sample correction).

The seed also draws the write noise and the stuck-device compensation, which neither tree changes: per seed
the two trees program the same devices, and the paired differences (mean and standard error) isolate the read
noise's part. Both tests are implemented here with numpy.

Run:  python benchmarks/bench_sim_fidelity.py --baseline COMMIT [--seeds 20] [--samples 300]
      [--out benchmarks/results/sim_fidelity.json]
Exit status 0 when no test rejects at `--alpha` (default 0.01, Bonferroni-corrected over the comparisons), 1
otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_sim_same import programs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"
METRICS = ("accuracy", "agreement", "output_error")

_SIMULATE = """
import json, sys
import numpy as np
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.datasets import load_data
from lea_compiler.program import Program
folder, seeds = sys.argv[1], range(int(sys.argv[2]))
results = {}
for path in sorted(__import__("pathlib").Path(folder).glob("*.leac")):
    program = Program.load(path)
    if path.stem == "yinyang":
        data = [load_data(f"{sys.argv[3]}/yinyang_task{i}_test.npz", program.graph) for i in (1, 2)]
    else:
        d = np.load(f"{folder}/data.npz")
        data = [Dataset("random", d["x"], d["y"])]
    rows = []
    for seed in seeds:
        report = simulate(program, data, seed=seed).to_json()
        errors = report["layer_output_error"]
        rows.append({"accuracy": report["accuracy"], "agreement": report["agreement"],
                     "output_error": list(errors.values())[-1] if errors else None})
    results[path.stem] = rows
print(json.dumps(results))
"""


def results(tree: Path, folder: Path, seeds: int) -> dict[str, list[dict[str, float]]]:
    """Per Program, per seed 0 .. seeds-1: the metrics of a fresh process of `tree` (one BLAS thread)."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _SIMULATE, str(folder), str(seeds), str(DATA)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def permutation_p(a: np.ndarray, b: np.ndarray, permutations: int, seed: int = 0) -> float:
    """Two-sided permutation test of mean(a) - mean(b): the share (with the observed split counted) of random
    splits of the pooled values into groups of len(a) and len(b) whose |difference of means| is at least the
    observed one (up to a relative 1e-12, so that equal splits of tied values count)."""
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((permutations, pooled.size)), axis=1)  # one random permutation per row
    shuffled = pooled[order]
    differences = np.abs(shuffled[:, :a.size].mean(axis=1) - shuffled[:, a.size:].mean(axis=1))
    at_least = np.count_nonzero(differences >= observed * (1 - 1e-12) - 1e-15)
    return float((at_least + 1) / (permutations + 1))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: max over x of |F_a(x) - F_b(x)| (empirical CDFs)."""
    points = np.concatenate([a, b])
    f_a = np.searchsorted(np.sort(a), points, side="right") / a.size
    f_b = np.searchsorted(np.sort(b), points, side="right") / b.size
    return float(np.max(np.abs(f_a - f_b)))


def ks_p(d: float, n: int, m: int) -> float:
    """The asymptotic p-value of a two-sample KS statistic d: Q(lambda) = 2 sum_k (-1)^(k-1) exp(-2 k^2
    lambda^2), lambda = (sqrt(ne) + 0.12 + 0.11 / sqrt(ne)) d, ne = n m / (n + m) (Stephens' correction;
    conservative for ties, which discrete accuracies have)."""
    root = math.sqrt(n * m / (n + m))
    lam = (root + 0.12 + 0.11 / root) * d
    if lam < 1e-3:
        return 1.0
    q = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return float(min(1.0, max(0.0, q)))


def compare(before: list[dict[str, float]], after: list[dict[str, float]], permutations: int) -> dict[str, Any]:
    """Per metric: both samples' mean and std, the paired difference, the permutation and KS tests."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        a = np.array([row[metric] for row in before], dtype=np.float64)
        b = np.array([row[metric] for row in after], dtype=np.float64)
        if np.isnan(a).any() or np.isnan(b).any():
            continue
        paired = b - a
        d = ks_statistic(a, b)
        out[metric] = {"before_mean": float(a.mean()), "before_std": float(a.std(ddof=1)),
                       "after_mean": float(b.mean()), "after_std": float(b.std(ddof=1)),
                       "paired_difference_mean": float(paired.mean()),
                       "paired_difference_se": float(paired.std(ddof=1) / math.sqrt(paired.size)),
                       "permutation_p": permutation_p(a, b, permutations), "ks_d": d,
                       "ks_p": ks_p(d, a.size, b.size)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the commit to compare with")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--permutations", type=int, default=20000)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sim_fidelity.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        baseline = tmp / "baseline"
        baseline.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        folder = tmp / "programs"
        folder.mkdir()
        programs(folder, args.samples)
        before, after = results(baseline, folder, args.seeds), results(ROOT, folder, args.seeds)
    comparisons = {name: compare(before[name], after[name], args.permutations) for name in sorted(before)}
    tests = sum(2 * len(metrics) for metrics in comparisons.values())
    threshold = args.alpha / tests  # Bonferroni: every permutation and KS test of every Program and metric
    rejected = []
    for name, metrics in comparisons.items():
        for metric, c in metrics.items():
            print(f"{name} {metric}: before {c['before_mean']:.4f} +- {c['before_std']:.4f}, after "
                  f"{c['after_mean']:.4f} +- {c['after_std']:.4f} (paired difference {c['paired_difference_mean']:+.4f}"
                  f" +- {c['paired_difference_se']:.4f}); permutation p {c['permutation_p']:.3f}; KS D "
                  f"{c['ks_d']:.2f}, p {c['ks_p']:.3f}")
            if min(c["permutation_p"], c["ks_p"]) < threshold:
                rejected.append(f"{name} {metric}")
    print(f"{tests} tests over {args.seeds} seeds; {len(rejected)} reject at {args.alpha} (Bonferroni: p < "
          f"{threshold:.2g})" + (f": {', '.join(rejected)}" if rejected else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"baseline": args.baseline, "seeds": args.seeds, "samples": args.samples,
                               "permutations": args.permutations, "alpha": args.alpha, "rejected": rejected,
                               "comparisons": comparisons, "before": before, "after": after}, indent=2) + "\n")
    print(f"wrote {out}")
    sys.exit(1 if rejected else 0)


if __name__ == "__main__":
    main()
