"""Many chips (issue 6): compile time per chip for one model over a test station's worth of chips.

The bundled Yin-Yang 4-12-6-3 MLP (lea_compiler/data/yinyang_mlp.onnx), k = 3,
for 200 synthetic paper-like chips (`synth_chip(seed=s)`, s = 0..199: 32 arrays
of 25 x 25, 2.5% stuck high, 0.5% stuck low), each saved as its own chip file:

- batch, `leac compile MODEL --chip-dir DIR -o OUT --jobs 1` and `--jobs 2`:
  one process; the model is read, canonicalized and quantized once;
- the old way, in one process: 200 `compile_model(MODEL, CHIP)` calls, each
  reading and importing the ONNX file again, each Program saved;
- the old way, one `leac compile MODEL --chip CHIP` process per chip, one after
  the other (what a shell loop does), timed on the first --processes chips
  (default 20; --processes 200 for all) and given per chip.

Every way must write the same Programs byte for byte; the benchmark checks
that before it reports. Times are wall-clock seconds for the whole batch and
per chip (whole batch / chips), and CPU seconds per chip (of the process and
its workers), which other load on the machine changes less; the load average
before and after is recorded. Child processes run with OMP/OPENBLAS/MKL
threads = 1, as in bench_compile.py.

Run:  python benchmarks/bench_batch.py [--chips 200] [--processes 20] [--out benchmarks/results/batch.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "lea_compiler" / "data" / "yinyang_mlp.onnx"
K = 3
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ENV = {**os.environ, **THREADS}


def leac(*args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run leac; return its wall seconds, its CPU seconds (with its worker processes) and its output."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "lea_compiler", *args], env=ENV, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # the child's rusage, including the workers it waited for
        wall = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        done = subprocess.CompletedProcess(child.args, os.waitstatus_to_exitcode(status), stdout.read().decode(),
                                           stderr.read().decode())
    return wall, usage.ru_utime + usage.ru_stime, done


def batch(chips: Path, out: Path, jobs: int) -> dict:
    """One `leac compile --chip-dir` process."""
    wall, cpu, done = leac("compile", str(MODEL), "--chip-dir", str(chips), "-k", str(K), "-o", str(out),
                           "--jobs", str(jobs), "--json")
    if done.returncode != 0:
        raise RuntimeError(f"leac compile --chip-dir failed ({done.returncode}): {done.stderr}")
    report = json.loads(done.stdout)
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "batch_seconds": report["wall_seconds"],  # inside the process: without interpreter start and imports
        "shared_seconds": report["shared_seconds"],
        "shared_passes": report["shared_passes"],
        "median_chip_compile_seconds": statistics.median(c["compile_seconds"] for c in report["chips"]),
        "chips_ok": report["chips_ok"],
    }


def in_process(chips: list[Path], out: Path) -> dict:
    """The old way in one process: compile_model per chip, each reading the ONNX file."""
    out.mkdir()
    start, cpu = time.perf_counter(), time.process_time()
    for chip in chips:
        compile_model(MODEL, chip, CompileOptions(k=K)).program.save(out / f"{chip.stem}.leac")
    return {"wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def processes(chips: list[Path], out: Path) -> dict:
    """The old way as a shell loop: one `leac compile` process per chip."""
    out.mkdir()
    start, cpu = time.perf_counter(), 0.0
    for chip in chips:
        _, used, done = leac("compile", str(MODEL), "--chip", str(chip), "-k", str(K), "-o",
                             str(out / f"{chip.stem}.leac"))
        cpu += used
        if done.returncode != 0:
            raise RuntimeError(f"leac compile failed ({done.returncode}): {done.stderr}")
    return {"wall_seconds": time.perf_counter() - start, "cpu_seconds": cpu, "chips": len(chips)}


def same_programs(reference: Path, other: Path, stems: list[str]) -> None:
    for stem in stems:
        if (reference / f"{stem}.leac").read_bytes() != (other / f"{stem}.leac").read_bytes():
            raise AssertionError(f"{other.name}/{stem}.leac differs from {reference.name}/{stem}.leac")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chips", type=int, default=200, help="synthetic chips, seeds 0..N-1 (default 200)")
    parser.add_argument("--processes", type=int, default=20,
                        help="chips timed as separate leac compile processes (default 20)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "batch.json"))
    args = parser.parse_args()
    load_before = list(os.getloadavg())  # other work on the machine slows --jobs 2 most: it is recorded
    results: dict = {"model": MODEL.name, "k": K, "chips": args.chips,
                     "chip": "synth_chip(seed=s): 32 arrays of 25 x 25, 2.5% stuck high, 0.5% stuck low"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "chips"
        folder.mkdir()
        for seed in range(args.chips):
            save_chip(synth_chip(seed=seed), folder / f"chip{seed:03d}.json")
        chips = sorted(folder.glob("*.json"))
        stems = [c.stem for c in chips]
        ways: dict[str, dict] = {}
        for jobs in (1, 2):
            name = f"batch_jobs{jobs}"
            ways[name] = batch(folder, work / name, jobs)
            print(f"  leac compile --chip-dir, --jobs {jobs}: {ways[name]['wall_seconds']:.1f} s", flush=True)
        ways["compile_model_per_chip"] = in_process(chips, work / "in_process")
        print(f"  compile_model per chip: {ways['compile_model_per_chip']['wall_seconds']:.1f} s", flush=True)
        sample = chips[:args.processes]
        ways["process_per_chip"] = processes(sample, work / "processes")
        print(f"  leac compile process per chip ({len(sample)} chips): "
              f"{ways['process_per_chip']['wall_seconds']:.1f} s", flush=True)
        same_programs(work / "batch_jobs1", work / "batch_jobs2", stems)
        same_programs(work / "batch_jobs1", work / "in_process", stems)
        same_programs(work / "batch_jobs1", work / "processes", [c.stem for c in sample])
        results["identical_programs"] = True
    for way in ways.values():
        way["seconds_per_chip"] = way["wall_seconds"] / way.get("chips", args.chips)
        way["cpu_seconds_per_chip"] = way["cpu_seconds"] / way.get("chips", args.chips)
    base = ways["process_per_chip"]["seconds_per_chip"]
    for way in ways.values():
        way["speedup_vs_process_per_chip"] = base / way["seconds_per_chip"]
    results["ways"] = ways
    results["threads"] = {key: int(value) for key, value in THREADS.items()}
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "load_average_before": load_before, "load_average_after": list(os.getloadavg())}
    print(f"{'way':<24} {'chips':>5} {'wall s':>8} {'wall s/chip':>11} {'CPU s/chip':>10} {'vs process/chip':>15}")
    for name, way in ways.items():
        print(f"{name:<24} {way.get('chips', args.chips):>5} {way['wall_seconds']:8.2f} "
              f"{way['seconds_per_chip']:11.4f} {way['cpu_seconds_per_chip']:10.4f} "
              f"{way['speedup_vs_process_per_chip']:14.1f}x")
    print(f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
