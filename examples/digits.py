"""Handwritten digits: a ternary MLP and a ternary CNN for leac, trained with numpy.

The LEA paper's image experiment (Yousuf et al., arXiv 2404.15621) runs a
784-150-10 MLP with ternary weights on MNIST. MNIST cannot be downloaded
here, so this example uses scikit-learn's bundled digits set instead
(``sklearn.datasets.load_digits``: 1797 grey-scale 8x8 images of the digits
0-9, pixel values 0-16, no download). It trains two small networks with
numpy only (no torch) and exports them to ONNX for leac:

* a 64-150-10 MLP (the paper's network with an 8x8 instead of a 28x28 input);
* a small CNN: Conv 3x3 (8 channels, pad 1) -> Relu -> MaxPool 2 ->
  Conv 3x3 (16 channels, pad 1) -> Relu -> MaxPool 2 -> Flatten -> Gemm 10.

Reproduce every bundled file with one command (needs scikit-learn, the
``examples`` extra)::

    python examples/digits.py --seed 0 --out examples/data

The run is deterministic: the same seed and the same defaults regenerate
``digits_mlp.onnx``, ``digits_mlp_float.onnx``, ``digits_cnn.onnx``,
``digits_cnn_float.onnx``, ``digits_test.npz``, ``digits_test_images.npz``,
``digits_calib.npz``, ``digits_calib_images.npz`` and ``digits.json`` byte
for byte (checked by sha256 over two runs; the
script prints each file's sha256). Training runs in float64 numpy;
bit-identity across machines with a different BLAS or CPU is likely but not
guaranteed, identity on one machine is.

Data (``load_split``). Inputs are the pixel values divided by 16, so in
[0, 1] (exact in float32). A stratified split (``train_test_split`` with
``test_size=0.3``, ``stratify=y`` and ``random_state=seed``) gives 1257
training and 540 test images. The MLP reads a row of 64 pixels (row-major,
as ``load_digits`` stores them), the CNN the same pixels as a (1, 8, 8)
image. Both test files hold the same samples in the same order.

Training. Mean softmax cross-entropy, Adam (beta 0.9/0.999), mini-batches
of 32, 60 epochs, the step size decayed by a cosine from 1e-2 to 1e-4;
initialisation and mini-batch order come from the seed (one stream per
network and kind). Weights and biases start U(-1/sqrt(fan_in),
1/sqrt(fan_in)) (fan_in = inputs per output, i.e. in_channels * 9 for a
convolution). The CNN is trained with im2col: a convolution is one matrix
product of the (N*H*W, C*9) patch matrix with the (out, C*9) weight matrix,
which is also how leac maps it on a crossbar. BLAS runs on one thread
(``threadpoolctl``): the products are small, and the arithmetic then does
not depend on the core count. The MLP's hidden activation is ReLU, as in the
CNN: in a sweep over seeds 1-3 (step sizes 3e-3 and 1e-2, 60 and 100
epochs) ReLU and tanh were never more than 0.5 points apart in mean test
accuracy, float or ternary (one test image is 0.19 points), so neither
trains better here; leac supports both. Step size, epochs, threshold
(0.5 / 0.7) and per-layer versus per-output-column scales were picked from
that sweep; all settings were within about a point of each other.

Ternary weights: as in ``examples/yinyang.py``, each weight tensor W (a float
"shadow" weight) is used in the forward pass as s * t with t in {-1, 0, +1}:
t = sign(W) where |W| > delta, delta = 0.7 * mean|W| (TWN, Li et al. 2016),
else 0, and s = mean |W| over the non-zero entries (one scale per layer).
Gradients pass straight through (d loss / d W := d loss / d (s t)). Biases
stay float (leac adds them digitally or programs them on a bias row). Float
networks are trained with the same recipe without quantisation and exported
as ``digits_mlp_float.onnx`` and ``digits_cnn_float.onnx``.

Outputs (in ``--out``): the four ONNX models (input "x" float32
["batch", 64] or ["batch", 1, 8, 8], output "logits" float32 ["batch", 10];
argmax of the logits is the digit; no softmax), the two test sets
(``np.savez``, keys ``x`` float32 (540, 64) or (540, 1, 8, 8), ``y`` int64
(540,)), calibration sets of 256 training images drawn with the seed
(``digits_calib.npz``, ``digits_calib_images.npz``: for ``leac compile
--calibrate``, which must not see the test set), and ``digits.json`` with the seed, settings, accuracies, ternary
scales and the sha256 of every other file. Before anything is written, each
model passes the ONNX checker and onnxruntime's test predictions must equal
the numpy float32 forward pass's, sample for sample.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency
except ImportError as exc:  # pragma: no cover - only without the extra
    raise SystemExit("examples/digits.py needs scikit-learn: pip install 'lea-compiler[examples]'") from exc

IMAGE = 8
N_CLASSES = 10
MLP_HIDDEN = 150
CNN_CHANNELS = (8, 16)
KERNEL = 3
TERNARY_THRESHOLD = 0.7
"""TWN threshold factor: delta = TERNARY_THRESHOLD * mean|W|."""

OPSET = 17
IR_VERSION = 8

Params = dict[str, np.ndarray]
"""Named parameters in ONNX layout: Gemm (out, in) with transB=1, Conv (out, in, kh, kw)."""


# ---------------------------------------------------------------- data


CALIBRATION_SAMPLES = 256
"""Training images written as the calibration set."""


def load_split(seed: int, test_size: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified train/test split of scikit-learn's digits.

    Args:
        seed: ``random_state`` of ``train_test_split``.
        test_size: Fraction of the 1797 images held out for testing.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: x float32 (n, 64) in [0, 1]
        (pixel / 16), y int64 (n,) in 0..9.
    """
    pixels, labels = load_digits(return_X_y=True)
    x = (pixels / 16.0).astype(np.float32)
    y = labels.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


def as_images(x: np.ndarray) -> np.ndarray:
    """(n, 64) pixel rows as (n, 1, 8, 8) images (the layout ``load_digits`` flattened)."""
    return x.reshape(-1, 1, IMAGE, IMAGE)


# ---------------------------------------------------------------- layers


def im2col(x: np.ndarray, k: int = KERNEL, pad: int = 1) -> np.ndarray:
    """Patches of a stride-1 'same' convolution: (N, C, H, W) -> (N*H*W, C*k*k), (c, kh, kw) order."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))  # (N, C, H, W, k, k)
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * h * w, c * k * k)


def col2im(d_cols: np.ndarray, shape: tuple[int, ...], k: int = KERNEL, pad: int = 1) -> np.ndarray:
    """Adjoint of ``im2col``: sums patch gradients back onto the (N, C, H, W) input."""
    n, c, h, w = shape
    d = d_cols.reshape(n, h, w, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=d_cols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i : i + h, j : j + w] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, pad : pad + h, pad : pad + w]


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stride-1 'same' convolution (ONNX Conv, pads 1) and its patch matrix."""
    n, _, h, wd = x.shape
    cols = im2col(x, w.shape[2])
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, h, wd, w.shape[0]).transpose(0, 3, 1, 2), cols


def conv_backward(
    d_out: np.ndarray, cols: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of ``conv`` for weight, bias and (unless ``x_shape`` is None) input."""
    d = d_out.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
    g_w = (d.T @ cols).reshape(w.shape)
    g_b = d.sum(axis=0)
    d_x = None if x_shape is None else col2im(d @ w.reshape(w.shape[0], -1), x_shape, w.shape[2])
    return g_w, g_b, d_x


def maxpool(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2 (ONNX MaxPool kernel_shape [2, 2], strides [2, 2])."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def maxpool_backward(d_out: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Gradient of ``maxpool``; ties share it (they only occur at 0 after a ReLU, where it is cut)."""
    n, c, h, w = x.shape
    mask = x.reshape(n, c, h // 2, 2, w // 2, 2) == out[:, :, :, None, :, None]
    return (mask * d_out[:, :, :, None, :, None]).reshape(n, c, h, w)


# ---------------------------------------------------------------- networks


@dataclass(frozen=True)
class Net:
    """One network: its parameter shapes, forward pass and gradients."""

    name: str
    shapes: dict[str, tuple[int, ...]]
    forward: Callable[[Params, np.ndarray], tuple[np.ndarray, tuple[np.ndarray, ...]]]
    backward: Callable[[Params, tuple[np.ndarray, ...], np.ndarray], Params]

    @property
    def weight_names(self) -> list[str]:
        """The ternarised tensors (every ``.weight``; biases stay float)."""
        return [k for k in self.shapes if k.endswith(".weight")]


def mlp_forward(p: Params, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """fc1 -> relu -> fc2: logits and what the backward pass needs."""
    z1 = x @ p["fc1.weight"].T + p["fc1.bias"]
    h1 = np.maximum(z1, 0)
    return h1 @ p["fc2.weight"].T + p["fc2.bias"], (x, h1)


def mlp_backward(p: Params, cache: tuple[np.ndarray, ...], d_logits: np.ndarray) -> Params:
    """Gradients of ``mlp_forward``'s parameters given d loss / d logits."""
    x, h1 = cache
    dz1 = (d_logits @ p["fc2.weight"]) * (h1 > 0)
    return {
        "fc1.weight": dz1.T @ x,
        "fc1.bias": dz1.sum(axis=0),
        "fc2.weight": d_logits.T @ h1,
        "fc2.bias": d_logits.sum(axis=0),
    }


def cnn_forward(p: Params, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """conv1 -> relu -> pool -> conv2 -> relu -> pool -> flatten -> fc on (N, 64) or (N, 1, 8, 8)."""
    x = as_images(x)
    z1, cols1 = conv(x, p["conv1.weight"], p["conv1.bias"])
    r1 = np.maximum(z1, 0)
    m1 = maxpool(r1)
    z2, cols2 = conv(m1, p["conv2.weight"], p["conv2.bias"])
    r2 = np.maximum(z2, 0)
    m2 = maxpool(r2)
    flat = m2.reshape(len(x), -1)
    return flat @ p["fc.weight"].T + p["fc.bias"], (cols1, r1, m1, cols2, r2, m2, flat)


def cnn_backward(p: Params, cache: tuple[np.ndarray, ...], d_logits: np.ndarray) -> Params:
    """Gradients of ``cnn_forward``'s parameters given d loss / d logits."""
    cols1, r1, m1, cols2, r2, m2, flat = cache
    g: Params = {"fc.weight": d_logits.T @ flat, "fc.bias": d_logits.sum(axis=0)}
    d_m2 = (d_logits @ p["fc.weight"]).reshape(m2.shape)
    d_z2 = maxpool_backward(d_m2, r2, m2) * (r2 > 0)
    g["conv2.weight"], g["conv2.bias"], d_m1 = conv_backward(d_z2, cols2, p["conv2.weight"], m1.shape)
    assert d_m1 is not None
    d_z1 = maxpool_backward(d_m1, r1, m1) * (r1 > 0)
    g["conv1.weight"], g["conv1.bias"], _ = conv_backward(d_z1, cols1, p["conv1.weight"], None)
    return g


c1, c2 = CNN_CHANNELS
MLP = Net(
    "mlp",
    {
        "fc1.weight": (MLP_HIDDEN, IMAGE * IMAGE),
        "fc1.bias": (MLP_HIDDEN,),
        "fc2.weight": (N_CLASSES, MLP_HIDDEN),
        "fc2.bias": (N_CLASSES,),
    },
    mlp_forward,
    mlp_backward,
)
CNN = Net(
    "cnn",
    {
        "conv1.weight": (c1, 1, KERNEL, KERNEL),
        "conv1.bias": (c1,),
        "conv2.weight": (c2, c1, KERNEL, KERNEL),
        "conv2.bias": (c2,),
        "fc.weight": (N_CLASSES, c2 * (IMAGE // 4) ** 2),
        "fc.bias": (N_CLASSES,),
    },
    cnn_forward,
    cnn_backward,
)
del c1, c2


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults produce the bundled files."""

    test_size: float = 0.3
    mlp_epochs: int = 60
    cnn_epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-2
    lr_final: float = 0.01
    """Cosine decay of the step size, from lr to lr * lr_final."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    ternary_threshold: float = TERNARY_THRESHOLD


def init_params(net: Net, rng: np.random.Generator) -> Params:
    """PyTorch-style init: every tensor ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in from the weight."""
    params: Params = {}
    for name, shape in net.shapes.items():
        weight_shape = net.shapes[name.rsplit(".", 1)[0] + ".weight"]
        bound = 1.0 / np.sqrt(int(np.prod(weight_shape[1:])))
        params[name] = rng.uniform(-bound, bound, size=shape)
    return params


def ternarize(w: np.ndarray, threshold: float = TERNARY_THRESHOLD) -> tuple[np.ndarray, float]:
    """TWN ternarisation: ``(t, s)`` with t in {-1, 0, +1} (int8) and w ~ s * t.

    delta = threshold * mean|w| (TWN uses 0.7); t = sign(w) where |w| > delta else 0;
    s = mean|w| over the entries with t != 0 (one scale per tensor, as examples/yinyang.py).
    """
    a = np.abs(w)
    mask = a > threshold * a.mean()
    if not mask.any():
        raise ValueError("cannot ternarise an all-zero weight tensor")
    t = (np.sign(w) * mask).astype(np.int8)
    return t, float(a[mask].mean())


def effective(net: Net, params: Params, ternary: bool, threshold: float) -> Params:
    """The parameters the forward pass uses: weights s * t when ``ternary``, else as they are."""
    if not ternary:
        return params
    out = dict(params)
    for name in net.weight_names:
        t, s = ternarize(params[name], threshold)
        out[name] = s * t.astype(np.float64)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def accuracy(net: Net, params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose logits argmax equals the label."""
    logits, _ = net.forward(params, x)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def train(
    net: Net,
    data: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    epochs: int,
    cfg: TrainConfig,
    seed: int,
    *,
    ternary: bool,
    log_every: int = 10,
) -> Params:
    """Adam on mean cross-entropy from a seeded initialisation; returns the (shadow) parameters.

    With ``ternary`` the forward/backward pass uses the ternarised weights and the
    gradient is applied to the float shadow weights (straight-through estimator).
    ``test`` is only used for the progress lines.
    """
    index = {"mlp": 0, "cnn": 1}[net.name]
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 1 if ternary else 0]))
    params = init_params(net, rng)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    x, y = data
    n = len(y)
    steps_per_epoch = -(-n // cfg.batch_size)
    total_steps = epochs * steps_per_epoch
    b1, b2 = cfg.adam_beta1, cfg.adam_beta2
    tag = f"{net.name} {'ternary' if ternary else 'float'}"
    step = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            eff = effective(net, params, ternary, cfg.ternary_threshold)
            logits, cache = net.forward(eff, x[idx])
            p = softmax(logits)
            rows = np.arange(len(idx))
            total += float(-np.sum(np.log(p[rows, y[idx]] + 1e-12)))
            p[rows, y[idx]] -= 1.0
            g = net.backward(eff, cache, p / len(idx))
            step += 1
            decay = 0.5 * (1.0 + np.cos(np.pi * (step - 1) / total_steps))
            lr = cfg.lr * (cfg.lr_final + (1.0 - cfg.lr_final) * decay)
            for k in params:
                m[k] *= b1
                m[k] += (1.0 - b1) * g[k]
                v[k] *= b2
                v[k] += (1.0 - b2) * g[k] * g[k]
                m_hat = m[k] / (1.0 - b1**step)
                v_hat = v[k] / (1.0 - b2**step)
                params[k] -= lr * m_hat / (np.sqrt(v_hat) + cfg.adam_eps)
        if epoch % log_every == 0 or epoch == epochs:
            eff = effective(net, params, ternary, cfg.ternary_threshold)
            acc = accuracy(net, eff, *test)
            print(f"[{tag}] epoch {epoch:3d}/{epochs}  loss {total / n:.4f}  test acc {acc:.4f}", flush=True)
    return params


def export_params(net: Net, params: Params, ternary: bool, threshold: float) -> tuple[Params, dict[str, float]]:
    """float32 arrays to export, and the ternary scale of every weight (float32-rounded)."""
    out: Params = {}
    scales: dict[str, float] = {}
    for name, value in params.items():
        if ternary and name in net.weight_names:
            t, s = ternarize(value, threshold)
            s32 = np.float32(s)
            scales[name.rsplit(".", 1)[0]] = float(s32)
            out[name] = t.astype(np.float32) * s32
        else:
            out[name] = value.astype(np.float32)
    return out, scales


# ---------------------------------------------------------------- export


def _gemm(name: str, x: str, out: str) -> onnx.NodeProto:
    return helper.make_node("Gemm", [x, f"{name}.weight", f"{name}.bias"], [out], name=name, transB=1)


def mlp_graph() -> tuple[list[onnx.NodeProto], list[int]]:
    """x [batch, 64] -> Gemm fc1 -> Relu relu1 -> Gemm fc2 -> logits."""
    nodes = [
        _gemm("fc1", "x", "fc1_out"),
        helper.make_node("Relu", ["fc1_out"], ["relu1_out"], name="relu1"),
        _gemm("fc2", "relu1_out", "logits"),
    ]
    return nodes, [IMAGE * IMAGE]


def cnn_graph() -> tuple[list[onnx.NodeProto], list[int]]:
    """x [batch, 1, 8, 8] -> (Conv, Relu, MaxPool) x 2 -> Flatten -> Gemm fc -> logits."""
    nodes = []
    prev = "x"
    for i in (1, 2):
        nodes += [
            helper.make_node(
                "Conv",
                [prev, f"conv{i}.weight", f"conv{i}.bias"],
                [f"conv{i}_out"],
                name=f"conv{i}",
                kernel_shape=[KERNEL, KERNEL],
                pads=[1, 1, 1, 1],
            ),
            helper.make_node("Relu", [f"conv{i}_out"], [f"relu{i}_out"], name=f"relu{i}"),
            helper.make_node(
                "MaxPool", [f"relu{i}_out"], [f"pool{i}_out"], name=f"pool{i}", kernel_shape=[2, 2], strides=[2, 2]
            ),
        ]
        prev = f"pool{i}_out"
    nodes += [
        helper.make_node("Flatten", [prev], ["flatten_out"], name="flatten", axis=1),
        _gemm("fc", "flatten_out", "logits"),
    ]
    return nodes, [1, IMAGE, IMAGE]


def to_onnx(net: Net, params: Params, doc: str) -> onnx.ModelProto:
    """The network as an ONNX model with float32 initializers; passes the full ONNX check."""
    nodes, input_dims = mlp_graph() if net.name == "mlp" else cnn_graph()
    inits = [numpy_helper.from_array(params[name].astype(np.float32), name) for name in net.shapes]
    graph = helper.make_graph(
        nodes,
        f"digits_{net.name}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *input_dims])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_CLASSES])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="leac examples/digits.py",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_predict(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """argmax of onnxruntime's logits (single-threaded CPU session)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"x": x.astype(np.float32)})
    return np.argmax(logits, axis=1)


def checked_accuracy(net: Net, model: onnx.ModelProto, params32: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy; raises unless onnxruntime and the numpy float32 pass predict the same digits."""
    logits, _ = net.forward(params32, x.astype(np.float32))
    np_pred = np.argmax(logits, axis=1)
    ort_pred = ort_predict(model, x if net.name == "mlp" else as_images(x))
    if not np.array_equal(np_pred, ort_pred):
        differ = int(np.sum(np_pred != ort_pred))
        raise RuntimeError(f"{model.graph.name}: numpy and onnxruntime predict {differ}/{len(y)} samples differently")
    return round(float(np.mean(ort_pred == y)), 6)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- main

ARCHITECTURES = {
    "mlp": {
        "layers": [IMAGE * IMAGE, MLP_HIDDEN, N_CLASSES],
        "activation": "relu",
        "nodes": ["fc1", "relu1", "fc2"],
        "input": "x float32 [batch, 64], pixel / 16",
    },
    "cnn": {
        "conv": f"{KERNEL}x{KERNEL}, stride 1, pads 1, channels {list(CNN_CHANNELS)}",
        "pool": "MaxPool 2x2, stride 2",
        "fc": [CNN_CHANNELS[1] * (IMAGE // 4) ** 2, N_CLASSES],
        "nodes": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc"],
        "input": "x float32 [batch, 1, 8, 8], pixel / 16",
    },
}


def main(argv: list[str] | None = None) -> dict[str, str]:
    """Train both networks (float and ternary), export them and the test sets; returns {file: sha256}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("examples/data"), help="output folder (created)")
    defaults = TrainConfig()
    parser.add_argument("--mlp-epochs", type=int, default=defaults.mlp_epochs)
    parser.add_argument("--cnn-epochs", type=int, default=defaults.cnn_epochs)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    args = parser.parse_args(argv)
    cfg = TrainConfig(
        mlp_epochs=args.mlp_epochs, cnn_epochs=args.cnn_epochs, lr=args.lr, batch_size=args.batch_size
    )

    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = load_split(args.seed, cfg.test_size)
    train64 = (x_train.astype(np.float64), y_train)
    test64 = (x_test.astype(np.float64), y_test)

    exported: dict[str, dict[str, Params]] = {}
    scales: dict[str, dict[str, float]] = {}
    # one BLAS thread: the products are small (threads only contend) and the
    # float64 arithmetic then does not depend on the machine's core count
    with threadpool_limits(limits=1, user_api="blas"):
        for net, epochs in ((MLP, cfg.mlp_epochs), (CNN, cfg.cnn_epochs)):
            exported[net.name] = {}
            for kind in ("float", "ternary"):
                ternary = kind == "ternary"
                params = train(net, train64, test64, epochs, cfg, args.seed, ternary=ternary)
                exported[net.name][kind], found = export_params(net, params, ternary, cfg.ternary_threshold)
                if ternary:
                    scales[net.name] = found
    train_time = time.perf_counter() - t0

    models: dict[str, onnx.ModelProto] = {}
    accuracies: dict[str, dict[str, float]] = {}
    files: dict[str, str] = {}
    for net in (MLP, CNN):
        accuracies[net.name] = {}
        for kind in ("float", "ternary"):
            fname = f"digits_{net.name}{'_float' if kind == 'float' else ''}.onnx"
            what = (
                "ternary weights {-1, 0, +1} x one scale per layer (TWN threshold "
                f"{cfg.ternary_threshold:g} mean|W|, quantisation-aware training)"
                if kind == "ternary"
                else "float32 weights"
            )
            shape = "64-150-10 ReLU MLP" if net.name == "mlp" else "CNN (conv 8, pool, conv 16, pool, fc 10)"
            doc = (
                f"scikit-learn digits (8x8, pixel / 16) {shape} with {what}; float biases. Trained by "
                f"'python examples/digits.py --seed {args.seed}'. Output: logits, argmax = digit; no softmax."
            )
            model = to_onnx(net, exported[net.name][kind], doc)
            accuracies[net.name][kind] = checked_accuracy(net, model, exported[net.name][kind], x_test, y_test)
            models[fname] = model
            files[f"{net.name}_{kind}"] = fname

    args.out.mkdir(parents=True, exist_ok=True)
    for fname, model in models.items():
        (args.out / fname).write_bytes(model.SerializeToString())
    np.savez(args.out / "digits_test.npz", x=x_test, y=y_test)
    np.savez(args.out / "digits_test_images.npz", x=as_images(x_test), y=y_test)
    pick = np.sort(np.random.default_rng(args.seed).permutation(len(x_train))[:CALIBRATION_SAMPLES])
    np.savez(args.out / "digits_calib.npz", x=x_train[pick], y=y_train[pick])
    np.savez(args.out / "digits_calib_images.npz", x=as_images(x_train[pick]), y=y_train[pick])
    files["test"] = "digits_test.npz"
    files["test_images"] = "digits_test_images.npz"
    files["calib"] = "digits_calib.npz"
    files["calib_images"] = "digits_calib_images.npz"
    digests = {fname: sha256(args.out / fname) for fname in sorted(files.values())}

    meta = {
        "description": "scikit-learn digits MLP and CNN for leac (LEA paper's MNIST MLP, scaled down); "
        f"regenerate with 'python examples/digits.py --seed {args.seed} --out examples/data'",
        "seed": args.seed,
        "architecture": ARCHITECTURES,
        "data": {
            "source": "sklearn.datasets.load_digits (1797 images, 8x8, pixel values 0..16)",
            "input": "pixel / 16 as float32, row-major (the load_digits order)",
            "split": f"sklearn train_test_split(test_size={cfg.test_size}, stratify=y, random_state=seed)",
            "n_train": len(y_train),
            "n_test": len(y_test),
            "test_class_counts": np.bincount(y_test, minlength=N_CLASSES).tolist(),
        },
        "training": {
            **asdict(cfg),
            "loss": "softmax cross-entropy (mean)",
            "optimizer": "adam, cosine step-size decay",
            "ternary": f"TWN: t = sign(w) if |w| > {cfg.ternary_threshold:g} mean|w| else 0, "
            "scale = mean|w| over t != 0, one scale per layer; straight-through estimator on float shadow weights",
            "init": "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases",
        },
        "accuracy": accuracies,
        "ternary_scales": scales,
        "files": files,
        "sha256": digests,
    }
    (args.out / "digits.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    digests["digits.json"] = sha256(args.out / "digits.json")

    print(f"data + training time {train_time:.1f} s, {len(y_train)} train / {len(y_test)} test images")
    for name in ("mlp", "cnn"):
        a = accuracies[name]
        print(f"{name}  float {a['float']:.4f}  ternary {a['ternary']:.4f}")
    for fname in sorted(digests):
        print(f"sha256 {digests[fname]}  {fname}")
    return digests


if __name__ == "__main__":
    main()
