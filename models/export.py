"""Export a fitted pipeline to ONNX and prove that it reproduces scikit-learn.

The graph has at most two inputs so a worker can feed a batch with two array copies:
``num`` (float32, one column per numeric feature) and ``cat`` (string, one column per
categorical feature). Outputs are ``label`` (int64) and ``probabilities`` (float32, n × 2).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import (
    FloatTensorType,
    StringTensorType,
)
from sklearn.pipeline import Pipeline

from models.card import OnnxInfo, OnnxInput, ParityInfo
from models.errors import ExportError, ParityError

PARITY_TOLERANCE = 1e-4
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"


@dataclass(frozen=True)
class ExportedModel:
    """Serialized ONNX bytes and their interface description for the card."""

    payload: bytes
    info: OnnxInfo
    seconds: float


def onnx_inputs(numeric_names: Sequence[str], categorical_names: Sequence[str]) -> list[OnnxInput]:
    """The input tensors of the exported graph (empty groups get no input)."""
    out: list[OnnxInput] = []
    if numeric_names:
        out.append(OnnxInput(name="num", kind="numeric", columns=list(numeric_names)))
    if categorical_names:
        out.append(OnnxInput(name="cat", kind="categorical", columns=list(categorical_names)))
    return out


def make_session(payload: bytes, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session using ``threads`` intra-op threads and one inter-op thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(payload, sess_options=opts, providers=["CPUExecutionProvider"])


def export_onnx(
    pipeline: Pipeline, numeric_names: Sequence[str], categorical_names: Sequence[str]
) -> ExportedModel:
    """Convert a fitted pipeline (from :func:`models.training.build_pipeline`).

    Raises
    ------
    ExportError
        skl2onnx cannot convert the pipeline.
    """
    inputs = onnx_inputs(numeric_names, categorical_names)
    types = [
        (i.name, FloatTensorType([None, len(i.columns)]))
        if i.kind == "numeric"
        else (i.name, StringTensorType([None, len(i.columns)]))
        for i in inputs
    ]
    clf = pipeline.named_steps["clf"]
    start = time.perf_counter()
    try:
        onx = convert_sklearn(
            pipeline,
            initial_types=types,
            options={id(clf): {"zipmap": False}},
            final_types=None,
        )
    except Exception as exc:  # skl2onnx raises bare RuntimeError/TypeError/ValueError
        raise ExportError(f"skl2onnx could not convert {type(clf).__name__}: {exc}") from exc
    outputs = [o.name for o in onx.graph.output]
    if outputs != [LABEL_OUTPUT, PROBABILITY_OUTPUT]:
        raise ExportError(f"unexpected ONNX outputs {outputs}")
    payload = onx.SerializeToString()
    seconds = time.perf_counter() - start
    opset = max((o.version for o in onx.opset_import if o.domain in ("", "ai.onnx")), default=0)
    info = OnnxInfo(
        sha256=hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
        opset=int(opset),
        inputs=inputs,
        output_label=LABEL_OUTPUT,
        output_probability=PROBABILITY_OUTPUT,
    )
    return ExportedModel(payload=payload, info=info, seconds=seconds)


def onnx_feed(
    numeric: NDArray[np.float64], categorical: NDArray[np.generic], inputs: Sequence[OnnxInput]
) -> dict[str, NDArray[np.generic]]:
    """Input dict for a session from the numeric and categorical blocks of a batch."""
    feed: dict[str, NDArray[np.generic]] = {}
    for i in inputs:
        if i.kind == "numeric":
            feed[i.name] = np.ascontiguousarray(numeric, dtype=np.float32)
        else:
            feed[i.name] = np.asarray(categorical, dtype=str)
    return feed


def check_parity(
    exported: ExportedModel,
    pipeline: Pipeline,
    numeric: NDArray[np.float64],
    categorical: NDArray[np.object_],
    x: NDArray[np.generic],
    *,
    tolerance: float = PARITY_TOLERANCE,
) -> tuple[ParityInfo, NDArray[np.float32]]:
    """The parity gate: ONNX must match scikit-learn on the holdout.

    Returns
    -------
    info : ParityInfo
        The measured figures.
    p_onnx : ndarray of float32, shape (n, 2)
        ONNX probabilities on the holdout.

    Raises
    ------
    ParityError
        ``max |p_onnx - p_sklearn| > tolerance`` or any label differs (ONNX's own label
        output, or ``p_onnx > 0.5`` as the scorer decides).
    """
    start = time.perf_counter()
    session = make_session(exported.payload)
    labels, p_onnx = session.run(
        [LABEL_OUTPUT, PROBABILITY_OUTPUT], onnx_feed(numeric, categorical, exported.info.inputs)
    )
    p_skl = pipeline.predict_proba(x)
    y_skl = pipeline.predict(x)
    diff = float(np.max(np.abs(p_onnx.astype(np.float64) - p_skl))) if len(x) else 0.0
    scorer_labels = (p_onnx[:, 1] > 0.5).astype(np.int64)
    mismatches = int(np.sum((labels != y_skl) | (scorer_labels != y_skl)))
    if diff > tolerance or mismatches:
        raise ParityError(diff, mismatches, tolerance)
    seconds = exported.seconds + time.perf_counter() - start
    info = ParityInfo(
        rows=len(x),
        max_abs_diff=diff,
        labels_identical=True,
        tolerance=tolerance,
        export_seconds=seconds,
    )
    return info, p_onnx


__all__ = [
    "LABEL_OUTPUT",
    "PARITY_TOLERANCE",
    "PROBABILITY_OUTPUT",
    "ExportedModel",
    "check_parity",
    "export_onnx",
    "make_session",
    "onnx_feed",
    "onnx_inputs",
]
