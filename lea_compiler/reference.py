"""onnxruntime as the reference: what the original model computes, for accuracy and agreement.

leac's interpreter and simulator are checked against this; reports quote
the software accuracy it gives.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from lea_compiler.errors import InvalidModelError
from lea_compiler.onnx_frontend import names_external_data


def ort_session(model: onnx.ModelProto | bytes | str | os.PathLike[str]) -> ort.InferenceSession:
    """A single-threaded CPU session (reproducible, and faster than threads for leac's sizes)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: leac reports onnxruntime's errors itself (InvalidModelError)
    source: bytes | str
    if isinstance(model, onnx.ModelProto | bytes):
        # from memory, onnxruntime would resolve external data against the current folder: refuse it
        proto = model if isinstance(model, onnx.ModelProto) else _parse(model)
        if names_external_data(proto):
            raise InvalidModelError("the model names external data files; leac gives onnxruntime only models "
                                    "that hold all their data")
        source = model if isinstance(model, bytes) else model.SerializeToString()
    else:
        source = os.fspath(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise InvalidModelError(f"onnxruntime cannot load the model: {exc}") from None


def _parse(data: bytes) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # DecodeError and friends
        raise InvalidModelError(f"not a readable ONNX model ({exc})") from None


def run_onnxruntime(
    model: onnx.ModelProto | bytes | str | os.PathLike[str], feeds: Mapping[str, Any]
) -> dict[str, np.ndarray[Any, Any]]:
    """Run the model in onnxruntime and return every graph output by name.

    Raises:
        InvalidModelError: onnxruntime cannot load the model, or cannot run it on `feeds`.
    """
    session = ort_session(model)
    names = [o.name for o in session.get_outputs()]
    try:
        results = session.run(names, {k: np.asarray(v) for k, v in feeds.items()})
    except Exception as exc:  # onnxruntime raises its own InvalidArgument/Fail/RuntimeException types
        raise InvalidModelError(f"onnxruntime cannot run the model on these inputs: {exc}") from None
    return dict(zip(names, results, strict=True))
