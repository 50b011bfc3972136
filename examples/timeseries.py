"""Time series: a small 1-D depthwise-separable CNN for leac, trained with numpy.

Edge workloads on memristor chips (keyword spotting, ECG, sensor streams) are
1-D convolutional networks, and the efficient ones are depthwise-separable.
This example trains such a network with numpy only (no torch) on a synthetic
but realistic task and exports it to ONNX, so that leac's 1-D and grouped
(depthwise) convolutions can be compiled and simulated end to end.

Task (``make_signals``). Four classes of waveform, 64 samples each: sine,
square, sawtooth and triangle, with a random frequency (2 to 6 periods over
the window), phase and amplitude (0.5 to 1.5), plus Gaussian noise (sigma
0.25), so that the class is in the wave's shape, not in its scale or timing.
Training, test and calibration sets are drawn from the seed.

Network (input "x" float32 [batch, 1, 64], output "logits" float32
[batch, 4]; the class is the argmax)::

    Conv 1->8, k 5, pad 2 -> Relu                       (conv1: 5 x 8 crossbar matrix)
    Conv 8->8, k 5, pad 2, stride 2, group 8 -> Relu    (depthwise: 5 x 8, read once per channel)
    Conv 8->16, k 1 -> Relu                             (pointwise: 8 x 16)
    MaxPool k 2, stride 2 -> GlobalAveragePool -> Flatten -> Gemm 16->4 (fc: 16 x 4)

Training: mean softmax cross-entropy, Adam (0.9/0.999), mini-batches of 32,
the step size cosine-decayed from 1e-2 to 1e-4, float64, BLAS on one thread;
convolutions are trained through im2col as leac maps them. Before anything
is written, onnxruntime's test predictions must equal the numpy forward
pass's. Run::

    python examples/timeseries.py --seed 0 --out /tmp/timeseries

which writes ``timeseries_cnn.onnx``, ``timeseries_test.npz`` and
``timeseries_calib.npz`` (``np.savez``: ``x`` float32 (n, 1, 64), ``y`` int64
(n,)) and ``timeseries.json`` (seed, settings, accuracies, sha256 of each
file), then compile and simulate it, e.g.::

    leac compile /tmp/timeseries/timeseries_cnn.onnx --chip lea_compiler/data/paper_chip.json -k 3 \\
        --calibrate /tmp/timeseries/timeseries_calib.npz -o ts.leac
    leac simulate ts.leac --data /tmp/timeseries/timeseries_test.npz
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

try:
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency (the examples extra)
except ImportError as exc:  # pragma: no cover - only without the extra
    raise SystemExit("examples/timeseries.py needs threadpoolctl: pip install 'lea-compiler[examples]'") from exc

LENGTH = 64
CLASSES = ("sine", "square", "sawtooth", "triangle")
NOISE = 0.25
CHANNELS, WIDE, KERNEL = 8, 16, 5

Params = dict[str, np.ndarray]
"""Named parameters in ONNX layout: Conv (out, in / group, k), Gemm (out, in) with transB=1."""


@dataclass(frozen=True)
class Settings:
    train: int = 2000
    test: int = 1000
    calibration: int = 256
    epochs: int = 40
    batch: int = 32
    lr: float = 1e-2
    lr_final: float = 1e-4


# ---------------------------------------------------------------- data
def make_signals(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` noisy waveforms (float32 (n, 1, 64)) and their classes (int64 (n,)), from `seed`."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    periods = rng.uniform(2.0, 6.0, n)
    phase = rng.uniform(0.0, 1.0, n)
    amplitude = rng.uniform(0.5, 1.5, n)
    t = (np.arange(LENGTH)[None, :] / LENGTH * periods[:, None] + phase[:, None]) % 1.0  # position in the period
    waves = np.stack([np.sin(2 * np.pi * t), np.where(t < 0.5, 1.0, -1.0), 2 * t - 1, 1 - 4 * np.abs(t - 0.5)])
    x = waves[y, np.arange(n)] * amplitude[:, None] + rng.normal(0.0, NOISE, (n, LENGTH))
    return x[:, None, :].astype(np.float32), y.astype(np.int64)


# ---------------------------------------------------------------- layers
def im2col(x: np.ndarray, k: int, pad: int, stride: int = 1) -> np.ndarray:
    """Patches of a 1-D convolution: (N, C, L) -> (N * OL, C * k), (channel, tap) order as ONNX Conv's weight."""
    n, c, _ = x.shape
    win = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (pad, pad))), k, axis=2)[:, :, ::stride]
    return np.ascontiguousarray(win.transpose(0, 2, 1, 3)).reshape(-1, c * k)


def col2im(d_cols: np.ndarray, shape: tuple[int, ...], k: int, pad: int, stride: int = 1) -> np.ndarray:
    """Adjoint of ``im2col``: patch gradients summed back onto the (N, C, L) input."""
    n, c, length = shape
    d = d_cols.reshape(n, -1, c, k)
    out = d.shape[1]
    dxp = np.zeros((n, c, length + 2 * pad))
    for j in range(k):
        dxp[:, :, j:j + stride * out:stride] += d[:, :, :, j].transpose(0, 2, 1)
    return dxp[:, :, pad:pad + length]


def forward(p: Params, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits (N, 4) and what the backward pass needs."""
    n = len(x)
    c1 = im2col(x, KERNEL, 2)
    h1 = np.maximum(c1 @ p["w1"].reshape(CHANNELS, -1).T + p["b1"], 0)  # (N * 64, 8)
    a1 = h1.reshape(n, LENGTH, CHANNELS).transpose(0, 2, 1)
    cd = im2col(a1, KERNEL, 2, 2).reshape(-1, CHANNELS, KERNEL)  # each channel's own 5 taps
    hd = np.maximum(np.einsum("pck,ck->pc", cd, p["wd"][:, 0]) + p["bd"], 0)  # (N * 32, 8)
    hp = np.maximum(hd @ p["wp"][:, :, 0].T + p["bp"], 0)  # (N * 32, 16)
    pooled = hp.reshape(n, LENGTH // 4, 2, WIDE).max(axis=2)  # MaxPool k 2, stride 2: (N, 16, 16)
    g = pooled.mean(axis=1)
    logits = g @ p["wf"].T + p["bf"]
    return logits, {"c1": c1, "h1": h1, "a1": a1, "cd": cd, "hd": hd, "hp": hp, "pooled": pooled, "g": g}


def gradients(p: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """Mean cross-entropy and its gradient with respect to every parameter."""
    n = len(x)
    logits, s = forward(p, x)
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = float(-np.mean(np.log(prob[np.arange(n), y] + 1e-12)))
    d = prob.copy()
    d[np.arange(n), y] -= 1
    d /= n
    g: Params = {"wf": d.T @ s["g"], "bf": d.sum(axis=0)}
    d_pooled = np.repeat((d @ p["wf"])[:, None, :] / (LENGTH // 4), LENGTH // 4, axis=1)  # (N, 16, 16)
    hp = s["hp"].reshape(n, LENGTH // 4, 2, WIDE)
    mask = hp == s["pooled"][:, :, None, :]
    d_hp = (mask * d_pooled[:, :, None, :] / mask.sum(axis=2, keepdims=True)).reshape(-1, WIDE) * (s["hp"] > 0)
    g["wp"], g["bp"] = (d_hp.T @ s["hd"])[:, :, None], d_hp.sum(axis=0)
    d_hd = (d_hp @ p["wp"][:, :, 0]) * (s["hd"] > 0)
    g["wd"], g["bd"] = np.einsum("pc,pck->ck", d_hd, s["cd"])[:, None, :], d_hd.sum(axis=0)
    d_cd = np.einsum("pc,ck->pck", d_hd, p["wd"][:, 0]).reshape(-1, CHANNELS * KERNEL)
    d_a1 = col2im(d_cd, s["a1"].shape, KERNEL, 2, 2)
    d_h1 = d_a1.transpose(0, 2, 1).reshape(-1, CHANNELS) * (s["h1"] > 0)
    g["w1"], g["b1"] = (d_h1.T @ s["c1"]).reshape(p["w1"].shape), d_h1.sum(axis=0)
    return loss, g


def init(seed: int) -> Params:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases, fan_in = inputs per output."""
    rng = np.random.default_rng([seed, 1])
    shapes = {"w1": ((CHANNELS, 1, KERNEL), KERNEL), "b1": ((CHANNELS,), KERNEL),
              "wd": ((CHANNELS, 1, KERNEL), KERNEL), "bd": ((CHANNELS,), KERNEL),
              "wp": ((WIDE, CHANNELS, 1), CHANNELS), "bp": ((WIDE,), CHANNELS),
              "wf": ((len(CLASSES), WIDE), WIDE), "bf": ((len(CLASSES),), WIDE)}
    return {k: rng.uniform(-1, 1, shape) / np.sqrt(fan) for k, (shape, fan) in shapes.items()}


def train(x: np.ndarray, y: np.ndarray, seed: int, s: Settings) -> Params:
    """Adam on mini-batches in a seeded order, the step size cosine-decayed over all steps."""
    p = init(seed)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    rng = np.random.default_rng([seed, 2])
    steps = s.epochs * -(-len(x) // s.batch)
    step = 0
    for _ in range(s.epochs):
        order = rng.permutation(len(x))
        for lo in range(0, len(x), s.batch):
            batch = order[lo:lo + s.batch]
            _, g = gradients(p, x[batch].astype(np.float64), y[batch])
            lr = s.lr_final + 0.5 * (s.lr - s.lr_final) * (1 + np.cos(np.pi * step / steps))
            step += 1
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                v2[k] = 0.999 * v2[k] + 0.001 * g[k] ** 2
                p[k] -= lr * (m[k] / (1 - 0.9**step)) / (np.sqrt(v2[k] / (1 - 0.999**step)) + 1e-8)
    return p


# ---------------------------------------------------------------- export
def to_onnx(p: Params) -> onnx.ModelProto:
    """The trained network as a checked opset-17 ONNX model."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["cd"], name="depthwise", group=CHANNELS, pads=[2, 2],
                         strides=[2]),
        helper.make_node("Relu", ["cd"], ["rd"], name="relu2"),
        helper.make_node("Conv", ["rd", "wp", "bp"], ["cp"], name="pointwise"),
        helper.make_node("Relu", ["cp"], ["rp"], name="relu3"),
        helper.make_node("MaxPool", ["rp"], ["mp"], name="pool", kernel_shape=[2], strides=[2]),
        helper.make_node("GlobalAveragePool", ["mp"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "timeseries_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, LENGTH])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(CLASSES)])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in p.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="leac-examples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def run(seed: int, out: Path, settings: Settings = Settings()) -> dict:  # noqa: B008 - frozen
    """Make the data, train, check onnxruntime against numpy, and write the files; returns the summary."""
    x_train, y_train = make_signals(settings.train, seed)
    x_test, y_test = make_signals(settings.test, seed + 1000)
    x_calib, y_calib = make_signals(settings.calibration, seed + 2000)
    with threadpool_limits(1):
        params = train(x_train, y_train, seed, settings)
        numpy_pred = np.argmax(forward({k: v.astype(np.float32) for k, v in params.items()}, x_test)[0], axis=1)
    model = to_onnx(params)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_pred = np.argmax(session.run(None, {"x": x_test})[0], axis=1)
    if not np.array_equal(ort_pred, numpy_pred):
        raise SystemExit(f"onnxruntime and numpy disagree on {int(np.sum(ort_pred != numpy_pred))} test samples")
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out / "timeseries_cnn.onnx")
    np.savez(out / "timeseries_test.npz", x=x_test, y=y_test)
    np.savez(out / "timeseries_calib.npz", x=x_calib, y=y_calib)
    summary = {"seed": seed, "settings": asdict(settings), "classes": list(CLASSES), "noise": NOISE,
               "test_accuracy": float(np.mean(ort_pred == y_test)),
               "sha256": {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
                          for name in ("timeseries_cnn.onnx", "timeseries_test.npz", "timeseries_calib.npz")}}
    (out / "timeseries.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=Settings.epochs)
    args = parser.parse_args()
    summary = run(args.seed, args.out, Settings(epochs=args.epochs))
    print(f"test accuracy {100 * summary['test_accuracy']:.1f}% ({summary['settings']['test']} signals)")
    for name, digest in summary["sha256"].items():
        print(f"{digest}  {args.out / name}")


if __name__ == "__main__":
    main()
