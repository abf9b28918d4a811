"""After a drift-triggered promotion: refits as post-drift labels double, candidates that the
watch does not hold back, and a watch that still guards.

Real :class:`~streams.control.retrainer.Retrainer` objects on the session's real Redis and one
registry on disk, three of them at once where one action per decision is at stake.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from models.data import synthetic
from models.gate_config import GateConfig
from models.history import History
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.config.settings import load_settings
from streams.contracts.messages import RetrainRequest
from streams.contracts.names import health_key, pairs_key, window_key
from streams.control.retrainer import Retrainer
from tests.conftest import Endpoints

OPEN_GATES = GateConfig(
    min_cv_f1=0.0, max_cv_f1_std=1.0, min_improvement=-1.0, max_dp_gap=None, max_eo_gap=None
)


def _registry_with(root: Path, model: str, versions: int) -> Registry:
    registry = Registry(root)
    result = train(synthetic("sea", rows=600, seed=2), TrainOptions(name=model, folds=3, seed=2))
    for _ in range(versions):
        version = registry.register(result.payload, result.card).version
        registry.promote(model, version)
    return registry


def _retrainers(services: Endpoints, registry: Registry, n: int = 3) -> list[Retrainer]:
    settings = load_settings(
        registry=registry.root,
        gates=OPEN_GATES,
        retrain_min_rows=500,
        refit_until=4000,
        rollback_min_labels=100,
        rollback_margin=0.05,
        sequential={"min_pairs": 5000},  # no test decides here: the stages stay as staged
    )
    return [Retrainer(settings, services.kafka, services.redis) for _ in range(n)]


def _one_retrainer(
    services: Endpoints, tmp_path: Path, model: str, versions: int
) -> tuple[Registry, Retrainer]:
    """A registry whose champion is version ``versions``, and one retrainer on it."""
    registry = _registry_with(tmp_path / "registry", model, versions)
    return registry, _retrainers(services, registry, n=1)[0]


async def _label(retrainer: Retrainer, model: str, rows: int, seed: int, at: str = "*") -> None:
    """Add ``rows`` labelled events to the model's window (``at``: their ids' time, ms)."""
    ds = synthetic("sea", rows=rows, seed=seed)
    for i in range(rows):
        row = {"f": dict(zip(ds.numeric_names, ds.numeric[i].tolist(), strict=True))}
        entry = {"row": orjson.dumps({**row, "y": int(ds.y[i])})}
        await retrainer.redis.xadd(window_key(model), entry, id=at if at == "*" else f"{at}-{i}")


def _watch(version: str, previous: str, baseline: float = 0.9) -> dict[str, Any]:
    return {
        "phase": "watch",
        "version": version,
        "previous": previous,
        "baseline": baseline,
        "until": time.time() + 600,
    }


def _history(registry: Registry, model: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in History(registry.root).read(model) if e["kind"] == kind]


def test_a_refit_follows_each_doubling_of_the_post_drift_labels_once(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"refit-{unique}"
    registry = _registry_with(tmp_path / "registry", model, versions=2)  # champion 2
    retrainers = _retrainers(services, registry)
    first = retrainers[0]
    since = time.time()

    async def step_all() -> None:
        await asyncio.gather(*(r.stages.step(model) for r in retrainers))

    async def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        try:
            await _label(first, model, 300, seed=3, at=str(int(since * 1000) - 60_000))
            # the first post-drift candidate (trained on 500 events) was promoted: watched
            await first.lifecycle.set_stage(model, **_watch("2", "1"))
            await first.refits.begin(model, since, rows=500, origin="drift-1")
            await _label(first, model, 900, seed=4)
            await step_all()
            assert registry.versions(model) == ["1", "2"], "900 < 1000: no refit yet"
            await _label(first, model, 200, seed=5)
            await step_all()
            staged = await first.lifecycle.stage(model)
            plan = await first.refits.plan(model)
            await _label(first, model, 1100, seed=6)  # twice what the refit trained on
            await step_all()
            return staged, plan, await first.lifecycle.stage(model)
        finally:
            for r in retrainers:
                await r.redis.aclose()

    staged, plan, superseding = asyncio.run(run())
    requests = [e["request_id"] for e in _history(registry, model, "request")]
    assert requests == ["drift-1-refit-1000", "drift-1-refit-2200"], "one per milestone"
    assert staged["phase"] == "shadow" and staged["version"] == "3"
    assert staged["rows"] == 1100, "the post-drift events only, not the 300 before"
    assert staged["watch"]["version"] == "2", "the champion's watch goes on in the shadow"
    assert plan["next"] == 2200
    assert superseding["version"] == "4" and superseding["rows"] == 2200
    assert superseding["watch"]["version"] == "2"
    rejected = _history(registry, model, "reject")
    assert [r["version"] for r in rejected] == ["3"] and "superseded by 4" in rejected[0]["reason"]
    assert registry.versions(model) == ["1", "2", "3", "4"], "one candidate per milestone"


def test_while_refits_are_scheduled_the_challengers_candidate_moves_them_on(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"ahead-{unique}"
    registry, retrainer = _one_retrainer(services, tmp_path, model, versions=2)
    since = time.time()
    better = "challenger +0.040 accuracy over 1500 labels (p=1e-9)"

    async def run() -> tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        try:
            await _label(retrainer, model, 400, seed=9, at=str(int(since * 1000) - 60_000))
            await retrainer.lifecycle.set_stage(model, **_watch("2", "1"))
            await retrainer.refits.begin(model, since, rows=500, origin="drift-2")
            await _label(retrainer, model, 1500, seed=10)
            request = RetrainRequest(
                request_id=f"c-{unique}", model=model, version="2", reason=better
            )
            outcome = await retrainer.handle(request)
            staged = await retrainer.lifecycle.stage(model)
            plan = await retrainer.refits.plan(model)
            await retrainer.stages.step(model)  # 1,500 labelled: past 1,000, not past 3,000
            return outcome, staged, plan, _history(registry, model, "request")
        finally:
            await retrainer.redis.aclose()

    outcome, staged, plan, requests = asyncio.run(run())
    assert outcome == "shadow"
    assert staged["rows"] == 1500, "the challenger learns from the post-drift window only"
    assert staged["test"]["params"]["margin"] == 0.01, "tested as a refit: no worse than - 0.01"
    assert plan["next"] == 3000, "the next refit comes at twice what the candidate learnt from"
    assert [r["request_id"] for r in requests] == [f"c-{unique}"], "no refit at 1,000 after it"


def test_a_drift_candidate_is_tested_for_a_gain_not_with_the_refit_margin(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"gain-{unique}"
    _, retrainer = _one_retrainer(services, tmp_path, model, versions=2)
    since = time.time()

    async def run() -> tuple[str, dict[str, Any]]:
        try:
            await _label(retrainer, model, 600, seed=11)
            request = RetrainRequest(
                request_id=f"d-{unique}",
                model=model,
                version="2",
                reason="concept_drift (cusum)",
                at=since - 1,
            )
            return await retrainer.handle(request), await retrainer.lifecycle.stage(model)
        finally:
            await retrainer.redis.aclose()

    outcome, staged = asyncio.run(run())
    assert outcome == "shadow" and staged["rows"] == 600
    assert staged["test"]["params"]["margin"] == 0.0


def test_the_watch_defers_a_drift_request_but_not_the_challenger_and_still_rolls_back(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"watch-{unique}"
    registry, retrainer = _one_retrainer(services, tmp_path, model, versions=3)
    worse = {"metrics": {"3/champion": {"rolling": {"count": 500, "accuracy": 0.6}}}}

    def request(reason: str, request_id: str) -> RetrainRequest:
        return RetrainRequest(request_id=request_id, model=model, version="3", reason=reason)

    async def run() -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        try:
            await _label(retrainer, model, 800, seed=7)
            await retrainer.lifecycle.set_stage(model, **_watch("3", "2"))
            drift = await retrainer.handle(request("concept_drift (cusum)", f"d-{unique}"))
            better = await retrainer.handle(
                request("challenger +0.050 accuracy over 800 labels (p=1e-9)", f"c-{unique}")
            )
            shadow = await retrainer.lifecycle.stage(model)
            # the champion does worse than the one before it: rolled back, its challenger too
            await retrainer.redis.hset(health_key(model), "w1", orjson.dumps(worse))
            await retrainer.stages.step(model)
            return drift, better, shadow, await retrainer.lifecycle.stage(model)
        finally:
            await retrainer.redis.aclose()

    drift, better, shadow, after = asyncio.run(run())
    assert drift == "deferred"
    assert better == "shadow", "a better model is not held back by the watch"
    assert shadow["version"] == "4" and shadow["watch"]["version"] == "3"
    assert registry.aliases(model)["champion"].version == "2", "the worse champion rolled back"
    assert after == {}
    assert [r["version"] for r in _history(registry, model, "rollback")] == ["3"]
    assert "was rolled back" in _history(registry, model, "reject")[-1]["reason"]


def test_a_candidate_the_test_rejects_leaves_the_watch_going(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"keep-{unique}"
    registry = _registry_with(tmp_path / "registry", model, versions=3)  # champion 3
    base = _retrainers(services, registry, n=1)[0]
    quick = base.settings.model_copy(update={"sequential": {"min_pairs": 200}})
    retrainer = Retrainer(quick, services.kafka, services.redis)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            await _label(retrainer, model, 800, seed=8)
            await retrainer.lifecycle.set_stage(model, **_watch("3", "2"))
            better = "challenger +0.050 accuracy over 800 labels (p=1e-9)"
            request = RetrainRequest(
                request_id=f"c-{unique}", model=model, version="3", reason=better
            )
            assert await retrainer.handle(request) == "shadow"
            staged = await retrainer.lifecycle.stage(model)
            # live, the candidate is wrong where the champion is right: significantly worse
            for _ in range(300):
                await retrainer.redis.xadd(pairs_key(model, staged["version"]), {"p": b"10"})
            await retrainer.stages.step(model)
            return staged, await retrainer.lifecycle.stage(model)
        finally:
            await retrainer.redis.aclose()
            await base.redis.aclose()

    staged, after = asyncio.run(run())
    assert staged["phase"] == "shadow" and staged["watch"]["version"] == "3"
    assert after == _watch("3", "2") | {"until": staged["watch"]["until"]}, "the watch goes on"
    assert registry.aliases(model)["champion"].version == "3"
    assert "not better than champion 3" in _history(registry, model, "reject")[-1]["reason"]
