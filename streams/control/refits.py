"""Refits after a drift: retrain on the post-drift labelled events each time they double.

The first candidate after a drift learns from the few events labelled since the drift
request (``retrain_min_rows``, 500 by default): enough to replace a champion of the old
concept, not enough to match a model trained on more of the new one. So when a candidate
trained on the post-drift window is promoted, the retrainer keeps a **refit schedule** in
Redis (``driftline:{<name>}:refit``): the start of that window, and the next milestone of
labelled events since it, twice the events the last candidate trained on (500, 1,000, 2,000,
4,000, … when each refit comes on time) up to ``refit_until`` and the window's size. At each
milestone the stage timer hands the retrainer a refit request (reason ``refit``, id
``<drift request>-refit-<milestone>``): it trains on the post-drift window only and goes
through the gates and the shadow test like any candidate, while the watch of the champion
before it still guards (:mod:`streams.control.stages`). A refit replaces a candidate of the
post-drift window still in shadow (its test would take long to tell two close models apart;
the refit has twice its events), so the milestones are never held up by a test.

The online challenger's request learns from the same window while a schedule runs; its
candidate moves the schedule on (:meth:`Refits.advance`: the next refit at twice its events),
so a refit still always has enough events to replace it. Either kind learnt from a superset
of the champion's events by the same recipe: its shadow test is one of non-inferiority
(``refit_margin``), which two models a point apart pass in about a thousand pairs where a test
for a gain would need several thousand.

The schedule is read and advanced only by the holder of the model's stepping lease, and a
refit's candidate is claimed per request id (SET NX), so a milestone gives one candidate
however many retrainers run.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.contracts.messages import RetrainRequest
from streams.contracts.names import refit_key, window_key
from streams.control.lifecycle import Lifecycle

REFIT_REASON = "refit"
# How many more post-drift rows a refit needs than the candidate in shadow to replace it: a
# test restarted for a few more rows would never end.
SUPERSEDE_FACTOR = 1.5  # a refit comes with twice the events of the one before


def next_milestone(rows: int, first: int) -> int:
    """The refit after a candidate trained on ``rows`` post-drift events: when there are twice
    as many (and at least ``2 · first``).

    Examples
    --------
    >>> next_milestone(500, 500), next_milestone(537, 500), next_milestone(1374, 500)
    (1000, 1074, 2748)
    """
    return 2 * max(rows, first)


class Refits:
    """The refit schedule of every model, in Redis."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.redis = lifecycle.redis
        self.settings = lifecycle.settings

    @property
    def last_milestone(self) -> int:
        """No refit past ``refit_until`` events, nor past what the window keeps."""
        return min(self.settings.refit_until, self.settings.window_size)

    async def plan(self, model: str) -> dict[str, Any]:
        """The model's schedule: ``since`` (UNIX s), ``origin`` (the drift request),
        ``next`` (labelled events), ``counted``, ``last`` (window id); empty when none."""
        raw = await self.redis.get(refit_key(model))
        return orjson.loads(raw) if raw else {}

    async def begin(self, model: str, since: float, rows: int, origin: str) -> None:
        """A candidate trained on ``rows`` events labelled since ``since`` was promoted: the
        next refit comes when there are twice as many (none past :attr:`last_milestone`)."""
        plan = await self.plan(model)
        if plan.get("since") != since:
            plan = {"since": since, "origin": origin, "counted": 0, "last": ""}
        await self._move_on(model, plan, rows)

    async def advance(self, model: str, rows: int) -> None:
        """A candidate of the scheduled window trained on ``rows`` events was staged (a refit,
        or the online challenger's request): the next refit comes when there are twice as
        many, so it always has enough events to replace that candidate in shadow."""
        plan = await self.plan(model)
        if plan:
            await self._move_on(model, plan, rows)

    async def _move_on(self, model: str, plan: dict[str, Any], rows: int) -> None:
        first = self.settings.retrain_min_rows
        plan["next"] = max(int(plan.get("next", 0)), next_milestone(rows, first))
        if plan["next"] > self.last_milestone:
            await self.end(model)
            return
        await self.redis.set(refit_key(model), orjson.dumps(plan))

    async def end(self, model: str) -> None:
        """No more refits for the model (until the next drift-triggered promotion)."""
        await self.redis.delete(refit_key(model))

    async def due(self, model: str, champion: str) -> RetrainRequest | None:
        """Count the events labelled since the last look; the refit request when they reached
        the next milestone (the schedule then moves on past them), else None."""
        plan = await self.plan(model)
        if not plan:
            return None
        last = plan.get("last") or ""
        start = f"({last}" if last else f"{int(plan['since'] * 1000)}-0"
        entries: list[Any] = await self.redis.xrange(window_key(model), min=start) or []
        if entries:
            plan["counted"] += len(entries)
            newest = entries[-1][0]
            plan["last"] = newest.decode() if isinstance(newest, bytes) else str(newest)
        counted, milestone = int(plan["counted"]), int(plan["next"])
        if counted < milestone:
            if entries:
                await self.redis.set(refit_key(model), orjson.dumps(plan))
            return None
        plan["next"] = next_milestone(counted, self.settings.retrain_min_rows)
        if plan["next"] > self.last_milestone:
            await self.end(model)
        else:
            await self.redis.set(refit_key(model), orjson.dumps(plan))
        return RetrainRequest(
            request_id=f"{plan['origin']}-refit-{milestone}",
            model=model,
            version=champion,
            reason=f"{REFIT_REASON}: {counted} events labelled since the drift",
            at=float(plan["since"]),
        )


__all__ = ["REFIT_REASON", "SUPERSEDE_FACTOR", "Refits", "next_milestone"]
