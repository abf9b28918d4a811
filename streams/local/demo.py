"""``driftline demo``: the whole loop on embedded defaults, live in the terminal.

Starts local services, trains a model on Agrawal, runs a worker and a retrainer, streams
labelled events, injects a concept drift (and a shift in ``salary``), and shows the events/s,
the latest predictions, live accuracy, the alerts as they fire, the retrain request, the gates,
the shadow stage and the promotion. Everything it started is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from models.data import synthetic
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.adapters.kafka_admin import create_topics
from streams.adapters.redis_client import async_redis, sync_redis
from streams.config.settings import Settings, load_settings
from streams.contracts.names import (
    ALERT_DEDUPE_PREFIX,
    ALERTS_KEY,
    events_key,
    join_prefix,
    model_prefix,
)
from streams.local.producer import dataset_events
from streams.local.services import LocalServices

TOPICS = (
    "monitor-input",
    "events",
    "predictions",
    "labels",
    "drift-alerts",
    "retrain-requests",
    "model-updates",
    "events-dlq",
)
_SETTING = {
    "monitor-input": "TOPIC_MONITOR",
    "events": "TOPIC_EVENTS",
    "predictions": "TOPIC_PREDICTIONS",
    "labels": "TOPIC_LABELS",
    "drift-alerts": "TOPIC_ALERTS",
    "retrain-requests": "TOPIC_RETRAIN_REQUESTS",
    "model-updates": "TOPIC_MODEL_UPDATES",
    "events-dlq": "TOPIC_DLQ",
}


@dataclass
class DemoState:
    """What the screen shows."""

    phase: str = "starting"
    sent: int = 0
    predicted: int = 0
    correct: dict[str, list[int]] = field(default_factory=dict)  # phase -> [right, total]
    latest: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=4))
    alerts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    champion: str = "1"
    rate: float = 0.0
    promoted_at: float | None = None
    drift_at: float | None = None

    def accuracy(self, phase: str) -> float | None:
        right, total = self.correct.get(phase, [0, 0])
        return right / total if total else None


class Demo:
    """Runs the demo; ``quick`` shortens every phase (used by the test suite)."""

    def __init__(self, settings: Settings, *, quick: bool, broker: str, console: Console) -> None:
        self.settings = settings
        self.quick = quick
        self.broker = broker
        self.console = console
        self.run_id = uuid.uuid4().hex[:8]
        self.home = (settings.data_dir / "demo").resolve()
        self.model = "credit"
        self.topics = {t: f"demo-{self.run_id}-{t}" for t in TOPICS}
        self.state = DemoState()
        self.truth: dict[str, tuple[int, str]] = {}
        self.procs: list[subprocess.Popen[bytes]] = []

    # -- setup --------------------------------------------------------------------------
    def _env(self, services: LocalServices) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        env.update({f"DRIFTLINE_{_SETTING[t]}": name for t, name in self.topics.items()})
        env.update(
            DRIFTLINE_KAFKA_BOOTSTRAP=services.kafka_bootstrap(),
            DRIFTLINE_REDIS_URL=services.redis_url(),
            DRIFTLINE_REGISTRY=str(self.home / "registry"),
            DRIFTLINE_DATA_DIR=str(self.home),
            DRIFTLINE_MODEL=self.model,
            DRIFTLINE_WORKER_ID=f"demo-{self.run_id}",
            DRIFTLINE_MONITOR=orjson.dumps({"window": 500, "min_labels": 300}).decode(),
            DRIFTLINE_SNAPSHOT_INTERVAL_S="0.5",
            DRIFTLINE_WINDOW_SIZE="1500",
            DRIFTLINE_RETRAIN_MIN_ROWS="600",
            DRIFTLINE_RETRAIN_POLICY=orjson.dumps({"min_interval_s": 20}).decode(),
            DRIFTLINE_SEQUENTIAL=orjson.dumps({"min_pairs": 200}).decode(),
            DRIFTLINE_STAGE_INTERVAL_S="0.5",
            DRIFTLINE_WATCH_S="30",
            # Agrawal's labels depend on age by construction: its group gaps are in the data.
            DRIFTLINE_GATES=orjson.dumps({"max_dp_gap": None, "max_eo_gap": None}).decode(),
            DRIFTLINE_LOG_LEVEL="WARNING",
        )
        return env

    def _fresh_start(self, redis_url: str) -> None:
        """Forget an earlier demo: its registry and its model's state in Redis."""
        shutil.rmtree(self.home / "registry", ignore_errors=True)
        client = sync_redis(redis_url, self.settings)
        try:
            for pattern in (
                f"{model_prefix(self.model)}:*",
                f"{join_prefix(self.model)}:*",
                f"{ALERT_DEDUPE_PREFIX}{self.model}:*",
            ):
                keys = list(client.scan_iter(match=pattern, count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()

    def _train(self) -> str:
        registry = Registry(self.home / "registry")
        ds = synthetic("agrawal", rows=3000, seed=1, concept=5)
        result = train(ds, TrainOptions(name=self.model, estimator="rf", folds=3, seed=1))
        version = registry.register(result.payload, result.card).version
        registry.promote(self.model, version)
        self.console.print(
            f"trained {self.model}@{version} (random forest, Agrawal): CV F1 "
            f"{result.card.metrics.cv['f1'].mean:.3f}, ONNX parity "
            f"{result.card.parity.max_abs_diff:.1e}"
        )
        return version

    def _spawn(self, command: str, env: dict[str, str]) -> None:
        log = (self.home / f"{command}-{self.run_id}.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "streams.cli", command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def _stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    # -- run ----------------------------------------------------------------------------
    def run(self) -> int:
        """Run the whole demo; return its exit code."""
        self.home.mkdir(parents=True, exist_ok=True)
        services = LocalServices(self.settings.model_copy(update={"data_dir": self.home}))
        self.console.print(f"starting {self.broker} and Redis on loopback ...")
        t0 = time.monotonic()
        status = services.up(broker=self.broker)  # type: ignore[arg-type]
        self.console.print(f"services up in {time.monotonic() - t0:.1f}s")
        for name, entry in status.items():
            if entry.get("program"):
                self.console.print(f"  {name}: {entry['program']}", markup=False)
        try:
            env = self._env(services)
            self._fresh_start(env["DRIFTLINE_REDIS_URL"])
            asyncio.run(create_topics(env["DRIFTLINE_KAFKA_BOOTSTRAP"], self.topics.values(), 4))
            self.state.champion = self._train()
            self._spawn("worker", env)
            self._spawn("retrainer", env)
            return asyncio.run(self._live(env))
        finally:
            self._stop_all()
            stopped = services.down()
            self.console.print(f"stopped worker, retrainer and {', '.join(stopped) or 'nothing'}")

    async def _live(self, env: dict[str, str]) -> int:
        bootstrap, redis_url = env["DRIFTLINE_KAFKA_BOOTSTRAP"], env["DRIFTLINE_REDIS_URL"]
        client = async_redis(redis_url, self.settings)
        tasks = [
            asyncio.create_task(self._predictions(bootstrap)),
            asyncio.create_task(self._redis_feed(client)),
        ]
        try:
            if self.console.is_terminal:
                with Live(self._render(), console=self.console, refresh_per_second=4) as live:
                    ticker = asyncio.create_task(self._refresh(live))
                    code = await self._stream(bootstrap)
                    ticker.cancel()
                    live.update(self._render())
            else:
                ticker = asyncio.create_task(self._log_lines())
                code = await self._stream(bootstrap)
                ticker.cancel()
            self._summary()
            return code
        finally:
            for task in tasks:
                task.cancel()
            await client.aclose()

    async def _stream(self, bootstrap: str) -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        rate = 400.0 if self.quick else 300.0
        try:
            self.state.phase = "before drift"
            await self._send(
                producer, concept=5, seconds=8 if self.quick else 20, rate=rate, seed=2
            )
            self.state.phase = "after drift"
            self.state.drift_at = time.monotonic()
            deadline = time.monotonic() + (100 if self.quick else 150)
            chunk = 0
            while self.state.promoted_at is None and time.monotonic() < deadline:
                chunk += 1
                await self._send(
                    producer, concept=2, seconds=2, rate=rate, seed=100 + chunk, shift=True
                )
                if any(p.poll() is not None for p in self.procs):
                    self.console.print("[red]a demo process stopped unexpectedly[/red]")
                    return 1
            if self.state.promoted_at is None:
                self.console.print("[red]no promotion within the time limit[/red]")
                return 1
            self.state.phase = "after promotion"
            await self._send(
                producer,
                concept=2,
                seconds=8 if self.quick else 20,
                rate=rate,
                seed=999,
                shift=True,
            )
            await asyncio.sleep(3)
        finally:
            await producer.stop()
        return 0

    async def _send(
        self,
        producer: AIOKafkaProducer,
        *,
        concept: int,
        seconds: float,
        rate: float,
        seed: int,
        shift: bool = False,
    ) -> None:
        n = int(seconds * rate)
        ds = synthetic("agrawal", rows=max(n, 50), seed=seed, concept=concept)
        start = time.monotonic()
        prefix = f"{self.run_id}-{seed}"
        for i, (event, label) in enumerate(dataset_events(ds, prefix=prefix, entities=500)):
            if i >= n:
                break
            if shift:
                event["features"]["salary"] = event["features"]["salary"] * 1.5 + 20_000
            self.truth[event["event_id"]] = (label, self.state.phase)
            key = event["entity"].encode()
            await producer.send(self.topics["events"], orjson.dumps(event), key=key)
            label_doc = {"event_id": event["event_id"], "label": label}
            await producer.send(self.topics["labels"], orjson.dumps(label_doc), key=key)
            self.state.sent += 1
            ahead = start + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def _predictions(self, bootstrap: str) -> None:
        consumer = AIOKafkaConsumer(
            self.topics["predictions"],
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        window: deque[tuple[float, int]] = deque()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                now = time.monotonic()
                for messages in batch.values():
                    for m in messages:
                        p = orjson.loads(m.value)
                        if p["variant"] != "champion":
                            continue
                        self.state.predicted += 1
                        self.state.champion = p["version"]
                        self.state.latest.appendleft(p)
                        label, phase = self.truth.get(p["event_id"], (None, ""))
                        if label is not None:
                            counts = self.state.correct.setdefault(phase, [0, 0])
                            counts[0] += int(p["label"] == label)
                            counts[1] += 1
                window.append((now, self.state.predicted))
                while window and now - window[0][0] > 3:
                    window.popleft()
                if len(window) > 1 and window[-1][0] > window[0][0]:
                    self.state.rate = (window[-1][1] - window[0][1]) / (
                        window[-1][0] - window[0][0]
                    )
        finally:
            await consumer.stop()

    async def _redis_feed(self, client: aioredis.Redis) -> None:
        streams: dict[Any, Any] = {
            ALERTS_KEY: "$",
            events_key(self.model): "$",
        }
        while True:
            found: Any = await client.xread(streams, block=500, count=100) or []
            for name, entries in found:
                key = name.decode()
                for entry_id, fields in entries:
                    streams[key] = entry_id.decode()
                    if key == ALERTS_KEY:
                        alert = orjson.loads(fields[b"alert"])
                        if alert["model"] == self.model:
                            self.state.alerts.append(alert)
                            self._note(
                                f"ALERT {alert['kind']} {alert.get('feature') or ''} "
                                f"{alert['detector']}={alert['statistic']:.3g}"
                            )
                    else:
                        decision = orjson.loads(fields[b"event"])
                        self.state.decisions.append(decision)
                        self._note(_describe(decision))
                        if decision["kind"] == "promote" and self.state.promoted_at is None:
                            self.state.promoted_at = time.monotonic()

    # -- output -------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        if not self.console.is_terminal:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {text}")

    async def _refresh(self, live: Live) -> None:
        while True:
            live.update(self._render())
            await asyncio.sleep(0.25)

    async def _log_lines(self) -> None:
        while True:
            await asyncio.sleep(5)
            s = self.state
            acc = s.accuracy(s.phase)
            self.console.print(
                f"[{time.strftime('%H:%M:%S')}] {s.phase}: sent {s.sent}, predicted {s.predicted} "
                f"({s.rate:.0f}/s), champion v{s.champion}, accuracy "
                f"{'-' if acc is None else f'{acc:.3f}'}"
            )

    def _render(self) -> Group:
        s = self.state
        head = Table.grid(padding=(0, 3))
        head.add_row(
            f"[bold]{s.phase}[/bold]",
            f"sent {s.sent}",
            f"predicted {s.predicted}",
            f"{s.rate:,.0f} events/s",
            f"champion v{s.champion}",
        )
        acc = Table("phase", "accuracy", "labelled", title="live accuracy (champion)")
        for phase in ("before drift", "after drift", "after promotion"):
            right, total = s.correct.get(phase, [0, 0])
            acc.add_row(phase, f"{right / total:.3f}" if total else "-", str(total))
        latest = Table(
            "event", "version", "label", "p(1)", "latency ms", title="latest predictions"
        )
        for p in list(s.latest):
            latest.add_row(
                p["event_id"][-12:],
                p["version"],
                str(p["label"]),
                f"{p['probabilities'][1]:.2f}",
                f"{p['latency_ms']:.0f}",
            )
        alerts = Table("kind", "feature", "detector", "statistic", title="drift alerts")
        for a in s.alerts[-6:]:
            alerts.add_row(
                a["kind"], a.get("feature") or "", a["detector"], f"{a['statistic']:.3g}"
            )
        loop = Table("kind", "what", title="retraining, gates, shadow, promotion")
        for d in s.decisions[-8:]:
            loop.add_row(d["kind"], _describe(d))
        return Group(Panel(head, title="Driftline demo"), acc, latest, alerts, loop)

    def _summary(self) -> None:
        s = self.state
        parts = [
            f"{p}: {s.accuracy(p):.3f}"
            for p in ("before drift", "after drift", "after promotion")
            if s.accuracy(p) is not None
        ]
        took = (s.promoted_at - s.drift_at) if s.promoted_at and s.drift_at else None
        self.console.print("accuracy " + ", ".join(parts))
        if took is not None:
            self.console.print(f"drift to promotion: {took:.1f}s; alerts: {len(s.alerts)}")


def _describe(decision: dict[str, Any]) -> str:
    kind = decision["kind"]
    if kind == "gates":
        return "gates " + ("passed" if decision.get("passed") else "failed")
    what = decision.get("reason") or decision.get("stage") or decision.get("decision") or ""
    version = decision.get("version")
    return f"{kind} {'v' + version if version else ''} {what}".strip()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a closed terminal or a kill: clean up like Ctrl-C does


def run_demo(quick: bool, broker: str) -> int:
    """Entry point of ``driftline demo``."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    console = Console()
    settings = load_settings()
    with contextlib.suppress(KeyboardInterrupt):
        return Demo(settings, quick=quick, broker=broker, console=console).run()
    return 130


__all__ = ["Demo", "run_demo"]
