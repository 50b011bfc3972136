"""Two small CNNs trained with PyTorch and exported by ``torch.onnx.export``, for leac (issue 17).

leac's own examples (``digits.py``, ``timeseries.py``) build their ONNX graphs
by hand. Real users bring what PyTorch's exporter writes: BatchNormalization
folded into Conv, ``Conv`` with ``group`` for depthwise layers, Conv1d as a
1-D ``Conv``, Flatten or Reshape before ``Gemm``, GELU as an ``Erf`` pattern.
This script trains two such networks on the data of the numpy examples
(one definition of each data set: it calls their loaders) and exports them:

* ``torch_digits_dwsep.onnx``: a depthwise-separable 2-D CNN on
  scikit-learn's digits (8x8 images, the split of ``digits.py``)::

      Conv 3x3 1->8, BatchNorm, ReLU, MaxPool 2                 (8, 4, 4)
      Conv 3x3 8->8, groups 8 (depthwise), BatchNorm, ReLU
      Conv 1x1 8->16 (pointwise), BatchNorm, ReLU, MaxPool 2    (16, 2, 2)
      Flatten, Linear 64->10

* ``torch_timeseries_cnn.onnx``: a 1-D CNN on the synthetic waveforms of
  ``timeseries.py`` (sine / square / sawtooth / triangle, 64 samples)::

      Conv1d 1->8 k 5, GELU, MaxPool1d 2                         (8, 32)
      Conv1d 8->16 k 5, GELU, AvgPool1d 2                        (16, 16)
      Conv1d 16->16 k 3, ReLU, AdaptiveAvgPool1d 1, Flatten, Linear 16->4

Training: float32 on the CPU, one thread, ``torch.manual_seed(seed)`` and
deterministic algorithms; Adam, mini-batches of 32, the step size
cosine-decayed from 1e-2 to 1e-4, cross-entropy. Export: opset 17 with the
TorchScript exporter (``dynamo=False``: the dynamo exporter needs
``onnxscript``), a dynamic batch axis, input "x", output "logits". Before
anything is written, every model passes the ONNX checker and onnxruntime's
predicted class must equal torch's on every test sample.

torch is not a dependency of leac. Install it into a separate environment
(the CPU build; a plain ``pip install torch`` pulls a multi-GB CUDA build)::

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /tmp/venv-torch/bin/pip install -e '.[examples]'
    /tmp/venv-torch/bin/python examples/torch_models.py --seed 0 --out /tmp/torch_examples

Files written to ``--out``: the two models, their test sets
(``torch_digits_test.npz``: ``x`` float32 (540, 1, 8, 8), ``y`` int64;
``torch_timeseries_test.npz``: ``x`` float32 (1000, 1, 64), ``y`` int64),
calibration sets drawn from the training data (``*_calib.npz``, 256 samples,
for ``leac compile --calibrate``) and ``torch_models.json`` (seed, settings,
versions, test accuracies, sha256 of each file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

INSTALL = ("examples/torch_models.py needs PyTorch, which is not a dependency of leac. Install the CPU build in a "
           "separate environment:\n  python3 -m venv /tmp/venv-torch\n"
           "  /tmp/venv-torch/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu\n"
           "  /tmp/venv-torch/bin/pip install -e '.[examples]'\n"
           "and run this script with /tmp/venv-torch/bin/python.")

try:
    import torch
    from torch import nn
except ImportError:
    print(INSTALL, file=sys.stderr)
    raise SystemExit(2) from None

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling examples' data loaders
import digits  # noqa: E402
import timeseries  # noqa: E402

OPSET = 17
CALIBRATION_SAMPLES = 256


@dataclass(frozen=True)
class Settings:
    epochs_digits: int = 60
    epochs_timeseries: int = 30
    batch: int = 32
    lr: float = 1e-2
    lr_final: float = 1e-4


class DigitsDWSep(nn.Module):
    """Depthwise-separable 2-D CNN for (1, 8, 8) digit images."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(16 * 2 * 2, digits.N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class TimeseriesCNN(nn.Module):
    """1-D CNN for (1, 64) waveforms: Conv1d, GELU, max and average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, 5, padding=2), nn.GELU(), nn.MaxPool1d(2),
            nn.Conv1d(8, 16, 5, padding=2), nn.GELU(), nn.AvgPool1d(2),
            nn.Conv1d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        )
        self.fc = nn.Linear(16, len(timeseries.CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


def train(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int, s: Settings) -> nn.Module:
    """Adam on seeded mini-batches, cross-entropy, the step size cosine-decayed over all steps; returns net in eval."""
    torch.manual_seed(seed)
    for module in net.modules():  # re-initialise from the seed (construction used the global stream)
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.Adam(net.parameters(), lr=s.lr)
    steps = epochs * -(-len(x) // s.batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=s.lr_final)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for lo in range(0, len(x), s.batch):
            batch = order[lo:lo + s.batch]
            optimiser.zero_grad()
            loss_fn(net(xt[batch]), yt[batch]).backward()
            optimiser.step()
            schedule.step()
    return net.eval()


def export(net: nn.Module, example: np.ndarray, path: Path) -> onnx.ModelProto:
    """``torch.onnx.export`` (TorchScript exporter, opset 17, dynamic batch), checked; returns the model."""
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.from_numpy(example[:1]),), str(path), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    return model


def checked_accuracy(net: nn.Module, path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """onnxruntime's test accuracy, after checking that it predicts torch's class on every sample."""
    with torch.no_grad():
        torch_pred = net(torch.from_numpy(x)).argmax(dim=1).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ort_pred = np.argmax(session.run(None, {"x": x})[0], axis=1)
    if not np.array_equal(ort_pred, torch_pred):
        raise SystemExit(f"{path.name}: onnxruntime and torch disagree on {int(np.sum(ort_pred != torch_pred))} "
                         "test samples")
    return float(np.mean(ort_pred == y))


def datasets(seed: int) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Train / test / calibration sets of both tasks, from the numpy examples' loaders."""
    x_train, y_train, x_test, y_test = digits.load_split(seed)
    pick = np.random.default_rng([seed, 3]).choice(len(x_train), CALIBRATION_SAMPLES, replace=False)
    ts = timeseries.Settings()
    return {
        "digits": {"train": (digits.as_images(x_train), y_train), "test": (digits.as_images(x_test), y_test),
                   "calib": (digits.as_images(x_train[pick]), y_train[pick])},
        "timeseries": {"train": timeseries.make_signals(ts.train, seed),
                       "test": timeseries.make_signals(ts.test, seed + 1000),
                       "calib": timeseries.make_signals(ts.calibration, seed + 2000)},
    }


def run(seed: int, out: Path, settings: Settings = Settings()) -> dict[str, Any]:  # noqa: B008 - frozen
    """Train, export and check both networks, write every file to `out`; returns the summary (also written)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data = datasets(seed)
    nets = {"digits": (DigitsDWSep(), settings.epochs_digits, "torch_digits_dwsep.onnx"),
            "timeseries": (TimeseriesCNN(), settings.epochs_timeseries, "torch_timeseries_cnn.onnx")}
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"seed": seed, "settings": asdict(settings), "torch": torch.__version__,
                               "onnx": onnx.__version__, "onnxruntime": ort.__version__, "opset": OPSET,
                               "models": {}, "sha256": {}}
    files = []
    for task, (net, epochs, name) in nets.items():
        start = time.perf_counter()
        train(net, *data[task]["train"], epochs, seed, settings)
        x_test, y_test = data[task]["test"]
        model = export(net, x_test, out / name)
        accuracy = checked_accuracy(net, out / name, x_test, y_test)
        summary["models"][name] = {"task": task, "epochs": epochs, "test_accuracy": accuracy, "test_samples":
                                   len(y_test), "op_types": sorted({n.op_type for n in model.graph.node})}
        print(f"{name}: test accuracy {100 * accuracy:.1f}% ({len(y_test)} samples), "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        for split in ("test", "calib"):
            x, y = data[task][split]
            np.savez(out / f"torch_{task}_{split}.npz", x=x, y=y)
            files.append(f"torch_{task}_{split}.npz")
        files.append(name)
    summary["sha256"] = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in sorted(files)}
    (out / "torch_models.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    summary = run(args.seed, args.out)
    for name, digest in summary["sha256"].items():
        print(f"{digest}  {args.out / name}")
    return summary


if __name__ == "__main__":
    main()
