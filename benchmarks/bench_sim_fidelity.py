"""Same accuracy distribution: the simulator of this tree against the tree at a baseline commit (issue 19).

A change of the read-noise draws (another bit generator, another draw per current) changes each seed's report,
so bench_sim_same.py cannot check it; what must not change is the distribution of the results over seeds. This
script compiles, once, bench_sim_same.py's Programs (the anchor workload of bench_sim.py, the 784-150-10 tanh
MLP on 2%-stuck chips of 128 x 128 and 25 x 25 arrays at k = 1 and 6, and the README's main job, the bundled
Yin-Yang MLP at k = 3 on the bundled chip) and simulates each with seeds 0 .. N-1 in a fresh process of each
tree (the baseline is a `git archive` of COMMIT). Metrics per run: the accuracy, the agreement with the
software model, the last layer's output error; a metric whose values equal an earlier metric's in every run
(the anchor MLPs' labels are the software model's predictions, so their agreement is their accuracy) is
dropped, so that no test is counted twice.

The seed draws the write noise (and everything programming does) as well as the read noise's seeds. For a
change of the read draw the two trees program the same devices per seed, which make up most of the spread
between seeds: the two runs of a seed are a pair. For a change of the write draw (`--control-noise write`) they
program different devices, and a seed's two runs are as good as independent: the pairing then costs nothing
under the null (each run's distribution is the same), but buys no precision either, which the control across
draws shows. Either way the test is of the per-seed paired differences d = after - before (rounded to 12
decimals, so that float noise does not split ties):

- a two-sided sign-flip permutation test of their mean: under "the change does not move the metric" each d is
  as likely to have either sign, so the p-value is the share of the 2^N sign assignments whose |sum| is at
  least the observed one (exact for N <= 22, else `--permutations` random assignments, seeded, with the
  observed one counted);
- the Wilcoxon signed-rank statistic W+ (zeros dropped, ties given their average rank) and its normal
  approximation, with the tie correction of its variance.

Both are implemented here with numpy. The unpaired means and standard deviations are printed for reading.

Positive control (`--control-factor`, default 1.1; 0 turns it off): the same Programs simulated by the baseline
tree on their chip with the read noise `device.read_noise_uS` (or, `--control-noise write`, the write noise
`device.write_noise_uS`: for a change of the write draw) times the factor, paired with the baseline run of the
same seed, go through the same tests at the same threshold. It must reject for every Program, showing that
the tests see a change of the read noise that size. Its pairs share the read-noise draws too (the same bits,
scaled), so their differences are tighter than the change's, whose draws differ; a second control, reported
but not required, pairs the baseline's runs with this tree's at the scaled noise: the draws change as well, so
it shows what the test of the change itself can see.

Run:  python benchmarks/bench_sim_fidelity.py --baseline COMMIT [--seeds 20] [--samples 300]
      [--control-factor 1.1] [--control-noise read|write] [--out benchmarks/results/sim_fidelity.json]
Exit status 0 when no test of the change rejects at `--alpha` (default 0.01, Bonferroni-corrected over the
tests of the change) and the control rejects for every Program; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_sim_same import baseline_and_programs
from trees import run_in_tree

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"
METRICS = ("accuracy", "agreement", "output_error")
EXACT_UP_TO = 22
"""Seeds up to which the sign-flip test enumerates all 2^N sign assignments (two halves of 2^11 sums)."""

_SIMULATE = """
import dataclasses, json, pathlib, sys
import numpy as np
import lea_compiler
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.datasets import load_data
from lea_compiler.program import Program
folder, seeds, factor, noise = sys.argv[1], range(int(sys.argv[2])), float(sys.argv[4]), sys.argv[6]
if pathlib.Path(lea_compiler.__file__).resolve().parents[1] != pathlib.Path(sys.argv[5]).resolve():
    sys.exit(f"imported {lea_compiler.__file__}, not the tree {sys.argv[5]}")
results = {}
for path in sorted(__import__("pathlib").Path(folder).glob("*.leac")):
    program = Program.load(path)
    chip = None
    if factor != 1.0:  # the positive control: the Program's chip with its read or write noise scaled
        device = program.chip.device
        model, field = {"read": (device.read_noise_model, "read_noise_uS"),
                        "write": (device.write_noise_model, "write_noise_uS")}[noise]
        if model is not None or getattr(device, field) <= 0:
            sys.exit(f"{path.stem}: the chip has no constant {noise} noise to scale")
        chip = dataclasses.replace(program.chip, device=dataclasses.replace(
            device, **{field: getattr(device, field) * factor}))
    if path.stem == "yinyang":
        data = [load_data(f"{sys.argv[3]}/yinyang_task{i}_test.npz", program.graph) for i in (1, 2)]
    else:
        d = np.load(f"{folder}/data.npz")
        data = [Dataset("random", d["x"], d["y"])]
    rows = []
    for seed in seeds:
        report = simulate(program, data, chip=chip, seed=seed).to_json()
        errors = report["layer_output_error"]
        rows.append({"accuracy": report["accuracy"], "agreement": report["agreement"],
                     "output_error": list(errors.values())[-1] if errors else None})
    results[path.stem] = rows
print(json.dumps(results))
"""


def results(tree: Path, folder: Path, seeds: int, factor: float = 1.0, noise: str = "read"
            ) -> dict[str, list[dict[str, float]]]:
    """Per Program, per seed 0 .. seeds-1: the metrics of a fresh process of `tree` (one BLAS thread), on the
    Program's chip with its `noise` ("read" or "write") noise times `factor`. The process runs in `tree`:
    `python -c` puts its working directory first on sys.path, before PYTHONPATH, so run from another tree it
    would import that one (the script checks which it imported)."""
    return json.loads(run_in_tree(tree, _SIMULATE, str(folder), str(seeds), str(DATA), repr(factor), str(tree),
                                  noise))


def sign_flip_p(d: np.ndarray, permutations: int = 20000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation test of mean(d) = 0 for paired differences d: the share of sign
    assignments s (s_i = +-1) with |sum(s d)| at least |sum(d)| (up to a relative 1e-9, so that tied sums
    count). All 2^N assignments for N <= EXACT_UP_TO (the sums of the two halves' assignments added as an outer
    sum), else `permutations` random ones, seeded, with the observed one counted."""
    d = np.asarray(d, dtype=np.float64)
    observed = abs(d.sum())
    bound = observed * (1 - 1e-9) - 1e-12
    if d.size <= EXACT_UP_TO:
        def half_sums(part: np.ndarray) -> np.ndarray:  # sum(s d) over the 2^len(part) sign assignments
            signs = 1 - 2 * ((np.arange(1 << part.size)[:, None] >> np.arange(part.size)) & 1)
            return signs @ part
        low, high = half_sums(d[: d.size // 2]), half_sums(d[d.size // 2:])
        at_least = np.count_nonzero(np.abs(low[:, None] + high[None, :]) >= bound)
        return float(at_least / (1 << d.size))
    rng = np.random.default_rng(seed)
    at_least, done = 0, 0
    while done < permutations:  # blocks of at most 10,000 assignments bound the memory
        count = min(10000, permutations - done)
        signs = rng.integers(0, 2, size=(count, d.size)) * 2 - 1
        at_least += int(np.count_nonzero(np.abs(signs @ d) >= bound))
        done += count
    return float((at_least + 1) / (permutations + 1))


def wilcoxon(d: np.ndarray) -> tuple[float, float, float]:
    """The Wilcoxon signed-rank test of paired differences d: (W+, z, two-sided p). Zero differences are
    dropped (Wilcoxon's convention), tied |d| share their average rank, and W+ (the sum of the positive
    differences' ranks) is compared with its null mean n (n + 1) / 4 and variance n (n + 1) (2n + 1) / 24 -
    sum(t^3 - t) / 48 over groups of t ties (no continuity correction); p = erfc(|z| / sqrt 2)."""
    d = np.asarray(d, dtype=np.float64)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return 0.0, 0.0, 1.0
    values, inverse, counts = np.unique(np.abs(d), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # the average rank of each group of ties
    w_plus = float(ranks[d > 0].sum())
    mean = n * (n + 1) / 4.0
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - float(np.sum(counts.astype(np.float64) ** 3 - counts)) / 48.0
    if variance <= 0:
        return w_plus, 0.0, 1.0
    z = (w_plus - mean) / math.sqrt(variance)
    return w_plus, float(z), float(math.erfc(abs(z) / math.sqrt(2.0)))


def distinct_metrics(*runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, str]]:
    """Per Program, each metric whose values are not all None and not, in every run of every arm, an earlier
    metric's values: {metric: ""} for a metric tested, {metric: earlier} for one dropped as its duplicate."""
    out: dict[str, dict[str, str]] = {}
    for name in sorted(runs[0]):
        seen: dict[str, list[Any]] = {}
        out[name] = {}
        for metric in METRICS:
            values = [row[metric] for run in runs for row in run[name]]
            if any(v is None for v in values):
                continue
            same = next((earlier for earlier, v in seen.items() if v == values), None)
            out[name][metric] = same or ""
            if same is None:
                seen[metric] = values
    return out


def paired(before: list[dict[str, float]], after: list[dict[str, float]], metric: str,
           permutations: int) -> dict[str, float]:
    """One metric of one Program: both arms' mean and std (for reading), the paired differences' mean and
    standard error, the sign-flip p-value and the Wilcoxon statistic, z and p."""
    a = np.array([row[metric] for row in before], dtype=np.float64)
    b = np.array([row[metric] for row in after], dtype=np.float64)
    d = np.round(b - a, 12)
    w_plus, z, p = wilcoxon(d)
    return {"before_mean": float(a.mean()), "before_std": float(a.std(ddof=1)),
            "after_mean": float(b.mean()), "after_std": float(b.std(ddof=1)),
            "paired_difference_mean": float(d.mean()), "paired_difference_se": float(d.std(ddof=1) / math.sqrt(d.size)),
            "sign_flip_p": sign_flip_p(d, permutations), "wilcoxon_w_plus": w_plus, "wilcoxon_z": z,
            "wilcoxon_p": p}


def compare(before: dict[str, list[dict[str, float]]], after: dict[str, list[dict[str, float]]],
            metrics: dict[str, dict[str, str]], permutations: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per Program and tested metric (`distinct_metrics`), the paired comparison of `after` with `before`."""
    return {name: {metric: paired(before[name], after[name], metric, permutations)
                   for metric, duplicate in metrics[name].items() if not duplicate} for name in sorted(metrics)}


def rejects(c: dict[str, float], threshold: float) -> bool:
    """Whether either paired test of one comparison rejects at `threshold`."""
    return min(c["sign_flip_p"], c["wilcoxon_p"]) < threshold


def describe(label: str, name: str, metric: str, c: dict[str, float]) -> str:
    return (f"{label} {name} {metric}: before {c['before_mean']:.4f} +- {c['before_std']:.4f}, after "
            f"{c['after_mean']:.4f} +- {c['after_std']:.4f}; paired difference {c['paired_difference_mean']:+.5f} +- "
            f"{c['paired_difference_se']:.5f}; sign-flip p {c['sign_flip_p']:.2g}; Wilcoxon W+ "
            f"{c['wilcoxon_w_plus']:.1f}, z {c['wilcoxon_z']:+.2f}, p {c['wilcoxon_p']:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the commit to compare with")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--permutations", type=int, default=20000, help="random sign flips when seeds > 22")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--control-factor", type=float, default=1.1,
                        help="the positive control's noise factor (0: no control)")
    parser.add_argument("--control-noise", choices=("read", "write"), default="read",
                        help="the noise the positive control scales: the change's (read, or write for a change of "
                             "the write draw)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sim_fidelity.json"))
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        baseline, folder = baseline_and_programs(tmp, args.baseline, args.samples)
        before, after = results(baseline, folder, args.seeds), results(ROOT, folder, args.seeds)
        noise = args.control_noise
        control = results(baseline, folder, args.seeds, args.control_factor, noise) if args.control_factor else None
        across = results(ROOT, folder, args.seeds, args.control_factor, noise) if args.control_factor else None
    metrics = distinct_metrics(before, after, *([control, across] if control and across else []))
    comparisons = compare(before, after, metrics, args.permutations)
    controls = compare(before, control, metrics, args.permutations) if control else {}
    acrosses = compare(before, across, metrics, args.permutations) if across else {}
    tests = sum(2 * len(c) for c in comparisons.values())
    threshold = args.alpha / tests  # Bonferroni over both tests of every Program and metric of the change
    rejected, seen = [], []
    for name, metric_comparisons in comparisons.items():
        dropped = [f"{m} (= {d})" for m, d in metrics[name].items() if d]
        if dropped:
            print(f"{name}: dropped {', '.join(dropped)}")
        for metric, c in metric_comparisons.items():
            print(describe("change", name, metric, c))
            if rejects(c, threshold):
                rejected.append(f"{name} {metric}")
        for metric, c in controls.get(name, {}).items():
            print(describe(f"control x{args.control_factor:g}", name, metric, c))
        for metric, c in acrosses.get(name, {}).items():
            print(describe(f"control x{args.control_factor:g} across draws", name, metric, c))
        if any(rejects(c, threshold) for c in controls.get(name, {}).values()):
            seen.append(name)
    print(f"{tests} tests of the change over {args.seeds} seeds; {len(rejected)} reject at {args.alpha} "
          f"(Bonferroni: p < {threshold:.2g})" + (f": {', '.join(rejected)}" if rejected else ""))
    blind = sorted(set(comparisons) - set(seen))
    if control:
        control_rejected = [f"{n} {m}" for n, cs in controls.items() for m, c in cs.items() if rejects(c, threshold)]
        print(f"control ({args.control_noise} noise x{args.control_factor:g}): {len(control_rejected)} of "
              f"{tests // 2} comparisons reject at p < {threshold:.2g}; Programs where none does: "
              f"{', '.join(blind) or 'none'}")
        across_rejected = [f"{n} {m}" for n, cs in acrosses.items() for m, c in cs.items() if rejects(c, threshold)]
        listed = f": {', '.join(across_rejected)}" if across_rejected else ""
        print(f"control across draws (this tree, {args.control_noise} noise x{args.control_factor:g}): "
              f"{len(across_rejected)} of {tests // 2} comparisons reject{listed}")
        if args.control_noise == "write" and len(across_rejected) * 2 < tests // 2:
            print("note: the change redraws the devices, and the test sees a change of the write noise of this size "
                  "in fewer than half of the comparisons when the draws differ: a pass says little more than that "
                  "no large shift is there (check the draw's own distribution too)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"baseline": args.baseline, "seeds": args.seeds, "samples": args.samples,
                               "permutations": args.permutations, "alpha": args.alpha, "tests": tests,
                               "threshold": threshold, "control_factor": args.control_factor,
                               "control_noise": args.control_noise,
                               "rejected": rejected, "control_blind": blind if control else None,
                               "metrics": metrics, "comparisons": comparisons, "controls": controls,
                               "controls_across_draws": acrosses, "before": before, "after": after,
                               "control": control, "control_across_draws": across}, indent=2) + "\n")
    print(f"wrote {out}")
    sys.exit(1 if rejected or (control and blind) else 0)


if __name__ == "__main__":
    main()
