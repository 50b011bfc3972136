"""`-k auto --budget`: every layer's copy count chosen to keep the model's outputs close within a device budget.

The predictor measures, for each crossbar layer and each candidate count k, what happens to the model's outputs
on the calibration data when only that layer carries what k copies leave of the weights: the joint quantization
of k copies (`passes.quantize.quantize_matrix` with `copies=k`, their mean on ideal devices) plus the chip's
programming and read noise averaged over k copies, Gaussian with one pair's variance (`pair_noise_variance`)
divided by k, in weight units (per column, divided by the scale). It records two numbers, each the mean over
`TRIALS` seeded draws and made non-increasing in k (more copies are never worse):

- e_l(k), the relative squared error of the model's float outputs (sum over samples of |y - y_ref|^2 over
  sum |y_ref|^2), which the allocation minimises: it is continuous, so every copy's effect shows, and errors
  from independent layers add to first order;
- d_l(k), the fraction of samples whose top-1 answer changes, from which the predicted agreement with the
  software answers, prod_l (1 - d_l(k_l)), is reported.

Stuck devices are not in the predictor: placement, joint encoding and compensation handle them, and what they
cost depends on where the copies land (docs/cli.md says what this means for chips with many stuck devices).

The allocation minimises sum_l e_l(k_l) subject to sum_l devices_l(k_l) <= budget, one k per layer: a
multiple-choice knapsack, solved exactly with CP-SAT (`allocate`); among equal errors, the fewest devices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lea_compiler import interpreter
from lea_compiler.datasets import top1
from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.ir import Graph, Node
from lea_compiler.passes.quantize import crossbar_matrix, pair_noise_variance, quantize_matrix

DEFAULT_SHARE = 0.9
"""The budget without --budget: this share of the chip's devices, leaving room for the blocks' packing."""
MAX_AUTO_K = 12
"""Most copies `-k auto` gives one layer."""
TRIALS = 2
"""Noise draws per (layer, k) the disagreement is averaged over."""
MAX_SAMPLES = 512
"""Calibration samples the predictor runs (a seeded subsample beyond)."""
_DIGITS = re.compile(r"[0-9]+")
SCALE = 10**9
"""Output errors are integers in billionths in the CP-SAT model."""
MAX_ERROR = 100.0
"""An output error beyond this (a layer that ruins the outputs) counts as this, so the model's integers fit."""


@dataclass(frozen=True)
class Prediction:
    """Per crossbar layer, for k = 1 .. its largest count: the output error e(k) and the disagreement d(k)."""

    error: dict[str, list[float]]
    disagreement: dict[str, list[float]]


@dataclass(frozen=True)
class Allocation:
    """The counts chosen, what they cost and what the predictor expects of them."""

    counts: dict[str, int]
    devices: int
    budget: int
    prediction: Prediction
    predicted_error: float
    predicted_agreement: float
    status: str

    def spec(self) -> str:
        """The counts as a `-k` spec."""
        return ",".join(f"{name}={count}" for name, count in sorted(self.counts.items()))

    def to_json(self) -> dict[str, object]:
        return {"counts": dict(self.counts), "devices": self.devices, "budget": self.budget,
                "predicted_error": self.predicted_error, "predicted_agreement": self.predicted_agreement,
                "status": self.status,
                "error": {name: list(values) for name, values in self.prediction.error.items()},
                "disagreement": {name: list(values) for name, values in self.prediction.disagreement.items()}}


def parse_budget(text: str | int | None, chip_devices: int) -> int:
    """`--budget` as devices: a count, or a percentage of the chip's devices (`50%`); None: `DEFAULT_SHARE` of the
    chip (blocks never pack an array completely, so a budget of the whole chip would not place).

    Raises:
        UsageError: not a positive count or a percentage in (0, 100].
    """
    if text is None:
        return int(chip_devices * DEFAULT_SHARE)
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 1:
            raise UsageError(f"--budget must be a positive number of devices or a percentage, got {text}")
        return text
    value = str(text).strip()
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", value):
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise UsageError(f"--budget {value}: a percentage of the chip's devices must be in (0, 100]")
        return max(1, int(chip_devices * percent / 100))
    if _DIGITS.fullmatch(value) and int(value) >= 1:
        return int(value)
    raise UsageError(f"--budget takes a number of devices or a percentage of the chip (e.g. 12000 or 50%), "
                     f"got {text!r}")


def predict(graph: Graph, x: np.ndarray, *, levels_uS: Sequence[float], encoding: str, per_layer: bool,
            bias_row: bool, write_noise_uS: float, read_noise_uS: float, reads: int, max_k: Mapping[str, int],
            seed: int = 0, output: str | None = None, noise_uS2: float = 0.0) -> Prediction:
    """Per crossbar layer, e(k) and d(k) for k = 1 .. max_k[layer] (module docstring). `graph` is canonical;
    `noise_uS2` is what the quantize pass's scale accounts for (`--scale-noise chip`), so the scales match."""
    rng = np.random.default_rng(seed)
    if len(x) > MAX_SAMPLES:
        x = x[np.sort(rng.choice(len(x), MAX_SAMPLES, replace=False))]
    feed = graph.inputs[0].name
    reference_outputs = interpreter.run(graph, {feed: x})
    reference = top1(reference_outputs, output)
    ref_float = _float_outputs(graph, reference_outputs)
    power = float(np.sum(ref_float**2)) or 1.0
    variance = pair_noise_variance(write_noise_uS, read_noise_uS, reads)
    errors: dict[str, list[float]] = {}
    changes: dict[str, list[float]] = {}
    for node in graph.nodes_of("MVM"):
        layer_bias_row = bias_row and node.input(2) is not None
        matrix = crossbar_matrix(node, layer_bias_row)
        error, changed = [], []
        for k in range(1, max_k[node.name] + 1):
            quantized = quantize_matrix(matrix, tuple(levels_uS), encoding, per_layer, layer_bias_row, copies=k,
                                        noise_uS2=noise_uS2)
            held = quantized.dequantized()
            sigma = np.sqrt(variance / k) / np.asarray(quantized.scale, dtype=np.float64)
            squared = flipped = 0.0
            for _ in range(TRIALS):
                noisy = held + rng.standard_normal(held.shape) * sigma
                kernel = _perturbed(node, noisy, layer_bias_row)
                outputs = interpreter.run(graph, {feed: x}, kernels={node.name: kernel})
                squared += float(np.sum((_float_outputs(graph, outputs) - ref_float) ** 2)) / power
                flipped += float(np.mean(top1(outputs, output) != reference))
            error.append(min(squared / TRIALS, MAX_ERROR))
            changed.append(flipped / TRIALS)
        errors[node.name] = list(np.minimum.accumulate(error))  # more copies are never worse
        changes[node.name] = list(np.minimum.accumulate(changed))
    return Prediction(errors, changes)


def _float_outputs(graph: Graph, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The graph's float outputs, flattened and joined (float64)."""
    parts = [np.asarray(outputs[v.name], dtype=np.float64).ravel() for v in graph.outputs
             if np.asarray(outputs[v.name]).dtype.kind == "f"]
    return np.concatenate(parts) if parts else np.zeros(0)


def _perturbed(node: Node, matrix: np.ndarray, bias_row: bool) -> interpreter.Kernel:
    """An MVM kernel computing x W' (+ b) with the crossbar matrix `matrix` (its last row the bias with a bias
    row), in the input's dtype."""
    weight, bias = (matrix[:-1], matrix[-1]) if bias_row else (matrix, None)
    if not bias_row and node.input(2) is not None and node.input(2).const is not None:  # type: ignore[union-attr]
        bias = np.asarray(node.input(2).const, dtype=np.float64)  # type: ignore[union-attr]

    groups = int(node.attr("groups", 1))

    def kernel(_: Node, inputs: list[interpreter.Array | None]) -> list[interpreter.Array]:
        x = inputs[0]
        assert x is not None
        y = interpreter.own_group_columns(np.asarray(x, dtype=np.float64) @ weight, groups)
        if bias is not None:
            y = y + bias
        return [y.astype(np.asarray(x).dtype)]

    return kernel


def allocate(prediction: Prediction, devices_per_copy: Mapping[str, int], budget: int, *,
             time_limit_s: float = 10.0) -> Allocation:
    """The counts minimising the summed output error within `budget` devices (then the fewest devices), exactly
    (CP-SAT, a multiple-choice knapsack over the prediction's counts).

    Raises:
        DoesNotFitError: not even one copy of every layer fits the budget.
        CompileError: the solver found no allocation in its time.
    """
    from ortools.sat.python import cp_model  # imported here: importing leac must not load the solver

    table = prediction.error
    names = list(table)
    minimum = sum(devices_per_copy[name] for name in names)
    if minimum > budget:
        raise DoesNotFitError(f"the budget of {budget} devices holds not even one copy of every layer ({minimum} "
                              "devices)")
    model = cp_model.CpModel()
    choice = {(name, k): model.new_bool_var(f"{name}@{k}") for name in names for k in range(1, len(table[name]) + 1)}
    for name in names:
        model.add_exactly_one(choice[(name, k)] for k in range(1, len(table[name]) + 1))
    cost = {key: devices_per_copy[key[0]] * key[1] for key in choice}
    devices = sum(cost[key] * var for key, var in choice.items())
    model.add(devices <= budget)
    error = {key: int(round(table[key[0]][key[1] - 1] * SCALE)) for key in choice}
    total_error = sum(error[key] * var for key, var in choice.items())
    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = time_limit_s
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    model.minimize(total_error)  # first the least error, then (with it fixed) the fewest devices
    status = solver.solve(model)
    if status == cp_model.OPTIMAL:
        model.add(total_error == int(solver.objective_value))
        model.minimize(devices)
        status = solver.solve(model)
    counts = {name: next(k for k in range(1, len(table[name]) + 1) if solver.value(choice[(name, k)]))
              for name in names}
    agreement = float(np.prod([1.0 - prediction.disagreement[name][counts[name] - 1] for name in names]))
    predicted = float(sum(table[name][counts[name] - 1] for name in names))
    return Allocation(counts, sum(devices_per_copy[n] * counts[n] for n in names), budget, prediction, predicted,
                      agreement, solver.status_name(status))
