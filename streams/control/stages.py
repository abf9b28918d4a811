"""The stages after a candidate passed its gates: shadow, then promotion and a watch.

- In **shadow** the challenger scores live traffic while a paired, always-valid sequential test
  (mSPRT) compares it with the champion on the same labelled events. The test promotes or
  rejects it.
- After any promotion (by the test or by hand) the new champion is **watched**: if its live
  accuracy falls below the previous champion's by a margin, it is rolled back automatically;
  after ``watch_s`` it is stable. A candidate staged during a watch (a refit, the online
  challenger's request) carries the watch in its shadow stage; the watch goes on judging the
  champion and, on a rollback, drops the candidate; a rejected candidate leaves it going.
- A promoted candidate of the post-drift window starts (or moves on) the model's refit schedule
  (:mod:`streams.control.refits`).

:class:`StageStepper` advances a model by what was observed since its last step; the retrainer
steps every model on a timer (:mod:`streams.control.retrainer`). However many retrainers run,
each decision is acted on once: a model is stepped by the holder of its lease in Redis only,
and promotions and rollbacks are compare-and-set in the registry (the alias must still point
where the decision saw it), so a retrainer that lost its lease while paused is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from models.errors import AliasMovedError
from monitoring.sequential import PairedMSPRT
from streams.contracts.messages import ModelUpdate
from streams.contracts.names import champion_seen_key, health_key, pairs_key
from streams.control.lifecycle import Lifecycle
from streams.control.refits import Refits
from streams.scoring.routing import Routing, save_routing

log = logging.getLogger("driftline.retrainer")

# How long one retrainer may step a model before another may (a step can train a candidate
# for a deferred request); the registry's compare-and-set still refuses a late second action.
LEASE_S = 300.0
# A candidate being registered (phase "staging") for longer than this was left by a crash.
STAGING_STALE_S = 600.0


class StageStepper:
    """Steps each model through shadow → promote (or reject) → watch → stable (or rollback).

    ``on_refit(model, champion)`` runs first in every stage but ``staging``: the retrainer
    handles a refit whose milestone came (:mod:`streams.control.refits`) and says whether it
    did. ``on_idle(model)`` runs whenever a model is in no stage: the retrainer retries a
    deferred request there, before a promotion by hand is looked for.

    A candidate staged during a watch (a refit, the online challenger's request) carries
    that watch in its shadow stage: the champion it is tested against is still rolled back
    if it does worse than the one before, and the candidate is then dropped with it.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        on_idle: Callable[[str], Awaitable[None]],
        on_refit: Callable[[str, str], Awaitable[bool]] | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.settings = lifecycle.settings
        self.registry = lifecycle.registry
        self.redis = lifecycle.redis
        self.on_idle = on_idle
        self.on_refit = on_refit
        self.refits = Refits(lifecycle)

    async def step(self, model: str) -> None:
        """Advance the model's stage by what has been observed since the last step (unless
        another retrainer is stepping it)."""
        token = await self.lifecycle.lease(model, LEASE_S)
        if token is None:
            return
        try:
            await self._step(model)
        except AliasMovedError as exc:
            log.info("%s: %s", model, exc)  # the other retrainer's decision stands
        finally:
            await self.lifecycle.release(model, token)

    async def _step(self, model: str) -> None:
        stage = await self.lifecycle.stage(model)
        aliases = self.registry.aliases(model)
        champion = aliases["champion"].version if "champion" in aliases else None
        refit = self.on_refit if stage.get("phase") != "staging" else None
        if refit is not None and champion is not None and await refit(model, champion):
            stage = await self.lifecycle.stage(model)
        if not stage:
            await self.on_idle(model)
            seen_key = champion_seen_key(model)
            raw = await self.redis.get(seen_key)
            seen = raw.decode() if isinstance(raw, bytes) else raw
            await self.redis.set(seen_key, champion or "")
            if seen and champion and seen != champion:
                await self._start_watch(model, champion, seen, None)
            return
        if stage["phase"] == "staging":
            if time.time() - stage["since"] > STAGING_STALE_S:
                # its retrainer died registering; a watch it carried goes on
                if stage.get("watch"):
                    await self.lifecycle.set_stage(model, **stage["watch"])
                else:
                    await self.lifecycle.clear_stage(model)
        elif stage["phase"] == "shadow":
            await self._step_shadow(model, stage)
        elif stage["phase"] == "watch":
            await self._step_watch(model, stage)

    async def _step_shadow(self, model: str, stage: dict[str, Any]) -> None:
        version = stage["version"]
        watch = stage.get("watch")
        if watch:
            verdict, reason = await self._judge(model, watch)
            if verdict == "rollback":
                await self._rollback(model, watch, reason)
                save_routing(self.registry, model, Routing())
                why = f"its champion {watch['version']} was rolled back"
                update = ModelUpdate(model=model, action="reject", version=version, reason=why)
                await self.lifecycle.record(
                    model, "reject", version=version, reason=why, update=update
                )
                return
            if verdict == "stable":
                await self._stable(model, watch)
                del stage["watch"]
        after = stage.get("last_pair") or ""
        start = f"({after}" if after else "-"
        entries: list[Any] = await self.redis.xrange(pairs_key(model, version), min=start) or []
        pairs: list[bytes] = [fields[b"p"] for _, fields in entries]
        test = PairedMSPRT(**self.settings.sequential)
        test.restore(stage["test"])
        if pairs:
            champ = np.array([p[0:1] == b"1" for p in pairs], dtype=bool)
            cand = np.array([p[1:2] == b"1" for p in pairs], dtype=bool)
            test.update(cand, champ)
            last = entries[-1][0]
            stage["last_pair"] = last.decode() if isinstance(last, bytes) else str(last)
            stage["champion_correct"] = stage.get("champion_correct", 0) + int(champ.sum())
            stage["pairs"] = stage.get("pairs", 0) + len(pairs)
        stage["test"] = test.snapshot()
        decision = test.decision
        if decision == "continue":
            await self.lifecycle.set_stage(model, **stage)
            return
        record = self.lifecycle.record
        stats = test.statistics()
        await record(model, "test", version=version, decision=decision, statistics=stats)
        save_routing(self.registry, model, Routing())
        if decision == "reject":
            than = f"champion {stage['champion']}" + (f" - {test.margin:g}" if test.margin else "")
            reason = f"sequential test: not better than {than} ({stats})"
            if stage.get("watch"):
                await self.lifecycle.set_stage(model, **stage["watch"])  # the watch goes on
            else:
                await self.lifecycle.clear_stage(model)
            await record(
                model,
                "reject",
                version=version,
                reason=reason,
                update=ModelUpdate(model=model, action="reject", version=version, reason=reason),
            )
            return
        previous = stage["champion"]
        self.registry.promote(model, version, "champion", if_current=previous)
        if stage.get("window_since") is not None:  # trained on the events since a drift
            origin = str(stage.get("request_id") or version)
            await self.refits.begin(model, stage["window_since"], int(stage["rows"]), origin)
        baseline = stage["champion_correct"] / max(stage["pairs"], 1)
        await record(
            model,
            "promote",
            version=version,
            previous=previous,
            reason="sequential test",
            baseline_accuracy=baseline,
            update=ModelUpdate(model=model, action="promote", version=version, alias="champion"),
        )
        await self._start_watch(model, version, previous, baseline)

    async def _start_watch(
        self, model: str, version: str, previous: str, baseline: float | None
    ) -> None:
        if baseline is None:
            baseline = (await self.live(model, previous))[0]
        await self.redis.set(champion_seen_key(model), version)
        await self.lifecycle.set_stage(
            model,
            phase="watch",
            version=version,
            previous=previous,
            baseline=baseline,
            until=time.time() + self.settings.watch_s,
        )
        await self.lifecycle.record(
            model,
            "stage",
            version=version,
            stage="watch",
            previous=previous,
            baseline_accuracy=baseline,
        )

    async def _step_watch(self, model: str, stage: dict[str, Any]) -> None:
        verdict, reason = await self._judge(model, stage)
        if verdict == "rollback":
            await self._rollback(model, stage, reason)
        elif verdict == "stable":
            await self.lifecycle.clear_stage(model)
            await self._stable(model, stage)

    async def _judge(self, model: str, watch: dict[str, Any]) -> tuple[str, str]:
        """``rollback`` (and why), ``stable`` or ``continue``: the watch's verdict now."""
        accuracy, labels = await self.live(model, watch["version"])
        baseline = watch.get("baseline")
        margin = self.settings.rollback_margin
        if (
            baseline is not None
            and accuracy is not None
            and labels >= self.settings.rollback_min_labels
            and accuracy < baseline - margin
        ):
            return "rollback", (
                f"live accuracy {accuracy:.3f} over {labels} labels < previous champion's "
                f"{baseline:.3f} - {margin:g}"
            )
        if time.time() > watch["until"]:
            return "stable", ""
        return "continue", ""

    async def _rollback(self, model: str, watch: dict[str, Any], reason: str) -> None:
        restored = self.registry.rollback(model, if_current=watch["version"])
        await self.redis.set(champion_seen_key(model), restored)
        await self.lifecycle.clear_stage(model)
        await self.refits.end(model)  # refits of a champion that did worse would follow it
        await self.lifecycle.record(
            model,
            "rollback",
            version=watch["version"],
            restored=restored,
            reason=reason,
            update=ModelUpdate(
                model=model,
                action="rollback",
                version=restored,
                alias="champion",
                reason=reason,
            ),
        )

    async def _stable(self, model: str, watch: dict[str, Any]) -> None:
        accuracy, labels = await self.live(model, watch["version"])
        await self.lifecycle.record(
            model,
            "stage",
            version=watch["version"],
            stage="stable",
            accuracy=accuracy,
            labels=labels,
        )

    async def live(self, model: str, version: str) -> tuple[float | None, int]:
        """Rolling accuracy and labels of ``version`` as champion, over every worker."""
        workers = await self.redis.hgetall(health_key(model))
        total, weighted = 0, 0.0
        for raw in workers.values():
            scope = orjson.loads(raw).get("metrics", {}).get(f"{version}/champion")
            if not scope:
                continue
            rolling = scope.get("rolling", {})
            count, accuracy = rolling.get("count") or 0, rolling.get("accuracy")
            if count and accuracy is not None:
                total += count
                weighted += count * accuracy
        return (weighted / total if total else None), total


__all__ = ["StageStepper"]
