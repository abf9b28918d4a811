"""What ``driftline demo`` sets up before events flow, and takes down after.

Its topics (one set a run, so that runs never see each other's messages), the environment of
its worker and retrainer (short windows and intervals, so that the loop closes in a minute or
two), a registry and Redis without an earlier demo's state, the champion it starts from, and
the worker and retrainer themselves as ``driftline`` subprocesses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
from rich.console import Console

from models.data import synthetic
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.adapters.redis_client import sync_redis
from streams.config.settings import Settings
from streams.contracts.names import ALERT_DEDUPE_PREFIX, join_prefix, model_prefix
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


def demo_env(
    services: LocalServices, topics: dict[str, str], *, home: Path, model: str, run_id: str
) -> dict[str, str]:
    """The environment of the demo's worker and retrainer.

    Parameters
    ----------
    services
        The running broker and Redis they connect to.
    topics
        The run's topic names, by the names of :data:`TOPICS`.
    home
        The demo's folder: its registry and data go there.
    model
        The model they serve and retrain.
    run_id
        The run's id, in the worker's id.

    Returns
    -------
    dict[str, str]
        This process's environment without any ``DRIFTLINE_`` variable, plus the demo's.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update({f"DRIFTLINE_{_SETTING[t]}": name for t, name in topics.items()})
    env.update(
        DRIFTLINE_KAFKA_BOOTSTRAP=services.kafka_bootstrap(),
        DRIFTLINE_REDIS_URL=services.redis_url(),
        DRIFTLINE_REGISTRY=str(home / "registry"),
        DRIFTLINE_DATA_DIR=str(home),
        DRIFTLINE_MODEL=model,
        DRIFTLINE_WORKER_ID=f"demo-{run_id}",
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


def forget_earlier_demo(settings: Settings, redis_url: str, *, home: Path, model: str) -> None:
    """Forget an earlier demo: its registry and its model's state in Redis."""
    shutil.rmtree(home / "registry", ignore_errors=True)
    client = sync_redis(redis_url, settings)
    try:
        for pattern in (
            f"{model_prefix(model)}:*",
            f"{join_prefix(model)}:*",
            f"{ALERT_DEDUPE_PREFIX}{model}:*",
        ):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def train_champion(console: Console, *, home: Path, model: str) -> str:
    """Train the demo's first model on Agrawal, register and promote it; return its version."""
    registry = Registry(home / "registry")
    ds = synthetic("agrawal", rows=3000, seed=1, concept=5)
    result = train(ds, TrainOptions(name=model, estimator="rf", folds=3, seed=1))
    version = registry.register(result.payload, result.card).version
    registry.promote(model, version)
    console.print(
        f"trained {model}@{version} (random forest, Agrawal): CV F1 "
        f"{result.card.metrics.cv['f1'].mean:.3f}, ONNX parity "
        f"{result.card.parity.max_abs_diff:.1e}"
    )
    return version


class DemoProcesses:
    """The demo's ``driftline`` subprocesses (worker, retrainer), each logging to ``home``."""

    def __init__(self, home: Path, run_id: str) -> None:
        self.home = home
        self.run_id = run_id
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, command: str, env: dict[str, str]) -> None:
        """Start ``driftline <command>`` in a session of its own, with ``env``."""
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

    def any_exited(self) -> bool:
        """Whether one of them has stopped (the demo never stops them before the end)."""
        return any(p.poll() is not None for p in self.procs)

    def stop_all(self) -> None:
        """Stop every one of them: SIGTERM, then SIGKILL after 30 s."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


__all__ = ["TOPICS", "DemoProcesses", "demo_env", "forget_earlier_demo", "train_champion"]
