"""leac's simulator side by side with CrossSim (Sandia) on the same model, weights, inputs and devices (issue 21).

CrossSim is not a dependency of leac: this benchmark runs in a separate environment that has both. Set it up
once (CrossSim's git source; its large application files are not needed, only `simulator/` and the
packaging files):

    git clone https://github.com/sandialabs/cross-sim /tmp/crosssim-src      # or any copy of its source
    python3.11 -m venv /tmp/venv-crosssim
    /tmp/venv-crosssim/bin/pip install numpy scipy onnx onnxruntime networkx ortools
    /tmp/venv-crosssim/bin/pip install /tmp/crosssim-src
    cd <leac checkout> && PYTHONPATH=$PWD /tmp/venv-crosssim/bin/python benchmarks/bench_crosssim.py

(The leac checkout is put on the path with PYTHONPATH, or `pip install -e .` it into that venv.)

What is compared. The float digits MLP (examples/data/digits_mlp_float.onnx, 64-150-10, ReLU) on the 540
test digits, k = 1 (CrossSim has no ensembles), every layer on one array (256 x 256: no tiling in either), the
bias added digitally, ReLU digital. leac compiles it with `--encoding simple --scale per-layer --compensate
none --calibrate digits_calib.npz` for a defect-free chip; the CrossSim side is built from the same ONNX
weights with settings chosen to be the same model of the same hardware:

- conductance levels: L evenly spaced levels from Gmin to Gmax (CrossSim: `cell_bits` = log2 L, Rmin =
  1/Gmax, Rmax = 1/Gmin); both put a weight on a differential pair with one device at Gmin (leac `simple`,
  CrossSim BALANCED ONE_SIDED) and round to the nearest level;
- the weight scale: leac's per-layer scale s (uS per weight unit, chosen by leac, clipping the largest
  weights if that lowers the error); CrossSim gets weight range +-(Gmax - Gmin) / s with clipping, so both
  map the same weight to the same conductance. The benchmark checks that CrossSim's programmed conductances
  equal leac's target levels device for device before it runs anything;
- programming error: Gaussian, the same sigma in uS, clipped at 0 (leac `write_noise_uS`; CrossSim
  NormalIndependentDevice, magnitude sigma / Gmax);
- read noise: uniform +-r per device and read in both (leac `read_noise_uS` = r; CrossSim
  UniformIndependentDevice, magnitude 2 r / Gmax, i.e. (U - 0.5) x 2r, drawn per device for every input
  vector). leac by default draws the column's sum of those device noises as one Gaussian of the same
  variance (r^2 / 3 sum_i V_i^2); `exact` rows use `exact_read_noise=True` (every device's uniform);
- DAC: signed, `dac_bits`, over +-x_fs with x_fs leac's calibrated input range of the layer (CrossSim:
  SignMagnitudeDAC, input range +-x_fs, clipped);
- ADC: signed, `adc_bits`, over +-I_fs, I_fs leac's calibrated ADC range of the layer's block (1.25 x the
  largest calibration current), each polarity converted on its own (CrossSim: SignMagnitudeADC with
  `calibrated_range` +-I_fs / (v_read Gmax) in its normalised units, `subtract_current_in_xbar` off so that
  G+ and G- currents are converted separately as on leac's chip);
- no stuck devices, no IR drop (leac has no line resistance yet; CrossSim's parasitics stay off).

Reported per scenario and simulator: top-1 accuracy and each layer's relative RMS output error against the
float model (leac's definition: the simulated network's layer output, fed by the simulated layers before it,
against the float network's, sqrt(sum err^2 / sum ref^2) over all samples), mean, standard deviation
(ddof = 1) and range over the seeds. "agree" says whether the difference of the means is within the
seed-to-seed spread: |mean_leac - mean_cs| <= 2 x the standard error of that difference (sqrt(sd_l^2 / n +
sd_c^2 / n)), and, for metrics with no seed spread (noise-free), to within 1e-6.

Run:  PYTHONPATH=$PWD /tmp/venv-crosssim/bin/python benchmarks/bench_crosssim.py [--seeds 10]
      [--device both] [--out benchmarks/results/crosssim.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lea_compiler.program import Program

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
RESULTS = ROOT / "benchmarks" / "results"

SETUP = """CrossSim is not installed in this Python ({python}).
This benchmark needs CrossSim (https://github.com/sandialabs/cross-sim) and leac in one environment:

    git clone https://github.com/sandialabs/cross-sim /tmp/crosssim-src
    python3.11 -m venv /tmp/venv-crosssim
    /tmp/venv-crosssim/bin/pip install numpy scipy onnx onnxruntime networkx ortools
    /tmp/venv-crosssim/bin/pip install /tmp/crosssim-src
    PYTHONPATH=$PWD /tmp/venv-crosssim/bin/python benchmarks/bench_crosssim.py
"""


def import_crosssim() -> Any:
    """CrossSim's `simulator` package, or exit with the setup commands."""
    try:
        import simulator
        from simulator import AnalogCore, CrossSimParameters  # noqa: F401
    except ImportError as error:
        sys.exit(SETUP.format(python=sys.executable) + f"\n(import error: {error})")
    if not hasattr(simulator, "AnalogCore"):
        sys.exit(SETUP.format(python=sys.executable) + "\n(a module named `simulator` is not CrossSim's)")
    return simulator


@dataclass(frozen=True)
class Device:
    """A device both simulators model: L evenly spaced levels, Gaussian write error, uniform read noise."""

    name: str
    g_min_uS: float
    g_max_uS: float
    cell_bits: int  # 2 ** cell_bits levels
    write_noise_uS: float
    read_noise_uS: float  # half-width r of the uniform read noise

    @property
    def levels_uS(self) -> list[float]:
        return [float(v) for v in np.linspace(self.g_min_uS, self.g_max_uS, 2 ** self.cell_bits)]


DEVICES = {
    # the seed paper's device: 4 levels 33 uS apart, write sigma 16.66 uS, read noise +-10 uS (here evenly spaced
    # from 100 uS, which CrossSim's levels need)
    "paper": Device("paper (4 levels, 100-200 uS)", 100.0, 200.0, 2, 16.66, 10.0),
    # a finer analog RRAM: 16 levels 6 uS apart, write sigma 3 uS, read noise +-3 uS
    "fine": Device("fine (16 levels, 10-100 uS)", 10.0, 100.0, 4, 3.0, 3.0),
}
SCENARIOS = ("quantization", "write", "read", "write+read")
V_READ = 0.2
ARRAY = 256


def chip_json(device: Device, scenario: str, dac_bits: int, adc_bits: int) -> dict:
    """The leac chip: two defect-free 256 x 256 arrays with the device and converters of the scenario."""
    return {
        "format": "leac-chip", "version": 1, "name": f"crosssim-bench {device.name} {scenario}",
        "device": {"levels_uS": device.levels_uS,
                   "write_noise_uS": device.write_noise_uS if "write" in scenario else 0.0,
                   "read_noise_uS": device.read_noise_uS if "read" in scenario else 0.0},
        "periphery": {"v_read_V": V_READ, "dac_bits": dac_bits, "adc_bits": adc_bits},
        "arrays": {"count": 2, "rows": ARRAY, "cols": ARRAY},
    }


def float_layers(model_path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, W (inputs, outputs), b) of the MLP's Gemm layers, float64, in order."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(model_path)
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type != "Gemm":
            continue
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        w = inits[node.input[1]]
        layers.append((node.name, w.T if trans_b else w, inits[node.input[2]]))
    return layers


def forward(layers: list, x: np.ndarray, matmul: Callable[[int, np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """Each layer's output (before ReLU) of the MLP, with `matmul(index, h)` computing h @ W of layer index."""
    outs, h = [], x
    for i, (_, _, b) in enumerate(layers):
        y = matmul(i, h) + b
        outs.append(y)
        h = np.maximum(y, 0.0)
    return outs


def layer_errors(outs: list[np.ndarray], ref: list[np.ndarray]) -> list[float]:
    return [float(math.sqrt(np.sum((o - r) ** 2) / np.sum(r ** 2))) for o, r in zip(outs, ref, strict=True)]


def crosssim_params(simulator: Any, device: Device, scenario: str, w_max: float, x_fs: float,
                    adc_range: float, dac_bits: int, adc_bits: int) -> Any:
    """CrossSim parameters for one layer (see the module docstring for the correspondence)."""
    from simulator.parameters.core_parameters import BalancedCoreStyle, CoreStyle
    from simulator.parameters.xbar_parameters import ADCRangeLimits

    p = simulator.CrossSimParameters()
    p.core.style = CoreStyle.BALANCED
    p.core.balanced.style = BalancedCoreStyle.ONE_SIDED
    p.core.balanced.subtract_current_in_xbar = False  # G+ and G- currents converted on their own
    p.core.rows_max = ARRAY
    p.core.cols_max = ARRAY
    p.core.mapping.weights.clipping = True
    p.core.mapping.weights.percentile = None
    p.core.mapping.weights.min = -w_max
    p.core.mapping.weights.max = w_max
    p.core.mapping.inputs.mvm.clipping = True
    p.core.mapping.inputs.mvm.percentile = None
    p.core.mapping.inputs.mvm.min = -x_fs
    p.core.mapping.inputs.mvm.max = x_fs
    d = p.xbar.device
    d.cell_bits = device.cell_bits
    d.Rmin = 1e6 / device.g_max_uS  # ohms
    d.Rmax = 1e6 / device.g_min_uS
    d.clip_conductance = False
    if "write" in scenario:
        d.programming_error.enable = True
        d.programming_error.model = "NormalIndependentDevice"
        d.programming_error.magnitude = device.write_noise_uS / device.g_max_uS
    if "read" in scenario:
        d.read_noise.enable = True
        d.read_noise.model = "UniformIndependentDevice"
        d.read_noise.magnitude = 2.0 * device.read_noise_uS / device.g_max_uS
    p.xbar.dac.mvm.model = "SignMagnitudeDAC"
    p.xbar.dac.mvm.bits = dac_bits
    p.xbar.dac.mvm.signed = True
    p.xbar.adc.mvm.model = "SignMagnitudeADC"
    p.xbar.adc.mvm.bits = adc_bits
    p.xbar.adc.mvm.signed = True
    p.xbar.adc.mvm.adc_range_option = ADCRangeLimits.CALIBRATED
    p.xbar.adc.mvm.calibrated_range = [-adc_range, adc_range]
    return p


def compile_leac(device: Device, scenario: str, dac_bits: int, adc_bits: int) -> Program:
    """leac's Program for the scenario's chip (k = 1, simple pairs, one scale per layer, calibrated ranges)."""
    import lea_compiler as leac
    from lea_compiler.chip.io import parse_chip

    chip = parse_chip(chip_json(device, scenario, dac_bits, adc_bits), f"{device.name} {scenario}")
    return leac.compile(DATA / "digits_mlp_float.onnx", chip, calibrate_on=DATA / "digits_calib.npz", k=1,
                        encoding="simple", scale="per-layer", compensate="none", placer="greedy", seed=0)


def crosssim_cores(simulator: Any, program: Program, layers: list, device: Device, scenario: str,
                   dac_bits: int, adc_bits: int) -> list:
    """One AnalogCore per layer, programmed now (CrossSim draws the programming error from numpy's global RNG)."""
    cores = []
    for layer, (_, w, _) in zip(program.layers, layers, strict=True):
        if len(layer.blocks) != 1 or len({float(s) for s in layer.scale}) != 1:
            raise SystemExit(f"layer {layer.name}: expected one block and one scale per layer")
        w_max = (device.g_max_uS - device.g_min_uS) / float(layer.scale[0])
        adc_range = float(layer.blocks[0].adc_full_scale_uA) / (V_READ * device.g_max_uS)
        params = crosssim_params(simulator, device, scenario, w_max, float(layer.input_full_scale), adc_range,
                                 dac_bits, adc_bits)
        cores.append(simulator.AnalogCore(w.T.astype(np.float32), params))
    return cores


def check_same_conductances(cores: list, program: Program, device: Device) -> float:
    """Largest |G_CrossSim - G_leac| (uS) over every device of both polarities, on noise-free cores."""
    worst = 0.0
    for core, layer in zip(cores, program.layers, strict=True):
        levels = np.asarray(layer.levels_uS)
        block = layer.blocks[0]
        balanced = core.cores[0][0]
        for inner, target in ((balanced.core_pos, block.target_pos), (balanced.core_neg, block.target_neg)):
            worst = max(worst, float(np.max(np.abs(inner.matrix * device.g_max_uS - levels[target].T))))
    return worst


def leac_ties(x: np.ndarray, x_fs: float, dac_bits: int) -> np.ndarray:
    """x with every input that lies exactly between two DAC codes moved by 1e-6 of x_fs the way leac rounds it.

    leac's DAC rounds x / x_fs q (q = 2^(bits-1) - 1) half to even; CrossSim's rounds (x / x_fs + 1) q half to
    even, and q is odd, so a tie goes to the other code (digits pixels of 8/16 are such ties). Moved off the tie,
    both DACs give leac's code: the diagnostic row that shows this is the only systematic difference."""
    q = (1 << (dac_bits - 1)) - 1
    s = x / x_fs * q
    tie = np.abs(s - np.floor(s) - 0.5) < 1e-9
    return np.where(tie, x + np.sign(np.round(s) - s) * 1e-6 * x_fs, x)  # 1e-6: well above a float32 ulp


def programmed_errors(program: Program, cores: list, device: Device, seed: int) -> dict:
    """Every device's programmed conductance minus its target level (uS), as leac's simulator programs it for
    `seed` and as CrossSim's cores hold it: the mean, standard deviation and a two-sample KS test's p-value."""
    from scipy import stats

    from lea_compiler.backends.sim import CrossbarLayer

    rng = np.random.default_rng(seed)  # as `simulate(seed=seed)` programs the layers, in order
    ours, theirs = [], []
    for core, layer in zip(cores, program.layers, strict=True):
        levels = np.asarray(layer.levels_uS)
        block = layer.blocks[0]
        held = CrossbarLayer.of(program, layer.name, program.chip, rng).executor.conductances
        balanced = core.cores[0][0]
        for g, inner, target in zip(held, (balanced.core_pos, balanced.core_neg), (block.target_pos, block.target_neg),
                                    strict=True):
            ours.append((np.asarray(g) - levels[target]).ravel())
            theirs.append((inner.matrix * device.g_max_uS - levels[target].T).ravel())
    a, b = np.concatenate(ours), np.concatenate(theirs)
    return {"devices": int(a.size), "leac_mean_uS": float(a.mean()), "leac_sd_uS": float(a.std()),
            "crosssim_mean_uS": float(b.mean()), "crosssim_sd_uS": float(b.std()),
            "ks_p": float(stats.ks_2samp(a, b).pvalue)}


def crosssim_run(cores: list, layers: list, x: np.ndarray) -> list[np.ndarray]:
    return forward(layers, x, lambda i, h: (cores[i] @ h.T.astype(np.float32)).T.astype(np.float64))


def summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": len(a), "values": [float(v) for v in a]}


def agreement(a: dict, b: dict) -> dict:
    """Whether two metrics' means agree within their seed-to-seed spread (module docstring), and Levene's test
    of equal spreads (its p-value; None without spread)."""
    from scipy import stats

    diff = a["mean"] - b["mean"]
    se = math.sqrt(a["sd"] ** 2 / a["n"] + b["sd"] ** 2 / b["n"])
    tolerance = 2.0 * se if se > 0 else 1e-6
    spread = None
    if a["n"] > 2 and b["n"] > 2 and a["sd"] > 0 and b["sd"] > 0:
        spread = float(stats.levene(a["values"], b["values"]).pvalue)
    return {"difference": diff, "standard_error": se, "agree": bool(abs(diff) <= tolerance),
            "levene_p": spread}


def run_scenario(simulator: Any, device: Device, scenario: str, seeds: list[int], x: np.ndarray,
                 y: np.ndarray, layers: list, ref: list, dac_bits: int, adc_bits: int) -> dict:
    import lea_compiler as leac

    program = compile_leac(device, scenario, dac_bits, adc_bits)
    names = [layer.name for layer in program.layers]
    noisy = scenario != "quantization"
    runs = seeds if noisy else seeds[:1]  # without noise every seed gives the same numbers
    rows: dict[str, dict[str, list[float]]] = {}

    def record(label: str, accuracy: float, errors: list[float]) -> None:
        row = rows.setdefault(label, {"accuracy": [], **{f"error_{n}": [] for n in names}})
        row["accuracy"].append(accuracy)
        for n, e in zip(names, errors, strict=True):
            row[f"error_{n}"].append(e)

    timing = {"leac": 0.0, "leac exact read noise": 0.0, "crosssim": 0.0}
    variants = [("leac", False)] + ([("leac exact read noise", True)] if "read" in scenario else [])
    for label, exact in variants:
        for seed in runs:
            start = time.perf_counter()
            report = leac.simulate(program, (x.astype(np.float32), y), seed=seed, exact_read_noise=exact)
            timing[label] += time.perf_counter() - start
            record(label, report.accuracy, [report.layer_error[n] for n in names])
    worst_uS, write_check = None, None
    for seed in runs:
        np.random.seed(seed)  # CrossSim draws its noise from numpy's global generator
        start = time.perf_counter()
        cores = crosssim_cores(simulator, program, layers, device, scenario, dac_bits, adc_bits)
        if "write" in scenario and seed == runs[0]:
            write_check = programmed_errors(program, cores, device, seed)
        if "write" not in scenario and worst_uS is None:
            worst_uS = check_same_conductances(cores, program, device)
            if worst_uS > 1e-4:
                raise SystemExit(f"{device.name}: CrossSim's programmed conductances differ from leac's targets "
                                 f"by up to {worst_uS} uS; the comparison would not be of the same weights")
        outs = crosssim_run(cores, layers, x)
        timing["crosssim"] += time.perf_counter() - start
        record("crosssim", float(np.mean(np.argmax(outs[-1], axis=1) == y)), layer_errors(outs, ref))
        if not noisy:  # the one systematic difference: how the two DACs round an input exactly between two codes
            outs = crosssim_run(cores, layers, leac_ties(x, float(program.layers[0].input_full_scale), dac_bits))
            record("crosssim, DAC ties rounded as leac", float(np.mean(np.argmax(outs[-1], axis=1) == y)),
                   layer_errors(outs, ref))
    stats = {label: {metric: summary(values) for metric, values in row.items()} for label, row in rows.items()}
    compare = {}
    for label in stats:
        if label.startswith("leac"):
            for other in (o for o in stats if o.startswith("crosssim")):
                compare[f"{label} vs {other}"] = {metric: agreement(stats[label][metric], stats[other][metric])
                                                  for metric in stats[other]}
    return {"scenario": scenario, "seeds": runs, "layers": names, "results": stats, "agreement": compare,
            "same_conductances_max_diff_uS": worst_uS, "programmed_error": write_check,
            "weight_scale_uS": {layer.name: float(layer.scale[0]) for layer in program.layers},
            "input_full_scale": {layer.name: float(layer.input_full_scale) for layer in program.layers},
            "adc_full_scale_uA": {layer.name: float(layer.blocks[0].adc_full_scale_uA) for layer in program.layers},
            "seconds": timing}


def crosssim_version(commit: str | None) -> dict:
    """CrossSim's installed version (its package metadata) and the commit the user says it was built from."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("CrossSim")
    except PackageNotFoundError:
        installed = "unknown"
    return {"version": installed, "commit": commit or "not given (--crosssim-commit)"}


def fmt(stat: dict, scale: float = 1.0, digits: int = 2) -> str:
    if stat["n"] == 1 or stat["sd"] == 0:
        return f"{scale * stat['mean']:.{digits}f}"
    return f"{scale * stat['mean']:.{digits}f} +- {scale * stat['sd']:.{digits}f}"


def table(result: dict) -> list[str]:
    names = result["layers"]
    lines = [f"  {result['scenario']} ({len(result['seeds'])} seed{'s' if len(result['seeds']) > 1 else ''})",
             f"    {'simulator':38s} {'accuracy %':>16s} " + " ".join(f"{'err ' + n + ' %':>16s}" for n in names)]
    for label, stats in result["results"].items():
        lines.append(f"    {label:38s} {fmt(stats['accuracy'], 100):>16s} "
                     + " ".join(f"{fmt(stats['error_' + n], 100, 3):>16s}" for n in names))
    if result["same_conductances_max_diff_uS"] is not None:
        lines.append(f"    noise-free conductances, CrossSim vs leac's targets: max |difference| "
                     f"{result['same_conductances_max_diff_uS']:.2g} uS over every device")
    if result["programmed_error"] is not None:
        w = result["programmed_error"]
        lines.append(f"    programmed - target over {w['devices']} devices (seed {result['seeds'][0]}): leac mean "
                     f"{w['leac_mean_uS']:+.3f} sd {w['leac_sd_uS']:.3f} uS, CrossSim mean "
                     f"{w['crosssim_mean_uS']:+.3f} sd {w['crosssim_sd_uS']:.3f} uS, KS p {w['ks_p']:.2f}")
    for label, metrics in result["agreement"].items():
        verdict = ", ".join(f"{m.replace('error_', 'err ')} {'yes' if a['agree'] else 'NO'} "
                            f"({100 * a['difference']:+.3f} pt, 2se {200 * a['standard_error']:.3f}"
                            + (f", Levene p {a['levene_p']:.2f})" if a["levene_p"] is not None else ")")
                            for m, a in metrics.items())
        lines.append(f"    agree, {label}: {verdict}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="noise seeds per scenario and simulator")
    parser.add_argument("--device", choices=[*DEVICES, "both"], default="both")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--dac-bits", type=int, default=8)
    parser.add_argument("--adc-bits", type=int, default=8)
    parser.add_argument("--crosssim-commit", default=None,
                        help="the CrossSim commit installed, to record (git -C CROSSSIM_SRC rev-parse HEAD)")
    parser.add_argument("--out", default=str(RESULTS / "crosssim.json"))
    args = parser.parse_args()
    simulator = import_crosssim()
    import lea_compiler

    test = np.load(DATA / "digits_test.npz")
    x, y = test["x"].astype(np.float64), test["y"].astype(np.int64)
    layers = float_layers(DATA / "digits_mlp_float.onnx")
    ref = forward(layers, x, lambda i, h: h @ layers[i][1])
    software = float(np.mean(np.argmax(ref[-1], axis=1) == y))
    seeds = list(range(args.seeds))
    devices = list(DEVICES) if args.device == "both" else [args.device]
    scenarios = [s for s in args.scenarios.split(",") if s]
    out = {"benchmark": "crosssim", "model": "examples/data/digits_mlp_float.onnx (64-150-10, ReLU)",
           "data": f"examples/data/digits_test.npz ({len(y)} samples)", "software_accuracy": software,
           "crosssim": crosssim_version(args.crosssim_commit), "leac": lea_compiler.__version__,
           "python": platform.python_version(), "numpy": np.__version__,
           "settings": {"dac_bits": args.dac_bits, "adc_bits": args.adc_bits, "v_read_V": V_READ, "k": 1,
                        "array": f"{ARRAY} x {ARRAY}", "leac_compile": "--encoding simple --scale per-layer "
                        "--compensate none --calibrate examples/data/digits_calib.npz -k 1 --placer greedy"},
           "devices": {}}
    lines = [f"leac {lea_compiler.__version__} vs CrossSim {out['crosssim']['version']} "
             f"(commit {out['crosssim']['commit']}), digits MLP float, {len(y)} test samples, software "
             f"accuracy {100 * software:.2f}%, DAC {args.dac_bits} bits, ADC {args.adc_bits} bits, k = 1",
             "mean +- sd over seeds; err = relative RMS error of the layer's output against the float network"]
    for key in devices:
        device = DEVICES[key]
        entry = {"device": device.__dict__ | {"levels_uS": device.levels_uS}, "scenarios": []}
        lines.append(f"\n{device.name}: write sigma {device.write_noise_uS} uS, read noise +-{device.read_noise_uS} uS")
        for scenario in scenarios:
            result = run_scenario(simulator, device, scenario, seeds, x, y, layers, ref, args.dac_bits, args.adc_bits)
            entry["scenarios"].append(result)
            lines += table(result)
            print("\n".join(table(result)), flush=True)
        out["devices"][key] = entry
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    Path(args.out).with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
