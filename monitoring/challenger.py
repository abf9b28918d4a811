"""An online challenger: a River learner that learns from every labelled event of a model.

The challenger sees the same raw feature rows as the served model and, label by label, keeps
learning. It is evaluated by *progressive validation*: each labelled row is first predicted,
then learnt, so every prediction is made on a row the learner had not seen — its metrics are
honest out-of-sample figures, directly comparable with the champion's on the same events.

Two learners:

``logreg``
    Numeric features standardised online (River ``StandardScaler``; a missing value is left
    out, which after scaling is mean imputation), categorical features one-hot encoded
    (``name=value``, so unseen categories get their own weight), and a River
    ``LogisticRegression`` trained by SGD with a constant learning rate. Its snapshot holds
    the scaler statistics, weights, intercept and optimizer step count exactly (JSON floats
    round-trip), so a restored learner predicts exactly as the original. ~10 µs per event.
``hoeffding``
    River's ``HoeffdingAdaptiveTreeClassifier`` on raw values (categoricals as nominal
    attributes). A tree is not JSON, so its snapshot keeps the last ``replay_limit``
    labelled rows and :meth:`OnlineChallenger.restore` replays them into a fresh tree with the
    same seed: identical when fewer rows than that were learnt, otherwise a tree of the most
    recent ``replay_limit`` rows (for a learner meant to follow drift, a fair substitute).
    ~50–100 µs per event.

Metrics (``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc``, ``log_loss``, ``count``)
are cumulative (exact counts) and rolling over the last ``window`` labels, in the same shape
as :meth:`monitoring.model_monitor.ModelMonitor.metrics` gives the champion's.
"""

from __future__ import annotations

import collections
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from river import linear_model, optim, preprocessing, tree, utils

from models.card import ModelCard
from monitoring.errors import BatchError, MonitorConfigError, SnapshotError
from monitoring.metrics import ClassificationCounts, RollingBuffer, classification_summary

ChallengerKind = Literal["logreg", "hoeffding"]
CHALLENGER_SCHEMA_VERSION = 1
_NO_GROUP = -1


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class OnlineChallenger:
    """A River online learner with progressive-validation metrics and a JSON snapshot.

    Parameters
    ----------
    card : ModelCard
        The served model's card (feature schema; the challenger learns the same features).
    kind : {"logreg", "hoeffding"}
        The learner (see the module docstring).
    seed : int
        Seed of the tree (``hoeffding``).
    learning_rate : float
        SGD learning rate of ``logreg`` (weights and intercept).
    l2 : float
        L2 penalty of ``logreg``.
    window : int
        Labels in the rolling metrics.
    replay_limit : int
        Rows kept to rebuild a ``hoeffding`` tree on restore.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.gates import dataset_rows
    >>> from models.workflow import TrainOptions, train
    >>> card = train(synthetic("sea", rows=300, seed=1), TrainOptions(name="sea", folds=3)).card
    >>> live = synthetic("sea", rows=3000, seed=2)
    >>> challenger = OnlineChallenger(card, "logreg")
    >>> rows = dataset_rows(live)
    >>> for s in range(0, 3000, 500):
    ...     _ = challenger.learn(rows[s : s + 500], live.y[s : s + 500])
    >>> m = challenger.metrics()
    >>> m["labels"], m["rolling"]["accuracy"] > 0.9
    (3000, True)
    >>> import orjson
    >>> twin = OnlineChallenger(card, "logreg")
    >>> twin.restore(orjson.loads(orjson.dumps(challenger.snapshot())))
    >>> bool((twin.predict_proba(rows[:100]) == challenger.predict_proba(rows[:100])).all())
    True
    """

    def __init__(
        self,
        card: ModelCard,
        kind: ChallengerKind = "logreg",
        seed: int = 0,
        *,
        learning_rate: float = 0.05,
        l2: float = 0.0,
        window: int = 1000,
        replay_limit: int = 2000,
    ) -> None:
        if kind not in ("logreg", "hoeffding"):
            raise MonitorConfigError(
                f"unknown challenger kind {kind!r}; use logreg or hoeffding",
                option="kind",
                value=kind,
            )
        for option, value in (
            ("learning_rate", learning_rate),
            ("window", window),
            ("replay_limit", replay_limit),
        ):
            if value <= 0:
                raise MonitorConfigError(f"{option} must be > 0", option=option, value=value)
        if l2 < 0:
            raise MonitorConfigError("l2 must be >= 0", option="l2", value=l2)
        self.card = card
        self.kind: ChallengerKind = kind
        self.seed = seed
        self.learning_rate = learning_rate
        self.l2 = l2
        self.window = window
        self.replay_limit = replay_limit
        self._num = [f.name for f in card.features if f.kind == "numeric"]
        self._cat = [f.name for f in card.features if f.kind == "categorical"]
        self._fresh()

    # -- learners -------------------------------------------------------------------------
    def _fresh(self) -> None:
        self.labels = 0
        self._counts = ClassificationCounts()
        self._rolling = RollingBuffer(self.window)
        # River's methods are untyped; the learners are handled as Any.
        self._scaler: Any = preprocessing.StandardScaler()
        self._lr = self._new_logreg()
        self._tree: Any = tree.HoeffdingAdaptiveTreeClassifier(seed=self.seed)
        self._replay: deque[tuple[dict[str, Any], int]] = deque(maxlen=self.replay_limit)

    def _new_logreg(self) -> Any:
        return linear_model.LogisticRegression(
            optimizer=optim.SGD(self.learning_rate),
            l2=self.l2,
            intercept_lr=self.learning_rate,
        )

    def _split(self, row: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
        num: dict[str, float] = {}
        for name in self._num:
            v = _number(row.get(name))
            if v is not None:
                num[name] = v
        cat: dict[str, str] = {}
        for name in self._cat:
            c = row.get(name)
            if c is not None and c != "":
                cat[name] = str(c)
        return num, cat

    def _linear_input(self, num: dict[str, float], cat: dict[str, str]) -> dict[str, float]:
        z: dict[str, float] = self._scaler.transform_one(num)
        for name, value in cat.items():
            z[f"{name}={value}"] = 1.0
        return z

    def _proba_one(self, num: dict[str, float], cat: dict[str, str]) -> float:
        if self.kind == "logreg":
            return float(self._lr.predict_proba_one(self._linear_input(num, cat))[True])
        x: dict[str, Any] = {**num, **cat}
        return float(self._tree.predict_proba_one(x).get(1, 0.0))

    def _learn_one(self, num: dict[str, float], cat: dict[str, str], y: int) -> None:
        if self.kind == "logreg":
            # As a River pipeline does: the scaler learns the row, then the model learns it.
            self._scaler.learn_one(num)
            self._lr.learn_one(self._linear_input(num, cat), bool(y))
            return
        x: dict[str, Any] = {**num, **cat}
        self._tree.learn_one(x, y)
        self._replay.append((x, y))

    # -- public API -----------------------------------------------------------------------
    def learn(
        self, rows: Sequence[Mapping[str, Any]], y: Sequence[int] | NDArray[Any]
    ) -> NDArray[np.bool_]:
        """Predict then learn each labelled row in order (progressive validation).

        Parameters
        ----------
        rows : sequence of mapping
            Raw feature rows as in events (``None`` or an absent key is a missing value).
        y : sequence of int
            0/1 labels.

        Returns
        -------
        ndarray of bool
            Whether the challenger's prediction (made before learning the row) was right; pair
            it with the champion's correctness on the same events.

        Raises
        ------
        BatchError
            ``rows`` and ``y`` differ in length, or a label is not 0/1.
        """
        labels = np.asarray(y, dtype=np.int64).ravel()
        if labels.shape[0] != len(rows):
            raise BatchError(f"{len(rows)} rows but {labels.shape[0]} labels")
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise BatchError("labels must be 0 or 1")
        p = np.empty(labels.shape[0], dtype=np.float64)
        for i, (row, label) in enumerate(zip(rows, labels.tolist(), strict=True)):
            num, cat = self._split(row)
            p[i] = self._proba_one(num, cat)
            self._learn_one(num, cat, label)
        pred = (p > 0.5).astype(np.int64)
        self._counts.add(labels, pred, p)
        self._rolling.add(labels, pred, p, np.full(labels.shape[0], _NO_GROUP, dtype=np.int64))
        self.labels += int(labels.shape[0])
        return np.asarray(pred == labels, dtype=np.bool_)

    def predict_proba(self, rows: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
        """Positive-class probability of each row (no learning)."""
        out = np.empty(len(rows), dtype=np.float64)
        for i, row in enumerate(rows):
            out[i] = self._proba_one(*self._split(row))
        return out

    def metrics(self) -> dict[str, Any]:
        """Progressive-validation metrics: ``kind``, ``labels``, ``cumulative``, ``rolling``."""
        y, yp, p, _ = self._rolling.ordered()
        return {
            "kind": self.kind,
            "labels": self.labels,
            "cumulative": self._counts.summary(),
            "rolling": classification_summary(y, yp, p),
        }

    # -- state ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-able state (see the module docstring for what each kind keeps)."""
        state: dict[str, Any] = {
            "schema_version": CHALLENGER_SCHEMA_VERSION,
            "model": self.card.name,
            "kind": self.kind,
            "features": {"numeric": self._num, "categorical": self._cat},
            "params": {
                "seed": self.seed,
                "learning_rate": self.learning_rate,
                "l2": self.l2,
                "window": self.window,
                "replay_limit": self.replay_limit,
            },
            "labels": self.labels,
            "counts": self._counts.snapshot(),
            "rolling": self._rolling.snapshot(),
        }
        if self.kind == "logreg":
            state["scaler"] = {
                "counts": dict(self._scaler.counts),
                "means": dict(self._scaler.means),
                "vars": dict(self._scaler.vars),
            }
            state["weights"] = self._lr._weights.to_dict()
            state["intercept"] = float(self._lr.intercept)
            state["steps"] = int(self._lr.optimizer.n_iterations)
        else:
            state["replay"] = [[x, y] for x, y in self._replay]
        return state

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`; the snapshot's learner settings replace these.

        Raises
        ------
        SnapshotError
            Another schema version, model, kind or feature schema, or a malformed state.
        """
        if state.get("schema_version") != CHALLENGER_SCHEMA_VERSION:
            raise SnapshotError(
                f"challenger snapshot schema_version {state.get('schema_version')!r} "
                f"is not {CHALLENGER_SCHEMA_VERSION}",
                found=state.get("schema_version"),
            )
        features = {"numeric": self._num, "categorical": self._cat}
        for key, want in (("model", self.card.name), ("kind", self.kind), ("features", features)):
            if state.get(key) != want:
                raise SnapshotError(
                    f"challenger snapshot is for {key} {state.get(key)!r}, not {want!r}",
                    found=state.get(key),
                )
        try:
            params = state["params"]
            self.seed = int(params["seed"])
            self.learning_rate = float(params["learning_rate"])
            self.l2 = float(params["l2"])
            self.window = int(params["window"])
            self.replay_limit = int(params["replay_limit"])
            self._fresh()
            self.labels = int(state["labels"])
            self._counts.restore(state["counts"])
            self._rolling.restore(state["rolling"])
            if self.kind == "logreg":
                self._restore_logreg(state)
            else:
                for x, y in state["replay"]:
                    self._tree.learn_one(x, int(y))
                    self._replay.append((x, int(y)))
        except (KeyError, TypeError, ValueError) as exc:
            self._fresh()
            raise SnapshotError(f"malformed challenger snapshot: {exc!r}") from exc

    def _restore_logreg(self, state: Mapping[str, Any]) -> None:
        scaler = state["scaler"]
        self._scaler.counts = collections.Counter(
            {str(k): int(v) for k, v in scaler["counts"].items()}
        )
        self._scaler.means = collections.defaultdict(
            float, {str(k): float(v) for k, v in scaler["means"].items()}
        )
        self._scaler.vars = collections.defaultdict(
            float, {str(k): float(v) for k, v in scaler["vars"].items()}
        )
        self._lr._weights = utils.VectorDict(
            {str(k): float(v) for k, v in state["weights"].items()}
        )
        self._lr.intercept = float(state["intercept"])
        self._lr.optimizer.n_iterations = int(state["steps"])


__all__ = ["CHALLENGER_SCHEMA_VERSION", "ChallengerKind", "OnlineChallenger"]
