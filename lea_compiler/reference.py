"""onnxruntime as the reference: what the original model computes, for accuracy and agreement.

leac's interpreter and simulator are checked against this; reports quote
the software accuracy it gives. A Program's embedded model is checked by the
same front end as at compile time before onnxruntime sees it
(`checked_session`), so the reference never runs an op leac refuses (a
crafted Program could otherwise embed a `Loop` of 2^62 iterations); and every
run can be interrupted (`run_session`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from lea_compiler.errors import InvalidModelError
from lea_compiler.interruptible import run_interruptibly
from lea_compiler.onnx_frontend import import_model, names_external_data


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


def checked_session(model: bytes, source: str) -> ort.InferenceSession:
    """A session for a model that leac's front end accepts (`onnx_frontend.import_model`, as at compile time).

    A Program embeds the model it was compiled from, but a crafted Program can
    embed any model: checking it again (once per Program) keeps onnxruntime to
    the ops, opsets and tensor sizes leac compiles.

    Raises:
        InvalidModelError: the front end refuses the model (`source` names it), or onnxruntime cannot load it.
    """
    import_model(_parse(model), source)
    return ort_session(model)


def _parse(data: bytes) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # DecodeError and friends
        raise InvalidModelError(f"not a readable ONNX model ({exc})") from None


def run_session(session: ort.InferenceSession, feeds: Mapping[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """Run `session` on `feeds` and return every graph output by name.

    onnxruntime releases the GIL while it runs, so the run goes to a worker
    thread and this one keeps running signal handlers: Ctrl-C or SIGTERM stops
    it through onnxruntime's terminate flag (`interruptible.run_interruptibly`).

    Raises:
        InvalidModelError: onnxruntime cannot run the model on `feeds`.
    """
    names = [o.name for o in session.get_outputs()]
    options = ort.RunOptions()
    options.log_severity_level = 4  # the terminate flag's own error line
    arrays = {k: np.asarray(v) for k, v in feeds.items()}

    def stop() -> None:
        options.terminate = True

    try:
        results = run_interruptibly(lambda: session.run(names, arrays, options), stop, "leac-onnxruntime")
    except Exception as exc:  # onnxruntime raises its own InvalidArgument/Fail/RuntimeException types
        raise InvalidModelError(f"onnxruntime cannot run the model on these inputs: {exc}") from None
    return dict(zip(names, results, strict=True))


def run_onnxruntime(
    model: onnx.ModelProto | bytes | str | os.PathLike[str], feeds: Mapping[str, Any]
) -> dict[str, np.ndarray[Any, Any]]:
    """Run the model in onnxruntime and return every graph output by name (`run_session` of `ort_session`).

    Raises:
        InvalidModelError: onnxruntime cannot load the model, or cannot run it on `feeds`.
    """
    return run_session(ort_session(model), feeds)
