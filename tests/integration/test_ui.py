"""``driftline ui`` as a process on the real Redis, spoken to over real HTTP.

Its token, its refusal to change anything, its policy against other origins, its JSON and
report pages, and its alerts feed: server-sent events of what the real alert sink appends,
resumed exactly after ``Last-Event-ID``, on one Redis server and on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.data import synthetic
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.adapters.redis_alerts import RedisAlertSink
from streams.adapters.redis_client import async_redis
from streams.config.settings import load_settings
from streams.control.lifecycle import Lifecycle
from streams.scoring.routing import Routing, save_routing
from tests.conftest import Endpoints
from tests.waiting import wait_until

URL_LINE = re.compile(r"driftline console at http://([\d.]+):(\d+)/")
TOKEN = "s3cret-token"


class Console:
    """A running ``driftline ui``: where it listens, and plain HTTP requests to it."""

    def __init__(self, host: str, port: int, registry: Path) -> None:
        self.host, self.port, self.registry = host, port, registry

    def get(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def feed(self, path: str, headers: dict[str, str] | None = None) -> Feed:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        assert answer.getheader("content-type", "").startswith("text/event-stream")
        return Feed(conn, answer)


class Feed:
    """Server-sent events read off one open response, one at a time."""

    def __init__(self, conn: http.client.HTTPConnection, answer: http.client.HTTPResponse):
        self.conn, self.answer = conn, answer

    def next(self) -> dict[str, str]:
        """The next event's fields (comments skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = self.answer.readline().decode().rstrip("\n")
            if not line:
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    def close(self) -> None:
        self.conn.close()


async def _record(redis_url: str, registry: Path, model: str) -> None:
    """Two decisions of the retrainer, recorded as it records them."""
    lifecycle = Lifecycle(load_settings(registry=registry), redis_url)
    try:
        await lifecycle.record(model, "gates", version="1", passed=True)
        await lifecycle.record(model, "promote", version="1", reason="sequential test")
    finally:
        await lifecycle.redis.aclose()


def _register(root: Path, model: str) -> Registry:
    registry = Registry(root / "registry")
    ds = synthetic("agrawal", rows=800, seed=1)
    result = train(ds, TrainOptions(name=model, folds=3, seed=1))
    registry.promote(model, registry.register(result.payload, result.card).version)
    return registry


@pytest.fixture
def console(
    request: pytest.FixtureRequest, services: Endpoints, unique: str, tmp_path: Path
) -> Iterator[tuple[Console, str]]:
    """A console (with ``TOKEN`` when the test is parametrized so) over one model, on the
    test's ``any_redis`` when it takes one, else on the session's server."""
    model = f"ui-{unique}"
    registry = _register(tmp_path, model)
    redis_url = (
        str(request.getfixturevalue("any_redis"))
        if "any_redis" in request.fixturenames
        else services.redis
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(DRIFTLINE_REDIS_URL=redis_url, DRIFTLINE_REGISTRY=str(registry.root))
    if getattr(request, "param", None) == "token":
        env["DRIFTLINE_UI_TOKEN"] = TOKEN
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "ui", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:

        def printed() -> re.Match[str] | None:
            assert proc.poll() is None, log.read_text()
            return URL_LINE.search(log.read_text())

        found = wait_until("driftline ui to print its address", printed, 60)
        yield Console(found.group(1), int(found.group(2)), registry.root), model
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("console", ["token"], indirect=True)
def test_with_a_token_every_request_needs_it_and_nothing_can_change(
    console: tuple[Console, str],
) -> None:
    ui, model = console
    assert ui.host == "127.0.0.1", "loopback unless told otherwise"
    for path in ("/", "/api/models", f"/report/{model}", "/static/console.js"):
        status, _, body = ui.get(path)
        assert status == 401, (path, status)
        assert b"DRIFTLINE_UI_TOKEN" in body
    status, _, _ = ui.get("/api/models", headers={"Authorization": "Bearer wrong"})
    assert status == 401

    status, headers, body = ui.get("/api/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    [listed] = [m for m in orjson.loads(body) if m["name"] == model]
    assert listed["aliases"] == {"champion": "1"} and listed["routing"]["mode"] == "off"
    assert "default-src 'self'" in headers["content-security-policy"]

    # once in the address, then a cookie: the token leaves the address bar
    status, headers, _ = ui.get(f"/?token={TOKEN}&x=1")
    assert status == 303 and headers["location"] == "/?x=1", headers
    cookie = headers["set-cookie"].split(";")[0]
    assert "httponly" in headers["set-cookie"].lower()
    status, _, body = ui.get("/", headers={"Cookie": cookie})
    assert status == 200 and b"/static/console.js" in body

    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = ui.get("/api/models", method, {"Cookie": cookie})
        assert status == 405 and headers["allow"] == "GET, HEAD", method


def test_pages_api_and_the_live_feed_resumed_after_the_last_event(
    any_redis: str, console: tuple[Console, str]
) -> None:
    ui, model = console
    status, _, body = ui.get(f"/api/models/{model}")
    assert status == 200, body
    detail = orjson.loads(body)
    assert detail["versions"] == ["1"] and detail["points"] == [] and detail["alerts"] == []
    assert detail["records"] == [] and detail["health"] is None

    # what the retrainer and the command line write shows at the next request
    registry = Registry(ui.registry)
    save_routing(registry, model, Routing(mode="canary", percent=10.0))
    asyncio.run(_record(any_redis, ui.registry, model))
    detail = orjson.loads(ui.get(f"/api/models/{model}")[2])
    assert detail["routing"] == {"mode": "canary", "percent": 10.0}
    assert [r["kind"] for r in detail["records"]] == ["promote", "gates"], "newest first"
    assert ("promote", "1", "sequential test") in {
        (c["action"], c["version"], c["reason"]) for c in detail["changes"]
    }
    status, _, body = ui.get("/api/models/no-such-model")
    assert status == 404 and b"no-such-model" in body
    status, _, body = ui.get(f"/report/{model}")
    assert status == 200 and model.encode() in body and b"<html" in body
    assert ui.get("/api/models/x?points=0")[0] == 400

    def alert(kind: str, feature: str, other: str | None = None) -> dict[str, Any]:
        return {
            "alert_id": f"{kind}-{feature}",
            "kind": kind,
            "model": other or model,
            "version": "1",
            "feature": feature,
            "detector": "psi",
            "statistic": 0.5,
            "threshold": 0.2,
            "at": 1.0,
        }

    async def emit(*alerts: dict[str, Any]) -> None:
        client = async_redis(any_redis, None)
        try:
            await RedisAlertSink(client, cooldown_s=60, maxlen=1000).emit(alerts)
        finally:
            await client.aclose()

    feed = ui.feed(f"/api/alerts/stream?model={model}")
    try:
        assert feed.next()["event"] == "ready"
        asyncio.run(emit(alert("data_drift", "salary", other=f"{model}-other")))
        asyncio.run(emit(alert("data_drift", "salary")))
        first = feed.next()
        assert first["event"] == "alert", first
        sent = orjson.loads(first["data"])
        assert sent["model"] == model and sent["stream_id"] == first["id"], "filtered by model"
    finally:
        feed.close()

    # two more while nobody listens: a reconnection gets exactly those, in order
    asyncio.run(emit(alert("fairness", "age"), alert("data_drift", "loan")))
    again = ui.feed(f"/api/alerts/stream?model={model}", {"Last-Event-ID": first["id"]})
    try:
        assert again.next()["event"] == "ready"
        missed = [orjson.loads(again.next()["data"]) for _ in range(2)]
    finally:
        again.close()
    got = [(a["kind"], a["feature"]) for a in missed]
    assert got == [("fairness", "age"), ("data_drift", "loan")]
    assert missed[0]["stream_id"] > first["id"]

    status, _, body = ui.get(f"/api/alerts?model={model}&kind=data_drift")
    assert status == 200
    listed = orjson.loads(body)
    assert [a["feature"] for a in listed] == ["loan", "salary"], "newest first, filtered"
