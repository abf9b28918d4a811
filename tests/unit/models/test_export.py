"""ONNX export and the parity gate."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.base import clone

from models.data import Dataset
from models.errors import ExportError, ParityError
from models.export import check_parity, export_onnx, make_session
from models.training import build_pipeline


def _fit(ds: Dataset, kind: str, seed: int = 0):  # type: ignore[no-untyped-def]
    pipe = build_pipeline(kind, len(ds.numeric_names), len(ds.categorical_names), seed=seed)
    return pipe.fit(ds.matrix(), ds.y)


@pytest.mark.parametrize("kind", ["logreg", "rf", "gbdt"])
def test_every_estimator_passes_parity(agrawal: Dataset, kind: str) -> None:
    model = _fit(agrawal, kind)
    exported = export_onnx(model, agrawal.numeric_names, agrawal.categorical_names)
    info, p_onnx = check_parity(
        exported, model, agrawal.numeric, agrawal.categorical, agrawal.matrix()
    )
    assert info.max_abs_diff <= 1e-4 and info.labels_identical
    assert info.rows == len(agrawal)
    assert p_onnx.shape == (len(agrawal), 2)
    assert exported.info.size_bytes == len(exported.payload)
    assert [i.name for i in exported.info.inputs] == ["num", "cat"]


def test_parity_gate_fails_with_the_figure(agrawal: Dataset) -> None:
    model = _fit(agrawal, "logreg")
    exported = export_onnx(model, agrawal.numeric_names, agrawal.categorical_names)
    other = clone(model).fit(agrawal.matrix()[::2], agrawal.y[::2])  # a different model
    with pytest.raises(ParityError, match=r"max \|p_onnx - p_sklearn\| = ") as info:
        check_parity(exported, other, agrawal.numeric, agrawal.categorical, agrawal.matrix())
    assert info.value.max_abs_diff > 1e-4
    assert info.value.tolerance == 1e-4


def test_parity_tolerance_is_enforced(agrawal: Dataset) -> None:
    model = _fit(agrawal, "gbdt")
    exported = export_onnx(model, agrawal.numeric_names, agrawal.categorical_names)
    with pytest.raises(ParityError):
        check_parity(
            exported, model, agrawal.numeric, agrawal.categorical, agrawal.matrix(), tolerance=0.0
        )


def test_unconvertible_pipeline_raises_export_error(agrawal: Dataset) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = _fit(agrawal, "gbdt")
    model.steps[-1] = (
        "clf",
        HistGradientBoostingClassifier(max_iter=5).fit(
            model[:-1].transform(agrawal.matrix()), agrawal.y
        ),
    )
    with pytest.raises(ExportError, match="could not convert HistGradientBoostingClassifier"):
        export_onnx(model, agrawal.numeric_names, agrawal.categorical_names)


def test_session_threads_are_configurable(agrawal: Dataset) -> None:
    model = _fit(agrawal, "logreg")
    payload = export_onnx(model, agrawal.numeric_names, agrawal.categorical_names).payload
    session = make_session(payload, threads=2)
    assert isinstance(session, ort.InferenceSession)
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    assert np.isfinite(
        session.run(
            None,
            {
                "num": agrawal.numeric[:3].astype(np.float32),
                "cat": agrawal.categorical[:3].astype(str),
            },
        )[1]
    ).all()
