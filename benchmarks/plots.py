"""The result plots of docs/results.md, drawn from the benchmarks' stored JSON (one definition per plot).

bench_alpha_beta.py, bench_fault_rate.py and bench_devices.py call these after a run; run this file to redraw
the PNGs from benchmarks/results/*.json without rerunning anything:

    python benchmarks/plots.py            # alpha_beta.png, fault_rate*.png, devices.png

Each plot makes one point, said in its title, with units on its axes and a legend that names every mark.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lea_runs import FAULT_RATES, ROOT, pyplot, save_png

RESULTS = ROOT / "benchmarks" / "results"
LEGEND = {"fontsize": 8.5, "framealpha": 0.92}


def plot_alpha_beta(data: dict[str, Any], path: Path) -> None:
    """bench_alpha_beta.py's grid: one box per (alpha, beta) of the mean two-task accuracy over the chip seeds,
    grouped by alpha, beside the paper's medians and both software accuracies."""
    plt = pyplot()
    if plt is None:
        return
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    runs = [r for r in data["runs"] if "noise" not in r and "accuracy" in r]
    pairs = [(row["alpha"], row["beta"]) for row in data["rows"]]
    by = {(a, b, p): {r["chip"]["seed"]: 100 * r["accuracy"] for r in runs
                      if (r["options"]["k"], r["options"]["beta"], r["options"]["placer"]) == (a, b, p)}
          for a, b in pairs for p in ("greedy", "cpsat")}
    same = all(by[(a, b, "greedy")] == by[(a, b, "cpsat")] for a, b in pairs)
    placers = ("cpsat",) if same else ("cpsat", "greedy")
    colours = {"cpsat": "#4c78a8", "greedy": "#f58518"}
    software = 100 * data["software_accuracy"]
    fig, ax = plt.subplots(figsize=(10.5, 5.9))
    positions, ticks, groups = {}, [], {}
    x = 0.0
    for alpha in sorted({a for a, _ in pairs}):
        start = x
        for a, b in pairs:
            if a == alpha:
                positions[(a, b)] = x
                ticks.append((x, f"\u03b2 = {b}"))
                x += 1.0
        groups[alpha] = (start, x - 1.0)
        x += 0.8
    width = 0.7 / len(placers)
    for i, placer in enumerate(placers):
        offset = (i - (len(placers) - 1) / 2) * width
        values = [list(by[(a, b, placer)].values()) for a, b in pairs]
        boxes = ax.boxplot(values, positions=[positions[p] + offset for p in pairs], widths=width * 0.9,
                           patch_artist=True, showfliers=True, medianprops={"color": "white", "lw": 1.8},
                           flierprops={"markersize": 4})
        for patch in boxes["boxes"]:
            patch.set_facecolor(colours[placer])
    paper = {(row["alpha"], row["beta"]): row["paper_median"] for row in data["rows"] if row["paper_median"]}
    ax.plot([positions[p] for p in paper], list(paper.values()), ls="none", marker="D", color="black", ms=6,
            zorder=5)
    ax.axhline(software, color="#555555", ls="--", lw=1.2)
    ax.axhline(72.0, color="black", ls=":", lw=1.2)
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks], fontsize=9)
    devices = {row["alpha"]: row["devices"] for row in data["rows"]}
    for alpha, (lo, hi) in groups.items():
        copies = "1 copy" if alpha == 1 else f"{alpha} copies"
        ax.text((lo + hi) / 2, -0.09, f"\u03b1: {copies}\n{devices[alpha]:,} devices", ha="center", va="top",
                transform=ax.get_xaxis_transform(), fontsize=9.5)
        if alpha != max(groups):
            ax.axvline(hi + 0.9, color="#dddddd", lw=1)
    ax.set_xlim(-0.7, x - 0.5)
    ax.set_ylabel("mean two-task accuracy (%)")
    ax.set_ylim(None, max(74.0, max(max(v.values()) for v in by.values()) + 2))
    ax.grid(axis="y", color="#eeeeee")
    ax.set_axisbelow(True)
    best = max(pairs)
    median = next(row["cpsat"]["accuracy"]["median"] for row in data["rows"] if (row["alpha"], row["beta"]) == best)
    gap = float(f"{software:.1f}") - float(f"{100 * median:.1f}")  # the rounded figures docs/results.md quotes
    ax.set_title(f"Yin-Yang on paper-like chips: averaging more copies (\u03b2) lifts accuracy, but (\u03b1, \u03b2) = "
                 f"{best} stays {gap:.1f} points below software", fontsize=11)
    label = ("leac, {n} chips: CP-SAT and greedy placers give the same accuracy on every chip" if same else
             "leac, CP-SAT placer, {n} chips").format(n=data["seeds"])
    handles = [Patch(facecolor=colours["cpsat"], label=label)]
    if not same:
        handles.append(Patch(facecolor=colours["greedy"], label=f"leac, greedy placer, {data['seeds']} chips"))
    handles += [Line2D([], [], color="#888888", marker="s", ls="none",
                       label="box: quartiles over the chips, white line: median, whiskers: 1.5 IQR"),
                Line2D([], [], ls="none", marker="D", color="black", label="paper's median (hardware, greedy)"),
                Line2D([], [], color="#555555", ls="--", label=f"leac's model in software ({software:.1f}%)"),
                Line2D([], [], color="black", ls=":", label="paper's model in software (72%)")]
    fig.legend(handles=handles, loc="lower center", ncol=2, **LEGEND)
    fig.subplots_adjust(bottom=0.25)
    save_png(fig, path)
    plt.close(fig)


def plot_fault_rate(data: dict[str, Any], path: Path) -> None:
    """bench_fault_rate.py's sweep, two panels: (a) leac's default (LEA, CP-SAT, compensation) for every k
    against the paper's MNIST curves; (b) at the largest k, what each of leac's parts adds (placer,
    compensation) and the committee machine, against the paper's LEA."""
    plt = pyplot()
    if plt is None:
        return
    points = {(p["ensemble"], p["placer"], p["compensation"], p["k"], p["rate"]): p["accuracy"]
              for p in data["points"]}
    software = 100 * data["software_accuracy"]
    seeds = data["seeds"]
    paper = {int(k): v for k, v in data.get("paper_mnist", {}).items()} if "mlp" in data["model"] else {}
    default = ("layer", "cpsat", "compensated")
    ks = sorted({key[3] for key in points if key[:3] == default})
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.8), sharey=True)
    cmap = plt.get_cmap("viridis")
    for i, k in enumerate(ks):
        rates, st = _series(points, (*default, k))
        left.errorbar(rates, [s["mean"] * 100 for s in st], yerr=[s["std"] * 100 for s in st], marker="o", ms=4,
                      capsize=2.5, lw=1.6, color=cmap(i / max(1, len(ks) - 1) * 0.9), label=f"k = {k}")
    for k, values in paper.items():
        left.plot([100 * r for r in FAULT_RATES], values, color="black", lw=1.2, ls="--" if k > 1 else ":",
                  label=f"paper, MNIST, \u03b1 = {k}")
    left.set_title("(a) leac's default (LEA, CP-SAT, compensation): each copy holds accuracy up", fontsize=10)
    k_best = max(ks)
    schemes = [(("layer", "greedy", "none"), "LEA as in the paper: greedy placer, no compensation", "#f58518", "-"),
               (("layer", "cpsat", "none"), "LEA, CP-SAT placer, no compensation", "#72b7b2", "-"),
               (default, "LEA, CP-SAT placer, compensation (leac's default)", "#4c78a8", "-"),
               (("network", "cpsat", "compensated"), f"committee machine: {k_best} whole networks, + compensation",
                "#b279a2", "--")]
    for scheme, label, colour, style in schemes:
        rates, st = _series(points, (*scheme, k_best))
        if rates:
            right.errorbar(rates, [s["mean"] * 100 for s in st], yerr=[s["std"] * 100 for s in st], marker="o",
                           ms=4, capsize=2.5, lw=1.6, ls=style, color=colour, label=label)
    if k_best in paper:
        right.plot([100 * r for r in FAULT_RATES], paper[k_best], color="black", lw=1.2, ls="--",
                   label=f"paper, MNIST, LEA \u03b1 = {k_best}")
    right.set_title(f"(b) k = {k_best} copies: what each part of leac adds", fontsize=10)
    for ax in (left, right):
        ax.axhline(software, color="#555555", ls="-.", lw=1, label=f"software ({software:.1f}%)")
        ax.set_xlabel("stuck devices (% of the chip, half stuck high, half stuck low)")
        ax.grid(color="#eeeeee")
        ax.set_axisbelow(True)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2 if ax is left else 1,
                  **LEGEND)  # below the panel: no curve hidden
    left.set_ylabel(f"top-1 accuracy (%), mean \u00b1 std over {seeds} chips")
    name = data["model"].removesuffix(".onnx").replace("_", " ").replace("mlp", "MLP").replace("cnn", "CNN")
    encoding = f" ({data['encoding']} encoding)" if data.get("encoding") else ""
    fig.suptitle(f"{name}{encoding} on chips with stuck devices: more copies and compensation keep "
                 "accuracy near software", fontsize=11)
    fig.subplots_adjust(bottom=0.33)
    save_png(fig, path)
    plt.close(fig)


def _series(points: dict[tuple[Any, ...], dict[str, float]], scheme: tuple[Any, ...]
            ) -> tuple[list[float], list[dict[str, float]]]:
    """The rates (%) and accuracy summaries of one scheme and k, by rate."""
    keys = sorted(key for key in points if key[:4] == scheme)
    return [100 * key[4] for key in keys], [points[key] for key in keys]


def plot_devices(panels: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """bench_devices.py: per model, the devices each k uses against the accuracy it reaches, for LEA with and
    without compensation (colour) at each fault rate (line style); the top axis names k. The committee machine,
    also in devices.json, is left to fault_rate.png's panel (b): this plot says what a copy buys."""
    plt = pyplot()
    if plt is None:
        return
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    colours = {"LEA + compensation": "#4c78a8", "LEA": "#72b7b2", "LEA greedy": "#f58518", "LEA cpsat": "#4c78a8"}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.9), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels.items(), strict=True):
        schemes = [s for s in dict.fromkeys(r["scheme"] for r in rows) if not s.startswith("committee")]
        curves = {s: sorted((r["devices"], 100 * r["accuracy"], r["k"]) for r in rows if r["scheme"] == s)
                  for s in schemes}
        labels: dict[str, str] = {}
        if len(schemes) == 2 and curves[schemes[0]] == curves[schemes[1]]:  # Yin-Yang: the placers tie
            curves = {"LEA cpsat": curves[schemes[0]]}
            labels["LEA cpsat"] = "LEA (CP-SAT and greedy placers: the same)"
        styles: dict[str, str] = {}
        ks: dict[int, int] = {}
        for scheme, pts in curves.items():
            family, _, rate = scheme.partition(", ")
            style = styles.setdefault(rate, "--" if rate.startswith("20%") else "-")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=5, lw=1.8, ls=style,
                    color=colours.get(family, "#777777"))
            ks.update({k: d for d, _, k in pts})
        software = 100 * rows[0]["software"]
        ax.axhline(software, color="#555555", ls="-.", lw=1)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlim(0, 1.08 * max(ks.values()))
        ax.set_xlabel("devices used")
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(ks.values()), [f"k={k}" for k in ks], fontsize=8)
        ax.grid(color="#eeeeee")
        ax.set_axisbelow(True)
        ax.set_title(f"{name} (software {software:.1f}%)", fontsize=10)
        families = dict.fromkeys(s.partition(", ")[0] for s in curves)
        handles = [Line2D([], [], color=colours.get(f, "#777777"), lw=2.5, label=labels.get(f, f)) for f in families]
        if len(styles) > 1:
            handles += [Line2D([], [], color="black", ls=style, label=rate) for rate, style in styles.items()]
        handles.append(Line2D([], [], color="#555555", ls="-.", label="software"))
        ax.legend(handles=handles, loc="lower right", **LEGEND)
    axes[0][0].set_ylabel("top-1 accuracy (%), mean over the chips")
    fig.suptitle("What each extra copy buys: every copy costs the same devices, and the gain per copy shrinks",
                 fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(RESULTS), help="the folder of the stored results")
    args = parser.parse_args()
    folder = Path(args.results)
    plot_alpha_beta(json.loads((folder / "alpha_beta.json").read_text()), folder / "alpha_beta.png")
    for name in ("fault_rate", "fault_rate_simple", "fault_rate_cnn", "fault_rate_cnn_simple"):
        if (folder / f"{name}.json").exists():
            plot_fault_rate(json.loads((folder / f"{name}.json").read_text()), folder / f"{name}.png")
    plot_devices(json.loads((folder / "devices.json").read_text()), folder / "devices.png")


if __name__ == "__main__":
    main()
