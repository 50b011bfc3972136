"""`-k auto --budget`: every layer's copy count chosen, within a device budget, to keep the model's answers those
of the software.

The predictor measures, on the chip, what each crossbar layer's count does to the model (`measure`). It starts
from the baseline, the uniform count the budget holds. For each layer and a set of counts (`GRID`, the
baseline's neighbours, the most the budget allows the layer) it compiles the model with that layer at that count
and every other at the baseline (a probe: the greedy placer, the compile's own calibration), so the copies are
quantized jointly, placed on the chip's least-defective regions, encoded around their stuck devices and
compensated as the final compile does them. It runs the calibration data (at most `MAX_SAMPLES`) through the
probe with every layer on the simulated chip (`backends.sim.run_on_chip`: stuck devices, programming and read
noise, DAC and ADC with the calibrated ranges), `TRIALS` seeded draws, the same seeds for every probe (and each
layer its own, so a change in one layer's count leaves the others' draws alone). It records, per layer and
count:

- D_l(k), the fraction of samples whose top-1 answer differs from the software's, which the allocation
  minimises (what accuracy follows);
- E_l(k), the relative squared error of the model's float outputs (sum over samples of |y - y_ref|^2 over
  sum |y_ref|^2), which breaks ties in D.

Each layer's measurements are fitted with a + b/k + c/k^2, b, c >= 0 (`fit_inverse_k`): smooth, never rising
with k, and defined at the counts not measured. A choice of counts is predicted as the baseline plus each
layer's change from it (`Prediction.at`).

The allocation (`allocate`) minimises the predicted D subject to sum_l devices_l(k_l) <= budget, then E, then
the devices, one k per layer: a multiple-choice knapsack, solved exactly with CP-SAT, one objective after the
other. It keeps the baseline's uniform counts unless the best choice promises fewer changed answers by more
than `Prediction.margin` (`MARGIN` standard errors of a measured change): a gain within the noise of the draws
is no reason to leave the configuration that was measured whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lea_compiler import interpreter
from lea_compiler.backends.sim import run_on_chip
from lea_compiler.datasets import top1
from lea_compiler.errors import BadDataError, CompileError, DoesNotFitError
from lea_compiler.ir import Graph
from lea_compiler.layer_sizes import canonical as canonical_counts

if TYPE_CHECKING:
    from lea_compiler.program import Program

MAX_AUTO_K = 12
"""Most copies `-k auto` gives one layer."""
TRIALS = 8
"""Noise draws per (layer, k) the errors are averaged over."""
MARGIN = 2.0
"""Standard errors of a measured change in disagreement (RMS over the measured counts) other counts must gain
to be chosen over the baseline."""
MAX_SAMPLES = 512
"""Calibration samples the predictor runs (a seeded subsample beyond)."""
SCALE = 10**9
"""Output errors are integers in billionths in the CP-SAT model."""
MAX_ERROR = 100.0
"""An output error beyond this (a layer that ruins the outputs) counts as this, so the model's integers fit."""


@dataclass(frozen=True)
class Prediction:
    """Per crossbar layer, for k = 1 .. its largest count: the output error E_l(k) and the disagreement D_l(k)
    of the model with that layer at k copies and every other at `baseline`; and both at the baseline."""

    error: dict[str, list[float]]
    disagreement: dict[str, list[float]]
    baseline: int = 1
    baseline_error: float = 0.0
    baseline_disagreement: float = 0.0
    margin: float = 0.0
    """How much less predicted disagreement other counts must promise for the allocation to leave the baseline."""

    def at(self, counts: Mapping[str, int]) -> tuple[float, float]:
        """The predicted (error, disagreement) of `counts`: the baseline's, plus each layer's change from it."""
        error, changed = self.baseline_error, self.baseline_disagreement
        for name, count in counts.items():
            error += self.error[name][count - 1] - self.error[name][min(self.baseline, len(self.error[name])) - 1]
            changed += (self.disagreement[name][count - 1]
                        - self.disagreement[name][min(self.baseline, len(self.disagreement[name])) - 1])
        return max(error, 0.0), min(max(changed, 0.0), 1.0)


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
                "status": self.status, "baseline": self.prediction.baseline, "margin": self.prediction.margin,
                "error": {name: list(values) for name, values in self.prediction.error.items()},
                "disagreement": {name: list(values) for name, values in self.prediction.disagreement.items()}}


Probe = Callable[[Mapping[str, int]], "Program"]
"""Compiles the model with the given copy count per crossbar layer for the chip (a DoesNotFitError when the
copies do not place)."""
GRID = (1, 2, 3, 4, 6, 8, 12)
"""The counts measured for every layer (with the baseline and its neighbours); the others come from the fit."""


def measure(probe: Probe, graph: Graph, x: np.ndarray, most: Mapping[str, int], devices_per_copy: Mapping[str, int],
            budget: int, *, seed: int = 0, output: str | None = None,
            on_probe: Callable[[str, float], None] | None = None) -> Prediction:
    """Every layer's E_l(k) and D_l(k) for k = 1 .. most[layer], measured on the chip around the baseline (module
    docstring). `graph` is the canonical float graph the errors are measured against; a layer whose copies do
    not place at some k gets no larger k.

    Raises:
        DoesNotFitError: one copy of every layer does not place on the chip.
    """
    rng = np.random.default_rng(seed)
    if len(x) > MAX_SAMPLES:
        x = x[np.sort(rng.choice(len(x), MAX_SAMPLES, replace=False))]
    reference_outputs = interpreter.run(graph, {graph.inputs[0].name: x})
    reference = top1(reference_outputs, output)
    ref_float = _float_outputs(graph, reference_outputs)
    power = float(np.sum(ref_float**2)) or 1.0
    names = list(most)

    def measured(counts: dict[str, int]) -> tuple[float, float, np.ndarray] | None:
        """(E, D, D of each draw) of the model compiled with `counts`, every layer on the chip; None: the copies
        do not place."""
        start = time.perf_counter()
        try:
            program = probe(counts)
        except DoesNotFitError:
            return None
        squared, flipped = np.zeros(TRIALS), np.zeros(TRIALS)
        for trial in range(TRIALS):  # the same seeds for every probe: the differences between counts show
            outputs = run_on_chip(program, x, names, seed=seed + trial)
            squared[trial] = float(np.sum((_float_outputs(graph, outputs) - ref_float) ** 2)) / power
            flipped[trial] = float(np.mean(top1(outputs, output) != reference))
        if on_probe is not None:
            on_probe(f"-k auto: measured {canonical_counts(counts)}", time.perf_counter() - start)
        if not (np.all(np.isfinite(squared)) and np.all(np.isfinite(flipped))):
            raise BadDataError("-k auto: the calibration data drives the model's outputs to infinity or NaN on the "
                               "chip, so the counts cannot be measured; scale the data down")
        return min(float(squared.mean()), MAX_ERROR), float(flipped.mean()), flipped

    baseline = max(1, min(MAX_AUTO_K, budget // max(1, sum(devices_per_copy.values())), *most.values()))
    while (base := measured(dict.fromkeys(names, baseline))) is None:  # the uniform counts the budget holds
        if baseline == 1:
            raise DoesNotFitError("-k auto: one copy of every layer does not place on the chip")
        baseline -= 1
    errors: dict[str, list[float]] = {}
    changes: dict[str, list[float]] = {}
    spreads: list[float] = []
    for name in names:
        points: dict[int, tuple[float, float, np.ndarray]] = {baseline: base}
        largest = most[name]
        wanted = sorted({*GRID, baseline - 1, baseline + 1, largest} - {baseline})
        for k in (k for k in wanted if 1 <= k <= most[name]):
            result = measured({**dict.fromkeys(names, baseline), name: k})
            if result is None:
                if k > baseline:  # more copies of this layer do not place either
                    largest = max(points)
                    break
                continue
            points[k] = result
            # the change from the baseline, draw by draw (the same seeds): how precisely a change is measured
            spreads.append(float(np.std(result[2] - base[2], ddof=1)) / np.sqrt(TRIALS) if TRIALS > 1 else 0.0)
        counts = np.array(sorted(points), dtype=np.float64)
        errors[name] = list(fit_inverse_k(counts, np.array([points[int(k)][0] for k in counts]), largest))
        changes[name] = list(fit_inverse_k(counts, np.array([points[int(k)][1] for k in counts]), largest))
    margin = MARGIN * float(np.sqrt(np.mean(np.square(spreads)))) if spreads else 0.0
    return Prediction(errors, changes, baseline, base[0], base[1], margin)


def fit_inverse_k(k: np.ndarray, values: np.ndarray, largest: int) -> np.ndarray:
    """a + b/k + c/k^2 fitted to `values` measured at the counts `k` (least squares, b, c >= 0: averaging k
    copies divides independent errors by k, an error one copy in k holds by k^2), at k = 1 .. `largest`: a
    smooth non-increasing curve through noisy measurements."""
    basis = np.stack([np.ones_like(k), 1.0 / k, 1.0 / k**2], axis=1)
    best: tuple[float, np.ndarray] | None = None
    for columns in ([0], [0, 1], [0, 2], [0, 1, 2]):
        if len(columns) > len(k):
            continue
        coefficients, *_ = np.linalg.lstsq(basis[:, columns], values, rcond=None)
        if np.any(coefficients[1:] < 0):
            continue  # outside b, c >= 0: a smaller set of terms covers that boundary
        residual = float(np.sum((basis[:, columns] @ coefficients - values) ** 2))
        if best is None or residual < best[0] - 1e-15:
            full = np.zeros(3)
            full[columns] = coefficients
            best = (residual, full)
    assert best is not None  # the constant alone always qualifies
    at = np.arange(1, largest + 1, dtype=np.float64)
    return np.maximum(best[1][0] + best[1][1] / at + best[1][2] / at**2, 0.0)


def _float_outputs(graph: Graph, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The graph's float outputs, flattened and joined (float64)."""
    parts = [np.asarray(outputs[v.name], dtype=np.float64).ravel() for v in graph.outputs
             if np.asarray(outputs[v.name]).dtype.kind == "f"]
    return np.concatenate(parts) if parts else np.zeros(0)


def allocate(prediction: Prediction, devices_per_copy: Mapping[str, int], budget: int, *,
             time_limit_s: float = 10.0) -> Allocation:
    """The counts with the least predicted disagreement within `budget` devices, then the least output error,
    then the fewest devices, exactly (CP-SAT, a multiple-choice knapsack over the prediction's counts, solved
    for each objective in turn with the ones before it fixed); the baseline's uniform counts instead when the
    budget holds them and the best counts promise less than `prediction.margin` fewer changed answers.

    Raises:
        DoesNotFitError: not even one copy of every layer fits the budget.
        CompileError: the solver found no counts in its time.
    """
    from ortools.sat.python import cp_model  # imported here: importing leac must not load the solver

    names = list(prediction.error)
    largest = {name: len(prediction.error[name]) for name in names}
    minimum = sum(devices_per_copy[name] for name in names)
    if minimum > budget:
        raise DoesNotFitError(f"the budget of {budget} devices holds not even one copy of every layer ({minimum} "
                              "devices)")
    model = cp_model.CpModel()
    choice = {(name, k): model.new_bool_var(f"{name}@{k}") for name in names for k in range(1, largest[name] + 1)}
    for name in names:
        model.add_exactly_one(choice[(name, k)] for k in range(1, largest[name] + 1))
    devices = sum(devices_per_copy[name] * k * var for (name, k), var in choice.items())
    model.add(devices <= budget)
    objectives = [sum(int(round(min(table[name][k - 1], MAX_ERROR) * SCALE)) * var for (name, k), var in choice.items())
                  for table in (prediction.disagreement, prediction.error)]
    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = time_limit_s
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = cp_model.UNKNOWN
    for objective in (*objectives, devices):
        model.minimize(objective)
        status = solver.solve(model)
        if status == cp_model.FEASIBLE:
            break  # the best found in the time: kept, the later objectives unsolved
        if status != cp_model.OPTIMAL:
            raise CompileError("-k auto: the allocation solver found no counts in its time "
                               f"({solver.status_name(status)}); give the counts with -k, or a larger --time-limit")
        model.add(objective == int(solver.objective_value))  # kept while the next objective is minimised
    counts = {name: next(k for k in range(1, largest[name] + 1) if solver.value(choice[(name, k)]))
              for name in names}
    uniform = dict.fromkeys(names, prediction.baseline)
    if (sum(devices_per_copy[n] * prediction.baseline for n in names) <= budget
            and all(prediction.baseline <= largest[n] for n in names)
            and prediction.at(counts)[1] > prediction.at(uniform)[1] - prediction.margin):
        counts = uniform  # the gain is within the measurements' noise: the measured baseline is the safer choice
    predicted, changed = prediction.at(counts)
    return Allocation(counts, sum(devices_per_copy[n] * counts[n] for n in names), budget, prediction, predicted,
                      1.0 - changed, solver.status_name(status))
