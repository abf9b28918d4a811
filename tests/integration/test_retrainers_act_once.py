"""Three retrainers, one decision each time: one candidate per request, one rollback per watch.

Every retrainer here is a real :class:`~streams.control.retrainer.Retrainer` on the session's
real Redis and one registry on disk, as retrainers on several hosts share them; they act
concurrently on the same model, and also one of them late, on what it saw before the others
acted (a retrainer paused past its lease).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from models.data import synthetic
from models.errors import AliasMovedError
from models.gate_config import GateConfig
from models.history import History
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.config.settings import load_settings
from streams.contracts.messages import RetrainRequest
from streams.contracts.names import health_key, window_key
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
        rollback_min_labels=100,
        rollback_margin=0.05,
    )
    return [Retrainer(settings, services.kafka, services.redis) for _ in range(n)]


async def _close(retrainers: list[Retrainer]) -> None:
    for r in retrainers:
        await r.redis.aclose()


def test_three_retrainers_give_one_request_one_candidate(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"once-{unique}"
    registry = _registry_with(tmp_path / "registry", model, versions=1)
    retrainers = _retrainers(services, registry)
    ds = synthetic("sea", rows=1200, seed=9)
    request = RetrainRequest(
        request_id=f"r-{unique}", model=model, version="1", reason="challenger better"
    )

    async def run() -> tuple[list[str], str]:
        redis = retrainers[0].redis
        for i in range(len(ds)):
            row = {"f": dict(zip(ds.numeric_names, ds.numeric[i].tolist(), strict=True))}
            await redis.xadd(window_key(model), {"row": orjson.dumps({**row, "y": int(ds.y[i])})})
        try:
            outcomes = await asyncio.gather(*(r.handle(request) for r in retrainers))
            # the stage ends (rejected, say); the request comes again (a redelivery)
            await retrainers[0].lifecycle.clear_stage(model)
            again = await retrainers[1].handle(request)
            return sorted(outcomes), again
        finally:
            await _close(retrainers)

    outcomes, again = asyncio.run(run())
    assert outcomes.count("shadow") == 1, outcomes
    assert again == "skipped"
    assert registry.versions(model) == ["1", "2"], "one candidate, registered once"
    staged = [e for e in History(registry.root).read(model) if e["kind"] == "stage"]
    assert len(staged) == 1 and staged[0]["version"] == "2"


def test_three_retrainers_roll_a_bad_champion_back_once(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"once-{unique}"
    registry = _registry_with(tmp_path / "registry", model, versions=3)  # champion 3
    retrainers = _retrainers(services, registry)
    watch = {
        "phase": "watch",
        "version": "3",
        "previous": "2",
        "baseline": 0.9,
        "until": time.time() + 600,
    }
    worse = {"metrics": {"3/champion": {"rolling": {"count": 500, "accuracy": 0.6}}}}

    async def run() -> None:
        redis = retrainers[0].redis
        await redis.hset(health_key(model), "w1", orjson.dumps(worse))
        await retrainers[0].lifecycle.set_stage(model, **watch)
        try:
            await asyncio.gather(*(r.stages.step(model) for r in retrainers))
            # a retrainer that paused past its lease acts on the watch it saw before
            with pytest.raises(AliasMovedError):
                await retrainers[2].stages._step_watch(model, dict(watch))
        finally:
            await _close(retrainers)

    asyncio.run(run())
    champion = registry.aliases(model)["champion"]
    assert champion.version == "2", "rolled back once: to 2, not through 2 to 1"
    assert [e.action for e in champion.history].count("rollback") == 1
    rollbacks = [e for e in History(registry.root).read(model) if e["kind"] == "rollback"]
    assert len(rollbacks) == 1
