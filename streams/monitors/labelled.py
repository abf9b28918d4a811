"""What a model's monitors do with events once their label joined their prediction.

Label monitors (quality, fairness, slices, per version and variant), the training window
(events that kept their features, with their label), paired shadow outcomes (champion and
shadow right or wrong on the same event) and the online challenger, which learns each
labelled event after predicting it (progressive validation).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from monitoring.challenger import OnlineChallenger
from monitoring.findings import Finding
from monitoring.model_monitor import ModelMonitor
from streams.adapters.redis_state import RedisMonitorRecords
from streams.monitors.guard import RedisGuard


class LabelSide:
    """The label-side bookkeeping of one model's monitors."""

    def __init__(
        self,
        monitor: ModelMonitor,
        challenger: OnlineChallenger | None,
        records: RedisMonitorRecords,
        guard: RedisGuard,
    ) -> None:
        self.monitor = monitor
        self.challenger = challenger
        self.records = records
        self.guard = guard
        # (online challenger correct, champion correct) on the same labelled events
        self.online_pairs: deque[tuple[bool, bool]] = deque(maxlen=20_000)

    async def observe(self, joined: Sequence[tuple[str, Any, Any]]) -> list[Finding]:
        """Label monitors, training window and paired shadow outcomes of joined events.

        The window rows and shadow pairs go to Redis in one round trip.
        """
        classes = list(self.monitor.card.classes)
        by_scope: dict[tuple[str, str], list[tuple[int, int, float, Any, Any]]] = defaultdict(list)
        window: list[bytes] = []
        paired: dict[str, list[str]] = defaultdict(list)
        learn_rows: list[dict[str, Any]] = []
        learn_y: list[int] = []
        champion_ok: list[bool] = []
        for eid, payload, label in joined:
            y = classes.index(label) if isinstance(label, str) and label in classes else label
            if not isinstance(y, int) or y not in (0, 1):
                continue  # a label the model cannot have predicted: not comparable
            features = payload["f"]
            if features is not None:
                window.append(orjson.dumps({"id": eid, "f": features, "y": y}))
            correct: dict[str, tuple[str, bool]] = {}
            for version, variant, predicted, score, group, *sliced in payload["p"]:
                value = sliced[0] if sliced else None  # the slice value, if it was stored
                by_scope[(version, variant)].append((y, predicted, score, group, value))
                correct[variant] = (version, predicted == y)
            if "champion" in correct and features is not None:
                learn_rows.append(features)
                learn_y.append(y)
                champion_ok.append(correct["champion"][1])
            if "champion" in correct and "shadow" in correct:
                version, shadow_ok = correct["shadow"]
                paired[version].append(f"{int(correct['champion'][1])}{int(shadow_ok)}")
        findings: list[Finding] = []
        for (version, variant), rows in by_scope.items():
            y_true, y_pred, scores, groups, values = zip(*rows, strict=True)
            has_groups = any(g is not None for g in groups)
            has_values = any(v is not None for v in values)
            findings += self.monitor.observe_labels(
                np.array(y_true, dtype=np.int64),
                np.array(y_pred, dtype=np.int64),
                np.array(scores, dtype=np.float64),
                np.array(groups, dtype=object) if has_groups else None,
                version,
                variant,
                slices=list(values) if has_values else None,
            )
        if self.challenger is not None and learn_rows:
            # progressive validation: each row is predicted before the challenger learns it
            challenger_ok = self.challenger.learn(learn_rows, learn_y)
            self.online_pairs.extend(zip(challenger_ok.tolist(), champion_ok, strict=True))
        await self.guard("window", self.records.keep(window, paired))
        return findings


__all__ = ["LabelSide"]
