"""``driftline demo``: the whole loop on embedded defaults, live in the terminal.

Starts local services, trains a model on Agrawal, runs a worker and a retrainer, streams
labelled events, injects a concept drift (and a shift in ``salary``), and shows the events/s,
the latest predictions, live accuracy, the alerts as they fire, the retrain request, the gates,
the shadow stage and the promotion. Everything it started is stopped at the end.

The steps are here; what it sets up is in :mod:`~streams.local.demo_setup`, what it shows in
:mod:`~streams.local.demo_screen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import deque
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.live import Live

from models.data import synthetic
from streams.adapters.kafka_admin import PatientProducer, producer_options
from streams.adapters.kafka_topics import ensure_topics
from streams.adapters.redis_client import AsyncClient, async_redis
from streams.config.settings import Settings, load_settings
from streams.config.topics import with_topic_names
from streams.contracts.names import ALERTS_KEY, events_key
from streams.local.demo_screen import DemoScreen, DemoState, describe
from streams.local.demo_setup import (
    TOPICS,
    DemoProcesses,
    demo_env,
    forget_earlier_demo,
    train_champion,
)
from streams.local.producer import dataset_events
from streams.local.services import LocalServices


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
        self.procs = DemoProcesses(self.home, self.run_id)
        self.screen = DemoScreen(console, self.state)

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
            env = demo_env(
                services, self.topics, home=self.home, model=self.model, run_id=self.run_id
            )
            forget_earlier_demo(
                self.settings, env["DRIFTLINE_REDIS_URL"], home=self.home, model=self.model
            )
            planned = with_topic_names(self.settings, env)
            asyncio.run(ensure_topics(env["DRIFTLINE_KAFKA_BOOTSTRAP"], planned))
            self.state.champion = train_champion(self.console, home=self.home, model=self.model)
            self.procs.spawn("worker", env)
            self.procs.spawn("retrainer", env)
            return asyncio.run(self._live(env))
        finally:
            self.procs.stop_all()
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
                with Live(self.screen.render(), console=self.console, refresh_per_second=4) as live:
                    ticker = asyncio.create_task(self.screen.refresh(live))
                    code = await self._stream(bootstrap)
                    ticker.cancel()
                    live.update(self.screen.render())
            else:
                ticker = asyncio.create_task(self.screen.log_lines())
                code = await self._stream(bootstrap)
                ticker.cancel()
            self.screen.summary()
            return code
        finally:
            for task in tasks:
                task.cancel()
            await client.aclose()

    async def _stream(self, bootstrap: str) -> int:
        producer = PatientProducer(
            bootstrap_servers=bootstrap, linger_ms=5, **producer_options(None)
        )
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
                if self.procs.any_exited():
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
            isolation_level="read_committed",  # what a reader sees, exactly once too
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

    async def _redis_feed(self, client: AsyncClient) -> None:
        # From now on, by the entry ids' clock (milliseconds): "$" would read only what
        # comes while each call blocks, and miss what comes while the other stream's blocks.
        start = f"{int(time.time() * 1000)}-0"
        streams: dict[Any, Any] = {ALERTS_KEY: start, events_key(self.model): start}
        while True:
            # one stream per call: on a Redis Cluster the two lie in different slots
            found: Any = []
            for key in list(streams):
                found += await client.xread({key: streams[key]}, block=250, count=100) or []
            for name, entries in found:
                key = name.decode()
                for entry_id, fields in entries:
                    streams[key] = entry_id.decode()
                    if key == ALERTS_KEY:
                        alert = orjson.loads(fields[b"alert"])
                        if alert["model"] == self.model:
                            self.state.alerts.append(alert)
                            self.screen.note(
                                f"ALERT {alert['kind']} {alert.get('feature') or ''} "
                                f"{alert['detector']}={alert['statistic']:.3g}"
                            )
                    else:
                        decision = orjson.loads(fields[b"event"])
                        self.state.decisions.append(decision)
                        self.screen.note(describe(decision))
                        if decision["kind"] == "promote" and self.state.promoted_at is None:
                            self.state.promoted_at = time.monotonic()


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
