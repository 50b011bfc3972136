"""leac's simulator side by side with CrossSim (Sandia) on the same model, weights, inputs and devices (issue 21).

CrossSim is not a dependency of leac: this benchmark runs in a separate environment that has both. Set it up
once (CrossSim's git source; its large application files are not needed, only `simulator/` and the
packaging files):

    git clone https://github.com/sandialabs/cross-sim /tmp/crosssim-src      # or any copy of its source
    python3.11 -m venv /tmp/venv-crosssim
    /tmp/venv-crosssim/bin/pip install numpy scipy onnx onnxruntime networkx ortools threadpoolctl
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
- no stuck devices;
- IR drop only in the `ir-drop` scenarios (`--line-ohm R`): word and bit lines of R ohm per segment, no driver
  or sense resistance (leac's chip `periphery.lines`; CrossSim's non-interleaved, current-from-input array
  solver, Rp_row = Rp_col = R, converged to 1e-5 of full scale). leac reads a region inside a larger array:
  its word line runs from the array's column 0 and its bit line on to below the array's last row, and those
  leads carry the whole line current; CrossSim's array is the block itself, so leac's extra lead segments are
  given to CrossSim as terminal resistances of each half's lines (`leads`), set in the solver directly
  (`set_line_resistances`: CrossSim's own `Rp_row_terminal` is applied to the wrong axis). A leac whose chip
  format has no `lines` runs CrossSim alone in those scenarios and says so.

Reported per scenario and simulator: top-1 accuracy and each layer's relative RMS output error against the
float model (leac's definition: the simulated network's layer output, fed by the simulated layers before it,
against the float network's, sqrt(sum err^2 / sum ref^2) over all samples), mean, standard deviation
(ddof = 1) and range over the seeds. "agree" says whether the difference of the means is within the
seed-to-seed spread: |mean_leac - mean_cs| <= 2 x the standard error of that difference (sqrt(sd_l^2 / n +
sd_c^2 / n)), and, for metrics with no seed spread (noise-free), to within 1e-6 (1e-4 with IR drop, whose
CrossSim solve is iterative). Levene's test (scipy) compares the spreads; a programmed-conductance check
compares every device's write error in both (mean, sd, two-sample KS test).

Run:  PYTHONPATH=$PWD /tmp/venv-crosssim/bin/python benchmarks/bench_crosssim.py [--seeds 20]
      [--device paper|fine|both] [--scenarios quantization,write,...] [--dac-bits 8] [--adc-bits 8]
      [--line-ohm R] [--crosssim-commit SHA] [--leac-commit SHA] [--out benchmarks/results/crosssim.json]
(writes the .json and a .txt table beside it)
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
    /tmp/venv-crosssim/bin/pip install numpy scipy onnx onnxruntime networkx ortools threadpoolctl
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
IR_SCENARIOS = ("ir-drop", "ir-drop+write+read")
V_READ = 0.2
ARRAY = 256


@dataclass(frozen=True)
class Setup:
    """The periphery both simulators get: converter bits and the line resistance (ohm per segment, or None)."""

    dac_bits: int
    adc_bits: int
    line_ohm: float | None = None


def chip_json(device: Device, scenario: str, setup: Setup) -> dict:
    """The leac chip: two defect-free 256 x 256 arrays with the device and converters of the scenario (and, for
    an IR-drop scenario, word and bit lines of `setup.line_ohm` per segment, no driver or sense resistance)."""
    periphery: dict[str, Any] = {"v_read_V": V_READ, "dac_bits": setup.dac_bits, "adc_bits": setup.adc_bits}
    if "ir-drop" in scenario:
        periphery["lines"] = {"word_line_segment_ohm": setup.line_ohm, "bit_line_segment_ohm": setup.line_ohm}
    return {
        "format": "leac-chip", "version": 1, "name": f"crosssim-bench {device.name} {scenario}",
        "device": {"levels_uS": device.levels_uS,
                   "write_noise_uS": device.write_noise_uS if "write" in scenario else 0.0,
                   "read_noise_uS": device.read_noise_uS if "read" in scenario else 0.0},
        "periphery": periphery,
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
                    adc_range: float, setup: Setup) -> Any:
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
    p.xbar.dac.mvm.bits = setup.dac_bits
    p.xbar.dac.mvm.signed = True
    p.xbar.adc.mvm.model = "SignMagnitudeADC"
    p.xbar.adc.mvm.bits = setup.adc_bits
    p.xbar.adc.mvm.signed = True
    p.xbar.adc.mvm.adc_range_option = ADCRangeLimits.CALIBRATED
    p.xbar.adc.mvm.calibrated_range = [-adc_range, adc_range]
    if "ir-drop" in scenario:  # the lines' segments; each half's leads are set from leac's placement (`leads`)
        p.xbar.array.parasitics.enable = True
        p.xbar.array.parasitics.Rp_row = setup.line_ohm  # the input (word) lines
        p.xbar.array.parasitics.Rp_col = setup.line_ohm  # the summation (bit) lines
        p.xbar.array.parasitics.current_from_input = True
        p.simulation.Verr_th_mvm = 1e-5  # converged to 1e-5 of the full-scale input (default 1e-3; float32 G)
        p.simulation.Niters_max_parasitics = 1000
        p.simulation.hide_convergence_msg = True
    return p


def compile_leac(device: Device, scenario: str, setup: Setup) -> tuple[Program, bool]:
    """leac's Program for the scenario's chip (k = 1, simple pairs, one scale per layer, calibrated ranges), and
    whether this leac simulates the scenario: a leac without line resistance refuses the chip's `lines`, and the
    Program is then compiled for the same chip without them (CrossSim still runs, for the record)."""
    import lea_compiler as leac
    from lea_compiler.chip.io import parse_chip
    from lea_compiler.errors import InvalidChipError

    spec = chip_json(device, scenario, setup)
    supported = True
    try:
        chip = parse_chip(spec, f"{device.name} {scenario}")
    except InvalidChipError as error:
        if "lines" not in str(error):
            raise
        supported = False
        del spec["periphery"]["lines"]
        chip = parse_chip(spec, f"{device.name} {scenario}")
    program = leac.compile(DATA / "digits_mlp_float.onnx", chip, calibrate_on=DATA / "digits_calib.npz", k=1,
                           encoding="simple", scale="per-layer", compensate="none", placer="greedy", seed=0)
    return program, supported


def leads(program: Program, layer_index: int, setup: Setup) -> list[tuple[float, float]]:
    """Per half (G+, G-) of the layer's one copy: CrossSim's terminal resistances (row, column; ohm) that make its
    array of the block's size see the leads leac's region sees on its larger array. leac's word line runs from the
    driver at the array's column 0 to the region, (col + 1) segments to its first device; its bit line from the
    region's last row to the sense amplifier below the array's last row, (array rows - row - rows + 1) segments
    (lea_compiler/irdrop.py). CrossSim's lines have one segment to their terminal, so the rest is a terminal
    resistance: col segments, and (array rows - row - rows) segments (the lead carries the whole line current
    in both, as no other device of those lines conducts)."""
    layer = program.layers[layer_index]
    block = layer.blocks[0]
    out = []
    for half in (block.copies[0].pos, block.copies[0].neg):
        region = half.region
        array_rows = program.chip.array(region.array).rows
        rows = block.row_stop - block.row_start
        assert setup.line_ohm is not None
        out.append((region.col * setup.line_ohm, (array_rows - region.row - rows) * setup.line_ohm))
    return out


def set_line_resistances(solver: Any, shape: tuple[int, int], line_ohm: float | None,
                         terminals: tuple[float, float], device: Device,
                         segment_norm: tuple[float, float] | None = None) -> None:
    """Give a CrossSim MVM circuit solver its per-segment line resistances with the terminal resistances
    (row, column; ohm) at the lines' driven and sensed ends, in its units (ohm / Rmin, Rmin = 1 / Gmax).

    Set directly rather than through `Rp_row_terminal`: CrossSim 3.2.0's NoninterleavedInputSourceArray adds
    the row terminal at `Rp_in_mat[:, 0]`, i.e. to every segment of the first input's line, where the input
    lines' sources are at `Rp_in_mat[0, :]` (its matrix is (outputs, inputs) and the input lines run along
    axis 0); a dense nodal solve of a 3 x 4 array differs from it by 2% and agrees with the values set here to
    1e-12 (docs/simulator.md, "Side by side with CrossSim"). The column terminal (`Rp_out_mat[:, -1]`) is right."""
    assert line_ohm is not None
    per_ohm = device.g_max_uS * 1e-6
    row_seg, col_seg = segment_norm or (line_ohm * per_ohm, line_ohm * per_ohm)
    row_in = np.full(shape, row_seg)
    row_in[0, :] += terminals[0] * per_ohm  # each input line's source end
    col_out = np.full(shape, col_seg)
    col_out[:, -1] += terminals[1] * per_ohm  # each summation line's sensed end
    solver.Rp_in_mat, solver.Rp_out_mat = row_in, col_out


def nodal_currents(g: np.ndarray, v: np.ndarray, r_row: float, r_col: float, lead_row: float,
                   lead_col: float) -> np.ndarray:
    """Output currents of CrossSim's array topology by a dense nodal solve (the reference for `check_line_solver`).

    g (outputs, inputs) conductances, v (inputs,) voltages, resistances in the units of 1 / g. Input line j:
    source v_j, lead_row, node (j, 0), then r_row between nodes (j, i) and (j, i + 1), open at the far end.
    Output line i: nodes (i, 0) .. (i, inputs - 1) joined by r_col, then lead_col to ground (a virtual ground:
    the current through it is the output). Device (i, j) joins input node (j, i) to output node (i, j)."""
    n_out, n_in = g.shape
    size = 2 * n_out * n_in
    a = np.zeros((size, size))
    b = np.zeros(size)

    def u(j: int, i: int) -> int:
        return j * n_out + i

    def w(i: int, j: int) -> int:
        return n_out * n_in + i * n_in + j

    def link(p: int, q: int, conductance: float) -> None:
        a[p, p] += conductance
        a[q, q] += conductance
        a[p, q] -= conductance
        a[q, p] -= conductance

    for j in range(n_in):
        a[u(j, 0), u(j, 0)] += 1.0 / lead_row
        b[u(j, 0)] += v[j] / lead_row
        for i in range(n_out - 1):
            link(u(j, i), u(j, i + 1), 1.0 / r_row)
    for i in range(n_out):
        for j in range(n_in - 1):
            link(w(i, j), w(i, j + 1), 1.0 / r_col)
        a[w(i, n_in - 1), w(i, n_in - 1)] += 1.0 / lead_col
        for j in range(n_in):
            link(u(j, i), w(i, j), float(g[i, j]))
    nodes = np.linalg.solve(a, b)
    return np.array([nodes[w(i, n_in - 1)] / lead_col for i in range(n_out)])


def check_line_solver(simulator: Any) -> dict:
    """CrossSim's line solver on a random 3 x 4 array with terminal resistances against `nodal_currents`: set by
    its parameters (`Rp_row_terminal`, `Rp_col_terminal`) and set directly as `set_line_resistances` does (the
    largest relative difference of the output currents of each)."""
    from simulator.parameters.core_parameters import CoreStyle

    rng = np.random.default_rng(0)
    g = rng.uniform(0.1, 1.0, size=(3, 4))  # normalised conductances, Rmin = 1 ohm
    v = rng.uniform(0.2, 1.0, size=4)
    r_row, r_col, t_row, t_col = 0.02, 0.03, 0.05, 0.04
    want = nodal_currents(g, v, r_row, r_col, r_row + t_row, r_col + t_col)
    errors = {}
    for how in ("parameters", "set directly"):
        p = simulator.CrossSimParameters()
        p.core.style = CoreStyle.OFFSET  # one array holding the matrix as it is
        p.xbar.device.Rmin, p.xbar.device.Rmax = 1.0, 1e9
        p.xbar.array.parasitics.enable = True
        p.xbar.array.parasitics.Rp_row, p.xbar.array.parasitics.Rp_col = r_row, r_col
        if how == "parameters":
            p.xbar.array.parasitics.Rp_row_terminal, p.xbar.array.parasitics.Rp_col_terminal = t_row, t_col
        p.simulation.Verr_th_mvm = 1e-12
        p.simulation.Niters_max_parasitics = 10000
        solver = simulator.AnalogCore(np.zeros(g.shape), p).cores[0][0].core.circuit_solver_mvm
        if how == "set directly":
            set_line_resistances(solver, g.shape, 1.0, (t_row, t_col), Device("unit", 1e-6, 1e6, 1, 0.0, 0.0),
                                 segment_norm=(r_row, r_col))
        got = solver.iterative_solve(g.copy(), v.copy(), row_in=True)
        errors[how] = float(np.max(np.abs(got - want) / np.abs(want)))
    return {"array": "3 x 4", "max_relative_difference": errors}


def crosssim_cores(simulator: Any, program: Program, layers: list, device: Device, scenario: str,
                   setup: Setup) -> list:
    """One AnalogCore per layer, programmed now (CrossSim draws the programming error from numpy's global RNG)."""
    cores = []
    for layer, (_, w, _) in zip(program.layers, layers, strict=True):
        if len(layer.blocks) != 1 or len({float(s) for s in layer.scale}) != 1:
            raise SystemExit(f"layer {layer.name}: expected one block and one scale per layer")
        w_max = (device.g_max_uS - device.g_min_uS) / float(layer.scale[0])
        adc_range = float(layer.blocks[0].adc_full_scale_uA) / (V_READ * device.g_max_uS)
        params = crosssim_params(simulator, device, scenario, w_max, float(layer.input_full_scale), adc_range,
                                 setup)
        core = simulator.AnalogCore(w.T.astype(np.float32), params)
        if "ir-drop" in scenario:
            balanced = core.cores[0][0]
            for inner, terminals in zip((balanced.core_pos, balanced.core_neg), leads(program, len(cores), setup),
                                        strict=True):
                set_line_resistances(inner.circuit_solver_mvm, w.T.shape, setup.line_ohm, terminals, device)
        cores.append(core)
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


def agreement(a: dict, b: dict, exact: float) -> dict:
    """Whether two metrics' means agree within their seed-to-seed spread (module docstring; to within `exact`
    when neither has spread), and Levene's test of equal spreads (its p-value; None without spread)."""
    from scipy import stats

    diff = a["mean"] - b["mean"]
    se = math.sqrt(a["sd"] ** 2 / a["n"] + b["sd"] ** 2 / b["n"])
    tolerance = 2.0 * se if se > 0 else exact
    spread = None
    if a["n"] > 2 and b["n"] > 2 and a["sd"] > 0 and b["sd"] > 0:
        spread = float(stats.levene(a["values"], b["values"]).pvalue)
    return {"difference": diff, "standard_error": se, "agree": bool(abs(diff) <= tolerance),
            "levene_p": spread}


def run_scenario(simulator: Any, device: Device, scenario: str, seeds: list[int], x: np.ndarray,
                 y: np.ndarray, layers: list, ref: list, setup: Setup) -> dict:
    import lea_compiler as leac

    program, supported = compile_leac(device, scenario, setup)
    names = [layer.name for layer in program.layers]
    noisy = "write" in scenario or "read" in scenario
    runs = seeds if noisy else seeds[:1]  # without noise every seed gives the same numbers
    rows: dict[str, dict[str, list[float]]] = {}

    def record(label: str, accuracy: float, errors: list[float]) -> None:
        row = rows.setdefault(label, {"accuracy": [], **{f"error_{n}": [] for n in names}})
        row["accuracy"].append(accuracy)
        for n, e in zip(names, errors, strict=True):
            row[f"error_{n}"].append(e)

    timing = {"leac": 0.0, "leac exact read noise": 0.0, "crosssim": 0.0}
    variants = [("leac", False)] + ([("leac exact read noise", True)] if "read" in scenario else [])
    for label, exact in variants if supported else []:
        for seed in runs:
            start = time.perf_counter()
            report = leac.simulate(program, (x.astype(np.float32), y), seed=seed, exact_read_noise=exact)
            timing[label] += time.perf_counter() - start
            record(label, report.accuracy, [report.layer_error[n] for n in names])
    worst_uS, write_check = None, None
    for seed in runs:
        np.random.seed(seed)  # CrossSim draws its noise from numpy's global generator
        start = time.perf_counter()
        cores = crosssim_cores(simulator, program, layers, device, scenario, setup)
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
        if not noisy:
            # the one systematic difference: how the two DACs round an input exactly between two codes
            outs = crosssim_run(cores, layers, leac_ties(x, float(program.layers[0].input_full_scale), setup.dac_bits))
            record("crosssim, DAC ties rounded as leac", float(np.mean(np.argmax(outs[-1], axis=1) == y)),
                   layer_errors(outs, ref))
    stats = {label: {metric: summary(values) for metric, values in row.items()} for label, row in rows.items()}
    compare = {}
    exact = 1e-4 if "ir-drop" in scenario else 1e-6  # CrossSim's line solve is iterative (converged to 1e-5)
    for label in stats:
        if label.startswith("leac"):
            for other in (o for o in stats if o.startswith("crosssim")):
                compare[f"{label} vs {other}"] = {
                    metric: agreement(stats[label][metric], stats[other][metric], exact) for metric in stats[other]}
    return {"scenario": scenario, "seeds": runs, "layers": names, "results": stats, "agreement": compare,
            "leac_simulates_it": supported, "line_ohm": setup.line_ohm if "ir-drop" in scenario else None,
            "crosssim_leads_ohm": {layer.name: leads(program, i, setup) for i, layer in enumerate(program.layers)}
            if "ir-drop" in scenario else None,
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
    if result["line_ohm"] is not None:
        leads_text = "; ".join(f"{n} G+ {a[0][0]:g}/{a[0][1]:g}, G- {a[1][0]:g}/{a[1][1]:g}"
                               for n, a in result["crosssim_leads_ohm"].items())
        lines.append(f"    lines {result['line_ohm']:g} ohm per segment; CrossSim terminal row/col ohm (leac's "
                     f"leads beyond one segment): {leads_text}")
        if not result["leac_simulates_it"]:
            lines.append("    leac: this leac has no line resistance (its chip format refuses periphery.lines); "
                         "CrossSim's numbers only")
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
    parser.add_argument("--line-ohm", type=float, default=None,
                        help="word and bit line resistance per segment (ohm): adds the IR-drop scenarios")
    parser.add_argument("--crosssim-commit", default=None,
                        help="the CrossSim commit installed, to record (git -C CROSSSIM_SRC rev-parse HEAD)")
    parser.add_argument("--leac-commit", default=None,
                        help="the leac commit on the path, to record (git rev-parse HEAD)")
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
    if args.line_ohm is not None and args.scenarios == parser.get_default("scenarios"):
        scenarios += list(IR_SCENARIOS)
    if any("ir-drop" in s for s in scenarios) and not (args.line_ohm and args.line_ohm > 0):
        parser.error("the IR-drop scenarios need --line-ohm R (R > 0)")
    setup = Setup(args.dac_bits, args.adc_bits, args.line_ohm)
    out = {"benchmark": "crosssim", "model": "examples/data/digits_mlp_float.onnx (64-150-10, ReLU)",
           "data": f"examples/data/digits_test.npz ({len(y)} samples)", "software_accuracy": software,
           "crosssim": crosssim_version(args.crosssim_commit),
           "leac": {"version": lea_compiler.__version__, "path": str(Path(lea_compiler.__file__).parent),
                    "commit": args.leac_commit or "not given (--leac-commit)"},
           "python": platform.python_version(), "numpy": np.__version__,
           "settings": {"dac_bits": args.dac_bits, "adc_bits": args.adc_bits, "v_read_V": V_READ, "k": 1,
                        "line_ohm_per_segment": args.line_ohm,
                        "array": f"{ARRAY} x {ARRAY}", "leac_compile": "--encoding simple --scale per-layer "
                        "--compensate none --calibrate examples/data/digits_calib.npz -k 1 --placer greedy"},
           "devices": {}}
    lines = [f"leac {lea_compiler.__version__} (commit {out['leac']['commit']}) vs CrossSim "
             f"{out['crosssim']['version']} (commit {out['crosssim']['commit']}), digits MLP float, {len(y)} test "
             f"samples, software accuracy {100 * software:.2f}%, DAC {args.dac_bits} bits, ADC {args.adc_bits} "
             "bits, k = 1",
             "mean +- sd over seeds; err = relative RMS error of the layer's output against the float network"]
    if any("ir-drop" in s for s in scenarios):
        out["line_solver_check"] = check_line_solver(simulator)
        errors = out["line_solver_check"]["max_relative_difference"]
        lines.append(f"CrossSim's line solver against a dense nodal solve (3 x 4, terminal resistances): "
                     f"{errors['parameters']:.1e} with its Rp_row_terminal / Rp_col_terminal parameters, "
                     f"{errors['set directly']:.1e} with the resistances set as this benchmark sets them")
    for key in devices:
        device = DEVICES[key]
        entry = {"device": device.__dict__ | {"levels_uS": device.levels_uS}, "scenarios": []}
        lines.append(f"\n{device.name}: write sigma {device.write_noise_uS} uS, read noise +-{device.read_noise_uS} uS")
        for scenario in scenarios:
            result = run_scenario(simulator, device, scenario, seeds, x, y, layers, ref, setup)
            entry["scenarios"].append(result)
            lines += table(result)
            print("\n".join(table(result)), flush=True)
        out["devices"][key] = entry
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    Path(args.out).with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
