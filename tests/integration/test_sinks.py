"""Alert sinks against real receivers: every alert arrives once per sink, across a crash and a
restart of ``driftline sinks``.

The receivers are real servers on loopback: an aiohttp web server standing for a generic
webhook, Slack and PagerDuty's Events API, which refuses the first attempts at every alert
(503) and can go down altogether, and an aiosmtpd SMTP server that answers the first attempt
at every email "451, try again later". Alerts are raised the way the monitors raise them
(:class:`streams.adapters.redis_alerts.RedisAlertSink` on the session's Redis), and the
delivering process is the real command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client.parser import text_string_to_metric_families

from monitoring.findings import Finding
from streams.adapters.redis_alerts import RedisAlertSink
from streams.adapters.redis_client import AsyncClient, as_text, async_redis
from streams.contracts.names import (
    ALERTS_KEY,
    HEALTH_FIELD,
    health_key,
    sink_group,
    sink_open_hash,
)
from streams.monitors.alerts import encode_alert
from tests.conftest import Endpoints
from tests.waiting import wait_until_async

TIMEOUT_S = 90.0


@dataclass
class HttpReceiver:
    """Webhook, Slack and PagerDuty on one loopback server; ``fail_first`` 503s per request
    key, and every request gets a 503 while ``down``; a body with ``"feature": "poison"``
    gets a 400 on ``/hook``."""

    fail_first: int = 2
    down: bool = False
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.strip("/")
        body = await request.json()
        key = request.headers.get("Idempotency-Key", "")
        self.attempts[(path, key)] += 1
        if self.down or self.attempts[(path, key)] <= self.fail_first:
            self.refused[path] += 1
            return web.Response(status=503, text="try later")
        if path == "hook" and body.get("feature") == "poison":
            self.refused[path] += 1
            return web.Response(status=400, text="no poison here")
        self.accepted.setdefault(path, []).append(body)
        if path == "pd":
            return web.json_response(
                {"status": "success", "dedup_key": body["dedup_key"]}, status=202
            )
        return web.Response(text="ok")

    def ids(self, path: str) -> Counter[str]:
        """Alert ids accepted on ``path`` (PagerDuty triggers by their alert id)."""
        out: Counter[str] = Counter()
        for body in self.accepted.get(path, []):
            if path == "pd":
                if body["event_action"] == "trigger":
                    out[body["payload"]["custom_details"]["alert_id"]] += 1
            elif path == "slack":
                out[body["blocks"][2]["elements"][0]["text"].split("`")[1]] += 1
            else:
                out[body["alert_id"]] += 1
        return out

    def resolves(self) -> Counter[str]:
        return Counter(
            b["dedup_key"] for b in self.accepted.get("pd", []) if b["event_action"] == "resolve"
        )


class MailBox:
    """An aiosmtpd handler: keeps every message; the first DATA of each alert gets a 451."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.tries: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(  # noqa: N802 (aiosmtpd's name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        msg = message_from_bytes(content, policy=default_policy)
        alert_id = str(msg["X-Driftline-Alert-Id"])
        with self.lock:
            self.tries[alert_id] += 1
            if self.tries[alert_id] == 1:
                return "451 4.3.0 try again later"
            self.messages.append(msg)
        return "250 OK"

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(str(m["X-Driftline-Alert-Id"]) for m in self.messages)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    app = web.Application()
    app.router.add_post("/{path}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}"
    yield receiver
    await runner.cleanup()


@pytest.fixture
def mailbox() -> Iterator[tuple[MailBox, int]]:
    box = MailBox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class Deliverer:
    """``driftline sinks`` as a process of its own, its output in a log file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        """Start a run, under a consumer name of its own (as a pod restarted elsewhere)."""
        self.runs += 1
        with (self.root / "sinks.log").open("ab") as log:
            log.write(f"--- run {self.runs}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "sinks"],
                env={
                    **self.env,
                    "DRIFTLINE_WORKER_ID": f"{self.env['DRIFTLINE_WORKER_ID']}-{self.runs}",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )

    def stop(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.proc = None
        return code

    def log(self) -> str:
        return (self.root / "sinks.log").read_text(errors="replace")[-6000:]

    async def get(self, path: str) -> tuple[int, bytes] | None:
        """``path`` of the process's HTTP server (None until it serves)."""
        assert self.proc is not None
        assert self.proc.poll() is None, f"driftline sinks exited\n{self.log()}"
        port_file = self.root / ".driftline" / "metrics" / f"sinks-{self.proc.pid}.json"
        try:
            port = orjson.loads(port_file.read_bytes())["port"]
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}{path}") as resp,
            ):
                return resp.status, await resp.read()
        except (OSError, ValueError, KeyError, aiohttp.ClientError):
            return None

    async def health(self) -> dict[str, Any] | None:
        got = await self.get("/health")
        return None if got is None else dict(orjson.loads(got[1]))

    async def metrics(self) -> dict[tuple[str, str], float]:
        got = await self.get("/metrics")
        assert got is not None and got[0] == 200
        return {
            (s.name, s.labels["sink"]): s.value
            for family in text_string_to_metric_families(got[1].decode())
            for s in family.samples
            if "sink" in s.labels
        }


async def groups_done(redis: AsyncClient, names: list[str]) -> bool:
    """Every sink's group exists and has read and acknowledged every entry."""
    groups = {as_text(g["name"]): g for g in await redis.xinfo_groups(ALERTS_KEY)}
    wanted = [groups.get(sink_group(n)) for n in names]
    return all(g is not None and int(g["pending"]) == 0 and int(g["lag"] or 0) == 0 for g in wanted)


async def test_every_alert_reaches_every_sink_once_across_a_crash_and_a_restart(
    services: Endpoints,
    unique: str,
    tmp_path: Path,
    http_receiver: HttpReceiver,
    mailbox: tuple[MailBox, int],
) -> None:
    box, smtp_port = mailbox
    model, other = f"sinks-{unique}", f"other-{unique}"
    names = [f"{n}-{unique}" for n in ("hook", "chat", "pager", "mail")]
    hook, chat, pager, mail = names
    fast = {"first_backoff_s": 0.05, "max_backoff_s": 0.2, "failing_after": 3, "models": [model]}
    url = http_receiver.url
    sinks = {
        hook: {"type": "webhook", "url": f"{url}/hook", **fast},
        chat: {"type": "slack", "url": f"{url}/slack", "kinds": ["data_drift"], **fast},
        pager: {
            "type": "pagerduty",
            "routing_key": "test-routing-key",
            "url": f"{url}/pd",
            "min_severity": "error",
            **fast,
        },
        mail: {
            "type": "smtp",
            "host": "127.0.0.1",
            "port": smtp_port,
            "sender": "driftline@example.com",
            "to": ["oncall@example.com"],
            **fast,
        },
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DRIFTLINE_") or k in ("DRIFTLINE_KAFKA_BOOTSTRAP",)
    }
    env.update(
        DRIFTLINE_REDIS_URL=services.redis,
        DRIFTLINE_SINKS=json.dumps(sinks),
        DRIFTLINE_SINKS_METRICS_PORT="0",
        DRIFTLINE_METRICS_HOST="127.0.0.1",
        DRIFTLINE_SINKS_RESOLVE_INTERVAL_S="0.2",
        DRIFTLINE_SINKS_CLAIM_AFTER_S="1",
        DRIFTLINE_WORKER_ID=f"sinks-{unique}",
        DRIFTLINE_DATA_DIR=str(tmp_path / ".driftline"),
    )
    redis = async_redis(services.redis, None)
    raise_alerts = RedisAlertSink(redis, cooldown_s=600, maxlen=10_000)
    deliverer = Deliverer(tmp_path, env)
    expected: dict[str, set[str]] = {n: set() for n in names}

    async def emit(*findings: tuple[str, Finding]) -> list[str]:
        alerts = [encode_alert(m, f, time.time()) for m, f in findings]
        assert len(await raise_alerts.emit(alerts)) == len(alerts)
        for a in alerts:
            if a["model"] != model:
                continue
            expected[mail].add(a["alert_id"])
            if a["feature"] != "poison":
                expected[hook].add(a["alert_id"])
            if a["kind"] == "data_drift":
                expected[chat].add(a["alert_id"])
            if a["kind"] in ("performance", "concept_drift", "fairness"):
                expected[pager].add(a["alert_id"])
        return [a["alert_id"] for a in alerts]

    def received() -> dict[str, Counter[str]]:
        return {
            hook: http_receiver.ids("hook"),
            chat: http_receiver.ids("slack"),
            pager: http_receiver.ids("pd"),
            mail: box.ids(),
        }

    def arrived(*only: str) -> bool:
        got = received()
        return all(set(got[n]) >= expected[n] for n in (only or names))

    def detail() -> str:
        return f"expected {expected}\nreceived {received()}\n{deliverer.log()}"

    def drift(feature: str) -> Finding:
        return Finding("data_drift", "psi", 0.4, 0.2, feature=feature, details={"version": "1"})

    def perf(kind: str = "performance", version: str = "1") -> Finding:
        return Finding(kind, "f1_drop", 0.6, 0.7, details={"version": version})  # type: ignore[arg-type]

    try:
        deliverer.start()

        async def ready() -> bool:
            h = await deliverer.health()
            return h is not None and h["status"] == "ok"

        await wait_until_async("the sinks' groups", ready, TIMEOUT_S, 0.1, deliverer.log)

        # 1. every sink gets what it routes, after the receivers' refusals
        await emit(
            (model, drift("x1")),
            (model, perf()),
            (model, drift("poison")),  # the webhook refuses it for good: dropped, not retried
            (other, drift("x1")),  # another model: routed nowhere
        )
        await wait_until_async("first alerts delivered", arrived, TIMEOUT_S, 0.1, detail)
        await wait_until_async("all acknowledged", lambda: groups_done(redis, names), TIMEOUT_S)
        assert http_receiver.attempts[("hook", next(iter(expected[hook])))] == 3
        assert http_receiver.refused["hook"] >= 2 * 2 + 1

        # 2. the HTTP receivers go down: email still flows, the HTTP sinks report failing
        http_receiver.down = True
        await emit((model, drift("x2")), (model, perf("concept_drift")))
        await wait_until_async(
            "email while HTTP is down", lambda: arrived(mail), TIMEOUT_S, 0.1, detail
        )

        async def failing() -> dict[str, Any] | None:
            h = await deliverer.health()
            ok = h and all(h["sinks"][n]["status"] == "failing" for n in (hook, chat, pager))
            return h if ok else None

        down = await wait_until_async("the HTTP sinks failing", failing, TIMEOUT_S, 0.1, detail)
        status = await deliverer.get("/health")
        assert status is not None and status[0] == 503
        assert down["status"] == "failing" and down["sinks"][mail]["status"] == "ok"
        assert "HTTP 503" in down["sinks"][hook]["last_error"]
        metrics = await deliverer.metrics()
        assert metrics[("driftline_sink_failing", hook)] == 1.0
        assert metrics[("driftline_sink_failing", mail)] == 0.0
        assert metrics[("driftline_sink_failures_total", hook)] >= 3
        assert metrics[("driftline_sink_dropped_total", hook)] == 1.0
        assert metrics[("driftline_sink_delivered_total", hook)] == 2.0

        # 3. a crash while the HTTP sinks retry (email is all acknowledged first: nothing of
        #    it is in flight), then more alerts while nothing delivers; the next run, under
        #    another consumer name, takes over what the dead one left
        await wait_until_async("email acknowledged", lambda: groups_done(redis, [mail]), TIMEOUT_S)
        assert deliverer.stop(signal.SIGKILL) == -signal.SIGKILL
        await emit((model, drift("x3")), (model, perf("fairness")))
        http_receiver.down = False
        deliverer.start()
        await wait_until_async("everything after the crash", arrived, TIMEOUT_S, 0.1, detail)
        await wait_until_async("all acknowledged", lambda: groups_done(redis, names), TIMEOUT_S)

        # 4. a graceful restart, alerts raised while it is stopped
        assert deliverer.stop(signal.SIGTERM) == 0
        await emit((model, drift("x4")), (model, perf(version="2")))  # the same condition
        deliverer.start()
        await wait_until_async("everything after the restart", arrived, TIMEOUT_S, 0.1, detail)
        await wait_until_async("all acknowledged", lambda: groups_done(redis, names), TIMEOUT_S)

        # every alert once per sink: nothing twice, nothing missing, nothing unrouted
        got = received()
        for n in names:
            assert dict(got[n]) == dict.fromkeys(expected[n], 1), n
        assert len(expected[hook]) == 8 and len(expected[mail]) == 9
        assert len(expected[chat]) == 5 and len(expected[pager]) == 4
        assert box.tries and all(t == 2 for t in box.tries.values())  # each retried once

        # 5. PagerDuty: the monitors publish a health without the performance condition but
        #    with the others: the first is resolved once, the others stay open
        assert not http_receiver.resolves()
        health = {
            "at": time.time(),
            "status": "alerting",
            "active": [
                {"kind": "concept_drift", "feature": None, "detector": "adwin"},
                {"kind": "fairness", "feature": None, "detector": "dp_gap"},
            ],
        }
        await redis.hset(health_key(model), HEALTH_FIELD, orjson.dumps(health))
        perf_key = f"driftline:{model}:performance:-"
        await wait_until_async(
            "the performance incident resolved",
            lambda: http_receiver.resolves()[perf_key] == 1,
            TIMEOUT_S,
            0.1,
            detail,
        )
        await emit((model, drift("x5")))  # one more round of the runner: no second resolve
        await wait_until_async("the last alert", arrived, TIMEOUT_S, 0.1, detail)
        await wait_until_async("all acknowledged", lambda: groups_done(redis, names), TIMEOUT_S)
        assert http_receiver.resolves() == Counter({perf_key: 1})
        final = await deliverer.metrics()
        assert final[("driftline_sink_resolved_total", pager)] == 1.0
        assert final[("driftline_sink_backlog_alerts", pager)] >= 0
        assert deliverer.stop(signal.SIGTERM) == 0
    finally:
        if deliverer.proc is not None:
            deliverer.proc.kill()
            deliverer.proc.wait()
        await redis.delete(health_key(model), sink_open_hash(pager))
        for n in names:
            await redis.xgroup_destroy(ALERTS_KEY, sink_group(n))
        await redis.aclose()


async def test_delivery_on_a_redis_cluster_resumes_under_another_consumer(
    redis_cluster: str, unique: str, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    """The scripts keep their keys in the alerts stream's slot; a service stopped with an
    alert in retry leaves it to the next, which delivers it once."""
    from streams.config.settings import Settings
    from streams.sinks.service import SinkService

    model, name = f"cluster-{unique}", f"hook-{unique}"
    sink = {"type": "webhook", "url": f"{http_receiver.url}/hook", "models": [model]}
    sinks = {name: {**sink, "first_backoff_s": 0.05, "max_backoff_s": 0.1}}

    def settings(consumer: str) -> Settings:
        return Settings(
            sinks=sinks,  # type: ignore[arg-type]
            worker_id=consumer,
            sinks_metrics_port=0,
            metrics_host="127.0.0.1",
            sinks_claim_after_s=0.5,
            data_dir=tmp_path,
        )

    redis = async_redis(redis_cluster, None)
    raise_alerts = RedisAlertSink(redis, cooldown_s=600, maxlen=10_000)
    ids: list[str] = []

    async def emit(feature: str) -> None:
        alert = encode_alert(model, Finding("data_drift", "psi", 0.4, 0.2, feature=feature), 0.0)
        assert await raise_alerts.emit([alert])
        ids.append(alert["alert_id"])

    try:
        first = SinkService(settings("a"), redis)
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        await wait_until_async("the group", first.runners[0].ready.wait, TIMEOUT_S)
        await emit("x1")
        await wait_until_async("x1", lambda: set(ids) <= set(http_receiver.ids("hook")), TIMEOUT_S)
        http_receiver.down = True
        await emit("x2")
        await wait_until_async("x2 refused", lambda: http_receiver.refused["hook"] > 3, TIMEOUT_S)
        stop.set()
        await task  # stopped between two attempts: x2 stays pending, with consumer a
        http_receiver.down = False
        await emit("x3")
        second = SinkService(settings("b"), redis)
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))
        await wait_until_async(
            "x2 and x3", lambda: set(ids) <= set(http_receiver.ids("hook")), TIMEOUT_S
        )
        await wait_until_async("acknowledged", lambda: groups_done(redis, [name]), TIMEOUT_S)
        stop.set()
        await task
        assert dict(http_receiver.ids("hook")) == dict.fromkeys(ids, 1)
    finally:
        await redis.xgroup_destroy(ALERTS_KEY, sink_group(name))
        await redis.aclose()
