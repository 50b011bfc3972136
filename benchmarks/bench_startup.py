"""How long a `leac` process takes, and what it spends its time on (issue 19: the CLI's start and Program.load).

Measured, each in fresh processes of the tree under test (repeated; the median, and the minimum):

- the README's main job's `leac simulate` process: the bundled Yin-Yang MLP compiled at k = 3 for the bundled
  paper-like chip, simulated on both bundled test sets (`python -m lea_compiler simulate ...`), wall time and
  CPU time (user + system, of the process and its threads);
- the same Program simulated with the software baseline left out, i.e. the same Program without its embedded
  model.onnx (what the process costs besides onnx and onnxruntime, which only the baseline needs);
- `import lea_compiler.cli`, and the imports the process cannot avoid: `import numpy`, `import onnx` (most of it
  ml_dtypes registering its dtypes with numpy), `import onnxruntime`;
- `Program.load` of the Yin-Yang MLP (k = 3) compiled for a clean and for a 2%-stuck chip of 256 arrays of
  128 x 128 (4.2M devices; the 2% chip has ~84,000 defect entries), made with `leac chip synth`: the median of
  several loads in one process, after one load that warms it up, wall and CPU time.

CPU time is the figure to compare on a machine other jobs share: wall time then includes waiting for a core.

With `--baseline COMMIT`, the same is measured for the tree at COMMIT (`git archive` into a temporary folder)
in the same run, each measurement alternating between the two trees, so that the other load on a shared machine
falls on both alike; `--baseline-python PYTHON` runs the baseline with another interpreter (another venv: e.g.
the baseline's dependencies, such as ml_dtypes 0.7.0, against the current tree's constraints). The machine's load
average, and each interpreter's numpy, onnx and ml_dtypes versions, are recorded.

Run:  python benchmarks/bench_startup.py [--repeats 7] [--baseline COMMIT [--baseline-python PYTHON]]
                                         [--out benchmarks/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from trees import archive_tree

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"

_LOAD_SCRIPT = """
import json, sys, time
from lea_compiler.program import Program
import onnx  # loading a Program with its model parses the model: the import is not what is measured here
times = []
for path in sys.argv[2:]:
    Program.load(path)
    wall, cpu = [], []
    for _ in range(int(sys.argv[1])):
        start, start_cpu = time.perf_counter(), time.process_time()
        Program.load(path)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    times.append([wall, cpu])
print(json.dumps(times))
"""


_VERSIONS = """
import importlib.metadata as m, json, sys
print(json.dumps({"python": sys.version.split()[0], **{p: m.version(p) for p in ("numpy", "onnx", "ml_dtypes",
                                                                                  "onnxruntime")}}))
"""


def run_process(argv: list[str], tree: Path) -> tuple[float, float, str]:
    """Run `argv` with `tree` first on the path: (wall seconds, CPU seconds, stdout)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def leac(python: str, *args: str | Path) -> list[str]:
    return [python, "-m", "lea_compiler", *map(str, args)]


def without_model(program: Path, out: Path) -> Path:
    """`program` without its model.onnx entry (a Program compiled from an in-memory model has none)."""
    with zipfile.ZipFile(program) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != "model.onnx":
                dst.writestr(info, src.read(info.filename))
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def prepare(tree: Path, work: Path, python: str) -> dict[str, Path]:
    """The Programs the measurements use, compiled by the tree under test."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {"yinyang": work / "yinyang.leac", "clean": work / "clean.leac", "stuck2": work / "stuck2.leac"}
    run_process(leac(python, "compile", DATA / "yinyang_mlp.onnx", "--chip", DATA / "paper_chip.json", "-k", "3",
                     "-o", paths["yinyang"]), tree)
    paths["yinyang_no_model"] = without_model(paths["yinyang"], work / "yinyang_no_model.leac")
    for name, high, low in (("clean", "0", "0"), ("stuck2", "0.015", "0.005")):
        chip = work / f"{name}.json"
        run_process(leac(python, "chip", "synth", "--arrays", "256", "--rows", "128", "--cols", "128", "--stuck-high",
                         high, "--stuck-low", low, "--seed", "0", "-o", chip), tree)
        run_process(leac(python, "compile", DATA / "yinyang_mlp.onnx", "--chip", chip, "-k", "3", "-o", paths[name]),
                    tree)
    return paths


def measurements(paths: dict[str, Path], python: str) -> dict[str, list[str]]:
    data = ["--data", str(DATA / "yinyang_task1_test.npz"), "--data", str(DATA / "yinyang_task2_test.npz")]
    return {
        "simulate": leac(python, "simulate", paths["yinyang"], *data),
        "simulate_without_baseline": leac(python, "simulate", paths["yinyang_no_model"], *data),
        "leac_help": leac(python, "--help"),
        "import_lea_compiler_cli": [python, "-c", "import lea_compiler.cli"],
        "python_only": [python, "-c", "pass"],
        "import_numpy": [python, "-c", "import numpy"],
        "import_onnx": [python, "-c", "import onnx"],
        "import_onnxruntime": [python, "-c", "import onnxruntime"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline", metavar="COMMIT", help="also measure the tree at this commit, interleaved")
    parser.add_argument("--baseline-python", metavar="PYTHON", default=sys.executable,
                        help="the interpreter the baseline tree runs with (default: this one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"current": ROOT}
        if args.baseline:
            trees["baseline"] = archive_tree(args.baseline, Path(tmp) / "baseline")
        pythons = {"current": sys.executable, "baseline": args.baseline_python}
        versions = {name: json.loads(run_process([pythons[name], "-c", _VERSIONS], tree)[2]) for name, tree in
                    trees.items()}
        paths = {name: prepare(tree, Path(tmp) / f"work-{name}", pythons[name]) for name, tree in trees.items()}
        commands = {name: measurements(paths[name], pythons[name]) for name in trees}
        outputs: dict[str, str] = {}
        wall: dict[str, dict[str, list[float]]] = {name: {key: [] for key in commands[name]} for name in trees}
        cpu: dict[str, dict[str, list[float]]] = {name: {key: [] for key in commands[name]} for name in trees}
        for _ in range(args.repeats):
            for key in commands["current"]:
                for name, tree in trees.items():  # alternating: the machine's other load falls on both
                    w, c, out = run_process(commands[name][key], tree)
                    wall[name][key].append(w)
                    cpu[name][key].append(c)
                    if key == "simulate":  # the report names the Program: the same but for its folder
                        outputs[name] = out.replace(str(paths[name]["yinyang"].parent), "WORK")
        loads: dict[str, dict[str, list[float]]] = {name: {f"{chip}_{kind}": [] for chip in ("clean", "stuck2")
                                                          for kind in ("wall", "cpu")} for name in trees}
        for _ in range(3):
            for name, tree in trees.items():
                _, _, out = run_process([pythons[name], "-c", _LOAD_SCRIPT, str(args.repeats),
                                         str(paths[name]["clean"]), str(paths[name]["stuck2"])], tree)
                for chip, (wall_s, cpu_s) in zip(("clean", "stuck2"), json.loads(out), strict=True):
                    loads[name][f"{chip}_wall"] += wall_s
                    loads[name][f"{chip}_cpu"] += cpu_s
        sizes = {key: paths["current"][key].stat().st_size for key in ("yinyang", "clean", "stuck2")}
    if len(set(outputs.values())) != 1:
        raise RuntimeError("the trees print different simulate reports:\n" + "\n".join(outputs.values()))
    result = {
        "benchmark": "startup",
        "python": sys.version.split()[0],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "repeats": args.repeats,
        "program_bytes": sizes,
        "trees": {
            name: {
                "commit": args.baseline if name == "baseline" else subprocess.run(
                    ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
                ).stdout.strip(),
                "interpreter": {"path": pythons[name], **versions[name]},
                "wall_s": {key: summary(values) for key, values in wall[name].items()},
                "cpu_s": {key: summary(values) for key, values in cpu[name].items()},
                "program_load_s": {key: summary(values) for key, values in loads[name].items()},
            }
            for name in trees
        },
        "simulate_report": outputs["current"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"load average before {load_before[0]:.2f}, after {result['load_average_after'][0]:.2f}; "
             f"{args.repeats} runs each (median, min)"]
    for name in trees:
        t = result["trees"][name]
        v = t["interpreter"]
        lines.append(f"{name} ({t['commit']}; {v['path']}: numpy {v['numpy']}, onnx {v['onnx']}, ml_dtypes "
                     f"{v['ml_dtypes']}):")
        for key in wall[name]:
            w, c = t["wall_s"][key], t["cpu_s"][key]
            lines.append(f"  {key:<28} wall {w['median']:.3f} s (min {w['min']:.3f})   "
                         f"cpu {c['median']:.3f} s (min {c['min']:.3f})")
        for key, label in (("clean", "clean chip"), ("stuck2", "2% stuck chip")):
            w, c = t["program_load_s"][f"{key}_wall"], t["program_load_s"][f"{key}_cpu"]
            lines.append(f"  Program.load, {label:<14} wall {1e3 * w['median']:.1f} ms (min {1e3 * w['min']:.1f})   "
                         f"cpu {1e3 * c['median']:.1f} ms (min {1e3 * c['min']:.1f})")
    text = "\n".join(lines)
    print(text)
    out.with_suffix(".txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
