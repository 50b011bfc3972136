"""Multi-task Yin-Yang: the LEA paper's hardware experiment as a reproducible example.

Yousuf et al. (layer ensemble averaging, arXiv 2404.15621) run a 4-12-6-3 tanh
MLP with ternary weights on their memristor chip. It is trained on the Yin-Yang
data set (task 1) and then on a shifted copy of it (task 2) with elastic weight
consolidation (EWC); the figure of merit is the mean test accuracy over both
tasks, 72% in software. This script rebuilds that network with numpy only (no
torch) and exports it to ONNX for leac.

Reproduce every bundled file with one command::

    python examples/yinyang.py --seed 0 --out lea_compiler/data

The run is deterministic: the same seed and the same defaults regenerate
``yinyang_mlp.onnx``, ``yinyang_mlp_float.onnx``, ``yinyang_task1_test.npz``,
``yinyang_task2_test.npz`` and ``yinyang_mlp.json`` byte for byte (checked by
sha256 over two runs; the script prints each file's sha256). Training runs in
float64 numpy; bit-identity across machines with a different BLAS or CPU is
likely but not guaranteed, identity on one machine is.

Data (``make_yinyang``). Kriener et al. 2021, "The Yin-Yang dataset", reference
``YinYangDataset``: for each sample a goal class is drawn uniformly from
{0, 1, 2}, then points are drawn uniformly in the square [0, 2 r_big]^2 and
rejected until one lies in the circle of radius r_big = 0.5 around
(0.5, 0.5) *and* has the goal class (rejection sampling, so the classes are
balanced in expectation). Classes, with d_left, d_right the distances to the
dot centres (0.25, 0.5) and (0.75, 0.5) and r_small = 0.1:

* 2 (dots): d_right < r_small or d_left < r_small;
* 1: d_right <= r_small, or r_small < d_left <= r_big / 2, or
  (y > r_big and d_right > r_big / 2), i.e. the reference's ``is_yin``;
* 0: everything else in the circle.

(The reference lists ``class_names = ['yin', 'yang', 'dot']`` but returns
``int(is_yin)``, so its index-0 name does not match its geometry; we keep the
reference's numbers and call 0/1 "the two halves".) The draws use
``np.random.RandomState(seed)`` in the reference's order, so task 1 equals
the reference's ``YinYangDataset(size=n, seed=seed)`` sample for sample (up
to our float32 cast; checked against a transcription of the reference).
Features: task 1 (x, y, 1-x, 1-y); task 2 (x+1, y+1, 1-x, 1-y), as in the LEA
authors' code (their ``offset=1``). A seed gives the same points for both
tasks; only the features differ (the authors also used the same seeds for
both tasks).

Training. Inputs 4, hidden 12 and 6 with tanh, 3 logits; all layers have
biases; weights and biases start U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Mean softmax cross-entropy, Adam (beta 0.9/0.999), mini-batches of 50,
100 epochs per task over 5000 training points, step size 1e-3 decayed by a
cosine to 2e-5 within each task, Adam state restarted per task; the
mini-batch order and the initialisation come from the seed. Task 1 is
trained first; then the diagonal empirical Fisher
F = mean_i (d log p(y_i | x_i) / d theta)^2 is computed over all task-1
training points at the task-1 optimum theta*, and task 2 is trained on
CE_2 + (lambda / 2) * sum F (theta - theta*)^2 with lambda = 10. With a
per-sample mean Fisher and a mean loss, lambda = 1 is the Laplace
approximation of weighting both tasks equally; larger lambda favours
task 1. lambda (from {3, 5, 10, 20, 30}), batch size, epochs, step size,
threshold and the schedule were picked on the mean ternary accuracy over
seeds 1-3 (a first coarse sweep also looked at seed 0).

Ternary weights: each weight matrix W (a float "shadow" weight) is used in
the forward pass as s * t with t in {-1, 0, +1}: t = sign(W) where
|W| > delta, delta = 0.7 * mean|W| (TWN, Li et al. 2016), else 0, and
s = mean |W| over the non-zero entries (per layer). Gradients pass straight
through (d loss / d W := d loss / d (s t)); the Fisher and EWC anchor are
taken at the ternary forward pass, the penalty is on the shadow weights.
Biases stay float (leac programs them on a bias row). A float network is
trained the same way without quantisation and exported as
``yinyang_mlp_float.onnx``.

Outputs (in ``--out``): the two ONNX models (input "x" float32
["batch", 4] -> Gemm fc1 -> Tanh -> Gemm fc2 -> Tanh -> Gemm fc3 -> "logits"
float32 ["batch", 3]; argmax of the logits is the class), the two test sets
(``np.savez``, keys ``x`` float32 (N, 4), ``y`` int64 (N,)), and a JSON file
with the seed, settings, accuracies and ternary scales. Accuracies are
checked to agree between the numpy float32 forward pass and onnxruntime.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

R_BIG = 0.5
R_SMALL = 0.1
LAYER_SIZES = (4, 12, 6, 3)
LAYER_NAMES = ("fc1", "fc2", "fc3")
TERNARY_THRESHOLD = 0.7
"""TWN threshold factor: delta = TERNARY_THRESHOLD * mean|W|."""

OPSET = 17
IR_VERSION = 8

Weights = list[np.ndarray]
"""Per layer (out, in), the Gemm transB=1 layout: y = x @ W.T + b."""
Biases = list[np.ndarray]


# ---------------------------------------------------------------- data


def yinyang_class(x: float, y: float, r_big: float = R_BIG, r_small: float = R_SMALL) -> int:
    """Class of point (x, y) of the Yin-Yang sign, as the reference ``which_class``.

    Args:
        x: First coordinate, in [0, 2 r_big].
        y: Second coordinate, in [0, 2 r_big].
        r_big: Radius of the sign (centre (r_big, r_big)).
        r_small: Radius of the two dots.

    Returns:
        2 for the dots, 1 for the reference's ``is_yin`` half, 0 for the other half.
    """
    d_right = float(np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2))
    d_left = float(np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2))
    if d_right < r_small or d_left < r_small:
        return 2
    is_yin = (
        d_right <= r_small
        or r_small < d_left <= 0.5 * r_big
        or (y > r_big and d_right > 0.5 * r_big)
    )
    return int(is_yin)


def make_yinyang(n: int, seed: int, task: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Yin-Yang sample (Kriener et al. 2021) with task-1 or task-2 features.

    Args:
        n: Number of points.
        seed: Seed of the ``np.random.RandomState`` driving the rejection sampler.
        task: 1 for features (x, y, 1-x, 1-y), 2 for (x+1, y+1, 1-x, 1-y).

    Returns:
        ``(features, labels)``: float32 (n, 4) and int64 (n,) in {0, 1, 2}.

    Raises:
        ValueError: If ``task`` is not 1 or 2, or ``n`` is negative.
    """
    if task not in (1, 2):
        raise ValueError(f"task must be 1 or 2, got {task}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.RandomState(seed)
    points = np.empty((n, 2), dtype=np.float64)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * R_BIG
            if np.sqrt((x - R_BIG) ** 2 + (y - R_BIG) ** 2) > R_BIG:
                continue
            c = yinyang_class(x, y)
            if c == goal:
                break
        points[i] = (x, y)
        labels[i] = c
    x, y = points[:, 0], points[:, 1]
    offset = 0.0 if task == 1 else 1.0
    features = np.stack([x + offset, y + offset, 1.0 - x, 1.0 - y], axis=1)
    return features.astype(np.float32), labels


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults produce the bundled files."""

    n_train: int = 5000
    n_test: int = 1000
    epochs: int = 100
    batch_size: int = 50
    lr: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    ewc_lambda: float = 10.0
    lr_final: float = 0.02
    """Cosine decay of the step size within each task, from lr to lr * lr_final."""
    ternary_threshold: float = TERNARY_THRESHOLD


def init_params(rng: np.random.Generator) -> tuple[Weights, Biases]:
    """PyTorch-Linear-style init: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    weights: Weights = []
    biases: Biases = []
    for fan_in, fan_out in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:], strict=True):
        bound = 1.0 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)))
        biases.append(rng.uniform(-bound, bound, size=fan_out))
    return weights, biases


def ternarize(w: np.ndarray, threshold: float = TERNARY_THRESHOLD) -> tuple[np.ndarray, float]:
    """TWN ternarisation: ``(t, s)`` with t in {-1, 0, +1} (int8) and w ~ s * t.

    delta = threshold * mean|w| (TWN uses 0.7); t = sign(w) where |w| > delta else 0;
    s = mean|w| over the entries with t != 0.
    """
    a = np.abs(w)
    mask = a > threshold * a.mean()
    if not mask.any():
        raise ValueError("cannot ternarise an all-zero weight matrix")
    t = (np.sign(w) * mask).astype(np.int8)
    return t, float(a[mask].mean())


def ternary_weights(weights: Weights, threshold: float = TERNARY_THRESHOLD) -> Weights:
    """Effective weights s * t of each layer (float64)."""
    out = []
    for w in weights:
        t, s = ternarize(w, threshold)
        out.append(s * t.astype(np.float64))
    return out


def forward(weights: Weights, biases: Biases, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the input of every layer (x, h1, h2)."""
    acts = [x]
    h = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = h @ w.T + b
        if i < len(weights) - 1:
            h = np.tanh(z)
            acts.append(h)
        else:
            h = z
    return h, acts


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def deltas(weights: Weights, acts: list[np.ndarray], d_logits: np.ndarray) -> list[np.ndarray]:
    """Back-propagated d loss / d z of every layer, per sample (z = pre-activation)."""
    ds = [d_logits]
    d = d_logits
    for i in range(len(weights) - 1, 0, -1):
        d = (d @ weights[i]) * (1.0 - acts[i] ** 2)
        ds.append(d)
    return ds[::-1]


def grads(
    weights: Weights, biases: Biases, x: np.ndarray, y: np.ndarray
) -> tuple[float, Weights, Biases]:
    """Mean softmax cross-entropy and its gradients."""
    logits, acts = forward(weights, biases, x)
    p = softmax(logits)
    n = x.shape[0]
    loss = float(-np.mean(np.log(p[np.arange(n), y] + 1e-12)))
    d_logits = p.copy()
    d_logits[np.arange(n), y] -= 1.0
    d_logits /= n
    ds = deltas(weights, acts, d_logits)
    g_w = [d.T @ a for d, a in zip(ds, acts, strict=True)]
    g_b = [d.sum(axis=0) for d in ds]
    return loss, g_w, g_b


def fisher_diagonal(
    weights: Weights, biases: Biases, x: np.ndarray, y: np.ndarray
) -> tuple[Weights, Biases]:
    """Empirical diagonal Fisher: mean over samples of the squared per-sample gradient.

    The per-sample gradient of layer l's weight is outer(delta_i, a_i), so its
    square is outer(delta_i^2, a_i^2) and the mean is (delta^2).T @ (a^2) / N.
    """
    logits, acts = forward(weights, biases, x)
    d_logits = softmax(logits)
    d_logits[np.arange(x.shape[0]), y] -= 1.0
    ds = deltas(weights, acts, d_logits)
    n = x.shape[0]
    f_w = [(d**2).T @ (a**2) / n for d, a in zip(ds, acts, strict=True)]
    f_b = [(d**2).mean(axis=0) for d in ds]
    return f_w, f_b


def accuracy(weights: Weights, biases: Biases, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of points whose logits argmax equals the label."""
    logits, _ = forward(weights, biases, x)
    return float(np.mean(np.argmax(logits, axis=1) == y))


@dataclass
class Ewc:
    """EWC anchor: Fisher diagonals and the task-1 parameters."""

    f_w: Weights
    f_b: Biases
    w_star: Weights
    b_star: Biases
    lam: float


def train_task(
    weights: Weights,
    biases: Biases,
    data: tuple[np.ndarray, np.ndarray],
    tests: dict[str, tuple[np.ndarray, np.ndarray]],
    cfg: TrainConfig,
    rng: np.random.Generator,
    *,
    ternary: bool,
    ewc: Ewc | None,
    tag: str,
) -> None:
    """Adam on mean cross-entropy (+ EWC penalty), updating weights/biases in place.

    With ``ternary`` the forward/backward pass uses the ternarised weights and the
    gradient is applied to the float shadow weights (straight-through estimator).
    """
    x, y = data
    params = weights + biases
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0
    n = x.shape[0]
    total_steps = cfg.epochs * -(-n // cfg.batch_size)
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            eff = ternary_weights(weights, cfg.ternary_threshold) if ternary else weights
            loss, g_w, g_b = grads(eff, biases, x[idx], y[idx])
            if ewc is not None:
                for i in range(len(weights)):
                    diff_w = weights[i] - ewc.w_star[i]
                    diff_b = biases[i] - ewc.b_star[i]
                    loss += (
                        0.5
                        * ewc.lam
                        * float(np.sum(ewc.f_w[i] * diff_w**2) + np.sum(ewc.f_b[i] * diff_b**2))
                    )
                    g_w[i] = g_w[i] + ewc.lam * ewc.f_w[i] * diff_w
                    g_b[i] = g_b[i] + ewc.lam * ewc.f_b[i] * diff_b
            total += loss * len(idx)
            step += 1
            b1, b2 = cfg.adam_beta1, cfg.adam_beta2
            decay = 0.5 * (1.0 + np.cos(np.pi * (step - 1) / total_steps))
            lr = cfg.lr * (cfg.lr_final + (1.0 - cfg.lr_final) * decay)
            for p, g, mi, vi in zip(params, g_w + g_b, m, v, strict=True):
                mi *= b1
                mi += (1.0 - b1) * g
                vi *= b2
                vi += (1.0 - b2) * g * g
                m_hat = mi / (1.0 - b1**step)
                v_hat = vi / (1.0 - b2**step)
                p -= lr * m_hat / (np.sqrt(v_hat) + cfg.adam_eps)
        eff = ternary_weights(weights, cfg.ternary_threshold) if ternary else weights
        accs = "  ".join(
            f"{name} acc {accuracy(eff, biases, tx, ty):.3f}" for name, (tx, ty) in tests.items()
        )
        print(f"[{tag}] epoch {epoch:3d}/{cfg.epochs}  loss {total / n:.4f}  {accs}", flush=True)


def train_multitask(
    cfg: TrainConfig,
    train_sets: list[tuple[np.ndarray, np.ndarray]],
    test_sets: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
    *,
    ternary: bool,
) -> tuple[Weights, Biases, dict[str, float]]:
    """Task 1, then Fisher, then task 2 with EWC.

    Args:
        cfg: Training settings.
        train_sets: Task-1 and task-2 training (features, labels).
        test_sets: Task-1 and task-2 test sets, only for the progress lines.
        seed: Run seed (initialisation and mini-batch order).
        ternary: Quantisation-aware training of ternary weights.

    Returns:
        Final (shadow) weights, biases and the test accuracies after task 1.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1 if ternary else 0]))
    weights, biases = init_params(rng)
    tests = {"task1": test_sets[0], "task2": test_sets[1]}
    kind = "ternary" if ternary else "float"
    train_task(
        weights,
        biases,
        train_sets[0],
        tests,
        cfg,
        rng,
        ternary=ternary,
        ewc=None,
        tag=f"{kind} task1",
    )
    eff = ternary_weights(weights, cfg.ternary_threshold) if ternary else weights
    after_task1 = {
        name: round(accuracy(eff, biases, tx, ty), 6) for name, (tx, ty) in tests.items()
    }
    ewc = None
    if cfg.ewc_lambda > 0:
        f_w, f_b = fisher_diagonal(eff, biases, *train_sets[0])
        ewc = Ewc(f_w, f_b, [w.copy() for w in weights], [b.copy() for b in biases], cfg.ewc_lambda)
    train_task(
        weights,
        biases,
        train_sets[1],
        tests,
        cfg,
        rng,
        ternary=ternary,
        ewc=ewc,
        tag=f"{kind} task2",
    )
    return weights, biases, after_task1


# ---------------------------------------------------------------- export


def to_onnx(weights: list[np.ndarray], biases: list[np.ndarray], doc: str) -> onnx.ModelProto:
    """fc1 -> tanh1 -> fc2 -> tanh2 -> fc3 as Gemm(transB=1)/Tanh, float32 initializers."""
    nodes = []
    inits = []
    prev = "x"
    for i, name in enumerate(LAYER_NAMES):
        w_name, b_name = f"{name}.weight", f"{name}.bias"
        inits.append(numpy_helper.from_array(weights[i].astype(np.float32), w_name))
        inits.append(numpy_helper.from_array(biases[i].astype(np.float32), b_name))
        out = "logits" if i == len(LAYER_NAMES) - 1 else f"{name}_out"
        nodes.append(helper.make_node("Gemm", [prev, w_name, b_name], [out], name=name, transB=1))
        prev = out
        if i < len(LAYER_NAMES) - 1:
            act = f"tanh{i + 1}"
            nodes.append(helper.make_node("Tanh", [prev], [f"{act}_out"], name=act))
            prev = f"{act}_out"
    graph = helper.make_graph(
        nodes,
        "yinyang_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", LAYER_SIZES[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", LAYER_SIZES[-1]])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="leac examples/yinyang.py",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def numpy_predict(weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """argmax of the float32 forward pass of the exported arrays."""
    h = x.astype(np.float32)
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w.astype(np.float32).T + b.astype(np.float32)
        if i < len(weights) - 1:
            h = np.tanh(h)
    return np.argmax(h, axis=1)


def ort_predict(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """argmax of onnxruntime's logits (single-threaded CPU session)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"x": x.astype(np.float32)})
    return np.argmax(logits, axis=1)


def checked_accuracies(
    model: onnx.ModelProto,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    test_sets: list[tuple[np.ndarray, np.ndarray]],
    label: str,
) -> dict[str, float]:
    """Per-task and mean test accuracy; raises if numpy and onnxruntime disagree."""
    accs: dict[str, float] = {}
    for t, (x, y) in enumerate(test_sets, start=1):
        np_correct = int(np.sum(numpy_predict(weights, biases, x) == y))
        ort_correct = int(np.sum(ort_predict(model, x) == y))
        if np_correct != ort_correct:
            raise RuntimeError(
                f"{label} task {t}: numpy gets {np_correct}/{len(y)}, "
                f"onnxruntime {ort_correct}/{len(y)}"
            )
        accs[f"task{t}"] = round(ort_correct / len(y), 6)
    accs["mean"] = round((accs["task1"] + accs["task2"]) / 2, 6)
    return accs


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- main


def data_seed(seed: int, split: str) -> int:
    """Seed of the Yin-Yang sampler for one split, derived from the run seed."""
    index = {"train": 0, "test": 1}[split]
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def main(argv: list[str] | None = None) -> None:
    """Train both networks, export them and the test sets, print accuracies and sha256s."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument(
        "--out", type=Path, default=Path("lea_compiler/data"), help="output folder (created)"
    )
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--ewc-lambda", type=float, default=defaults.ewc_lambda, help="EWC strength; 0 disables EWC"
    )
    parser.add_argument("--n-train", type=int, default=defaults.n_train)
    args = parser.parse_args(argv)
    cfg = TrainConfig(
        n_train=args.n_train,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        ewc_lambda=args.ewc_lambda,
    )

    t0 = time.perf_counter()
    train_seed, test_seed = data_seed(args.seed, "train"), data_seed(args.seed, "test")
    train_sets = [make_yinyang(cfg.n_train, train_seed, task) for task in (1, 2)]
    test_sets = [make_yinyang(cfg.n_test, test_seed, task) for task in (1, 2)]
    train64 = [(x.astype(np.float64), y) for x, y in train_sets]
    test64 = [(x.astype(np.float64), y) for x, y in test_sets]

    results: dict[str, dict[str, dict[str, float]]] = {}
    exported: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    scales: dict[str, float] = {}
    for kind in ("float", "ternary"):
        ternary = kind == "ternary"
        w, b, after1 = train_multitask(cfg, train64, test64, args.seed, ternary=ternary)
        if ternary:
            ws = []
            for name, wi in zip(LAYER_NAMES, w, strict=True):
                t, s = ternarize(wi, cfg.ternary_threshold)
                s32 = np.float32(s)
                scales[name] = float(s32)
                ws.append(t.astype(np.float32) * s32)
        else:
            ws = [wi.astype(np.float32) for wi in w]
        exported[kind] = (ws, [bi.astype(np.float32) for bi in b])
        results[kind] = {"after_task1": after1}
    train_time = time.perf_counter() - t0  # data generation and both trainings

    args.out.mkdir(parents=True, exist_ok=True)
    files = {"ternary": "yinyang_mlp.onnx", "float": "yinyang_mlp_float.onnx"}
    for kind, fname in files.items():
        ws, bs = exported[kind]
        what = (
            "ternary weights {-1, 0, +1} x a per-layer scale (TWN threshold "
            f"{cfg.ternary_threshold:g} mean|W|, quantisation-aware training)"
            if kind == "ternary"
            else "float32 weights"
        )
        doc = (
            f"Multi-task Yin-Yang 4-12-6-3 tanh MLP (LEA paper hardware experiment, Yousuf et "
            f"al. 2024) with {what}; float biases. Trained on task 1 (x, y, 1-x, 1-y) then "
            f"task 2 (x+1, y+1, 1-x, 1-y) with EWC (lambda {cfg.ewc_lambda:g}) by "
            f"'python examples/yinyang.py --seed {args.seed}'. Output: logits, argmax = class "
            f"(0, 1 the two halves, 2 the dots); no softmax."
        )
        model = to_onnx(ws, bs, doc)
        results[kind]["final"] = checked_accuracies(model, ws, bs, test_sets, kind)
        (args.out / fname).write_bytes(model.SerializeToString())
    for task, (x, y) in enumerate(test_sets, start=1):
        np.savez(args.out / f"yinyang_task{task}_test.npz", x=x, y=y)

    meta = {
        "description": "Multi-task Yin-Yang MLP bundled with leac; regenerate with "
        f"'python examples/yinyang.py --seed {args.seed} --out lea_compiler/data'",
        "seed": args.seed,
        "architecture": {
            "layers": list(LAYER_SIZES),
            "activation": "tanh",
            "nodes": ["fc1", "tanh1", "fc2", "tanh2", "fc3"],
        },
        "data": {
            "generator": "Kriener et al. 2021 YinYangDataset (rejection sampling, "
            "RandomState order of the reference code)",
            "r_big": R_BIG,
            "r_small": R_SMALL,
            "task1_features": "(x, y, 1-x, 1-y)",
            "task2_features": "(x+1, y+1, 1-x, 1-y)",
            "labels": "0, 1: the two halves (1 = reference is_yin), 2: dots",
            "n_train_per_task": cfg.n_train,
            "n_test_per_task": cfg.n_test,
            "train_seed": train_seed,
            "test_seed": test_seed,
        },
        "training": {
            **asdict(cfg),
            "loss": "softmax cross-entropy (mean) + EWC penalty on task 2",
            "optimizer": "adam, restarted per task",
            "fisher": "empirical diagonal, mean over all task-1 training points",
            "ternary": f"TWN: t = sign(w) if |w| > {cfg.ternary_threshold:g} mean|w| else 0, "
            "scale = mean|w| over t != 0; straight-through estimator on float shadow weights",
            "init": "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases",
        },
        "accuracy": {kind: results[kind]["final"] for kind in ("float", "ternary")},
        "accuracy_after_task1": {
            kind: results[kind]["after_task1"] for kind in ("float", "ternary")
        },
        "paper_software_baseline_mean": 0.72,
        "ternary_scales": scales,
        "files": {
            "ternary_model": files["ternary"],
            "float_model": files["float"],
            "task1_test": "yinyang_task1_test.npz",
            "task2_test": "yinyang_task2_test.npz",
        },
    }
    (args.out / "yinyang_mlp.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    print(f"data + training time {train_time:.1f} s")
    for kind in ("float", "ternary"):
        a = results[kind]["final"]
        print(
            f"{kind:8s} task1 {a['task1']:.3f}  task2 {a['task2']:.3f}  mean {a['mean']:.3f}"
            "   (paper software baseline, ternary: mean 0.72)"
        )
    for fname in sorted(p.name for p in args.out.glob("yinyang_*")):
        print(f"sha256 {sha256(args.out / fname)}  {fname}")


if __name__ == "__main__":
    main()
