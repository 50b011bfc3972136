"""What the accuracy benchmarks share: one compile + simulate run, a pool that runs many, and summaries.

A run compiles a model for a synthetic chip (`synth_chip(**chip)`, seeded),
simulates the Program on the data files with a seeded noise draw, and
returns plain numbers (JSON-ready). Runs go to worker processes
(`--jobs`); each worker pins BLAS to one thread, which is faster than
threads at these sizes on 2 cores. Progress goes to stderr.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import dataclasses  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"
EXAMPLES = ROOT / "examples" / "data"
FAULT_RATES = (0.0, 0.05, 0.10, 0.20, 0.40, 0.50)
PAPER_MNIST = {1: (94.0, 87.6, 72.7, 43.4, 19.7, 15.2), 6: (94.3, 93.5, 92.3, 89.6, 62.4, 45.3)}
"""The seed paper's MNIST 784-150-10 accuracy (%) at FAULT_RATES, alpha = 1 and LEA alpha = 6 (its Fig. 4b):
bench_fault_rate.py's rates and the reference curves of benchmarks/plots.py."""
YINYANG = {"model": str(DATA / "yinyang_mlp.onnx"),
           "data": [str(DATA / "yinyang_task1_test.npz"), str(DATA / "yinyang_task2_test.npz")]}


def compile_case(case: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """The chip `synth_chip(**case["chip"])` (its keys write_noise_uS / read_noise_uS replace the device's
    noise), the compile of case["model"] for it with CompileOptions(**case["options"]) (and `--calibrate
    case["calibrate"]` if given), and case["data"] loaded for the Program: (chip, result, datasets).

    Raises:
        DoesNotFitError: the model does not fit the chip.
    """
    from lea_compiler.backends.sim import load_data
    from lea_compiler.chip import synth_chip
    from lea_compiler.compiler import compile_model
    from lea_compiler.pipeline import CompileOptions

    spec = dict(case["chip"])
    noise = {key: spec.pop(key) for key in ("write_noise_uS", "read_noise_uS") if key in spec}
    chip = synth_chip(**spec)
    if noise:  # the same chip with other device noise (a noise breakdown)
        chip = with_noise(chip, noise.get("write_noise_uS", chip.device.write_noise_uS),
                          noise.get("read_noise_uS", chip.device.read_noise_uS))
    result = compile_model(case["model"], chip, CompileOptions(**case["options"]), calibrate_on=case.get("calibrate"))
    return chip, result, [load_data(path, result.program.graph) for path in case["data"]]


def with_noise(chip: Any, write_noise_uS: float, read_noise_uS: float) -> Any:
    """The same chip with other device noise (a noise breakdown: the same stuck devices, less noise)."""
    return dataclasses.replace(chip, device=dataclasses.replace(chip.device, write_noise_uS=write_noise_uS,
                                                                read_noise_uS=read_noise_uS))


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Compile and load as `compile_case`, simulate on case["data"] with seed case["sim_seed"];
    returns the case with its results added. With case["uncompensated"], the same Program without its
    stuck-device compensation is simulated too (`accuracy_uncompensated`): one placement, both answers."""
    from lea_compiler.backends.sim import simulate
    from lea_compiler.errors import DoesNotFitError

    start = time.perf_counter()
    try:
        _, result, datasets = compile_case(case)
    except DoesNotFitError as exc:
        return {**case, "error": str(exc)}
    program = result.program
    report = simulate(program, datasets, seed=case["sim_seed"])
    extra = {}
    if case.get("uncompensated"):
        plain = dataclasses.replace(program, layers=tuple(
            dataclasses.replace(layer, column_gain=None, column_offset=None) for layer in program.layers))
        extra["accuracy_uncompensated"] = simulate(plain, datasets, seed=case["sim_seed"]).accuracy
    return {
        **case,
        **extra,
        "accuracy": report.accuracy,
        "accuracy_per_data": [d.accuracy for d in report.data],
        "software_accuracy": report.software_accuracy,
        "devices_used": program.devices_used,
        "mapping_error_uS": program.mapping_error_uS,
        "effective_error_uS": float(sum(layer.effective_error_uS for layer in program.layers)),
        "placement_status": program.placement.get("status"),
        "compile_s": result.seconds,
        "seconds": time.perf_counter() - start,
    }


def _portable(result: dict[str, Any]) -> dict[str, Any]:
    """File paths inside the repository as relative paths, so results files do not depend on the checkout."""
    def rel(path: str) -> str:
        p = Path(path).resolve()
        return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else path

    out = dict(result)
    for key in ("model", "calibrate"):
        if isinstance(out.get(key), str):
            out[key] = rel(out[key])
    if "data" in out:
        out["data"] = [rel(d) for d in out["data"]]
    return out


def run_all(cases: Sequence[dict[str, Any]], jobs: int,
            run: Callable[[dict[str, Any]], dict[str, Any]] = run_case) -> list[dict[str, Any]]:
    """Every case through `run`, in `jobs` processes, in the given order, with progress on stderr."""
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        for done, result in enumerate(pool.map(run, cases, chunksize=1), start=1):
            results.append(_portable(result))
            if done % max(1, len(cases) // 50) == 0 or done == len(cases):
                elapsed = time.perf_counter() - start
                left = elapsed / done * (len(cases) - done)
                print(f"\r{done}/{len(cases)} runs, {elapsed:.0f} s, ~{left:.0f} s left",
                      end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return results


def summarise(values: Iterable[float]) -> dict[str, float]:
    """Median, quartiles, mean, standard deviation, min and max (JSON-ready)."""
    v = np.asarray(list(values), dtype=np.float64)
    q1, median, q3 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "median": float(median), "q1": float(q1), "q3": float(q3), "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "min": float(v.min()), "max": float(v.max())}


def group(results: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any],
          value: str = "accuracy") -> dict[Any, list[float]]:
    """results[value] grouped by key(result), skipping runs that did not fit."""
    out: dict[Any, list[float]] = {}
    for r in results:
        if value in r:
            out.setdefault(key(r), []).append(float(r[value]))
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def median_of(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def pyplot() -> Any:
    """matplotlib.pyplot with the file-only backend, or None without the plot extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'lea-compiler[plot]'): no PNG", file=sys.stderr)
        return None
    return plt


def save_png(fig: Any, path: Path) -> None:
    """Write a figure as PNG without the version stamp, so reruns give the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    print(f"wrote {path}")
