"""The benchmark's world: services, a registered model, fresh topics and scorer processes.

Every measured run gets topics of its own (so no run reads another's backlog) and its scorer
in a subprocess of its own (so its RSS is its own and nothing is shared with the harness).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.peers import quix_command
from models.data import synthetic
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.adapters.kafka_topics import ensure_topics
from streams.config.settings import env_name, load_settings
from streams.config.topics import with_topic_names

FEATURES = 20
PARTITIONS = 4
TOPICS = ("events", "predictions", "labels", "dlq", "updates", "alerts", "retrain", "monitor")
_SETTING = {
    "events": "topic_events",
    "predictions": "topic_predictions",
    "labels": "topic_labels",
    "dlq": "topic_dlq",
    "updates": "topic_model_updates",
    "alerts": "topic_alerts",
    "retrain": "topic_retrain_requests",
    "monitor": "topic_monitor",
}

# Which program scores for each contender.
KINDS = ("driftline", "floor", "relay", "quix", "naive")
PROFILE_AFTER_S = 8.0  # py-spy starts past a contender's imports and group join


@dataclass
class World:
    """Endpoints, the registry with the benchmark model, and the sample feature rows."""

    bootstrap: str
    redis_url: str
    root: Path
    model: str
    rows: list[dict[str, float]]

    @property
    def registry(self) -> Registry:
        return Registry(self.root / "registry")

    def train_version(self, seed: int) -> str:
        """Train and register one more version of the benchmark model; return it."""
        return register_model(self.registry, self.model, seed)

    def peer_model(self) -> Path:
        """The champion for a peer that cannot read the registry: its verified ONNX file and
        a description of its interface (numeric features only, as the benchmark model's)."""
        loaded = self.registry.load(f"{self.model}@champion")
        card = loaded.card
        (feed,) = card.onnx.inputs  # one numeric input: the benchmark model has no categories
        folder = self.root / "peer-model" / card.version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.onnx").write_bytes(loaded.payload)
        spec = {
            "onnx": str(folder / "model.onnx"),
            "input": feed.name,
            "features": list(feed.columns),
            "output": card.onnx.output_probability,
            "version": card.version,
        }
        (folder / "model.json").write_bytes(orjson.dumps(spec))
        return folder / "model.json"

    def topics(self) -> dict[str, str]:
        """Fresh topic names for one run, created with the benchmark's partitions."""
        tag = uuid.uuid4().hex[:8]
        names = {t: f"bench-{t}-{tag}" for t in TOPICS}
        settings = load_settings(kafka_bootstrap=self.bootstrap, topic_partitions=PARTITIONS)
        asyncio.run(ensure_topics(self.bootstrap, with_topic_names(settings, self.env(names))))
        return names

    def env(self, topics: dict[str, str], **extra: str) -> dict[str, str]:
        """The environment of a scorer process reading and writing ``topics``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        env.update(
            {
                env_name("kafka_bootstrap"): self.bootstrap,
                env_name("redis_url"): self.redis_url,
                env_name("registry"): str(self.registry.root),
                env_name("data_dir"): str(self.root / "data"),
                env_name("model"): self.model,
                env_name("topic_partitions"): str(PARTITIONS),
                env_name("log_level"): "WARNING",
                **{env_name(_SETTING[t]): name for t, name in topics.items()},
                **extra,
            }
        )
        return env


def register_model(registry: Registry, model: str, seed: int) -> str:
    """A 20-feature gradient-boosting pipeline on the hyperplane stream, registered."""
    ds = synthetic("hyperplane", rows=4000, seed=seed, features=FEATURES)
    result = train(ds, TrainOptions(name=model, estimator="gbdt", folds=3, seed=seed))
    return registry.register(result.payload, result.card).version


def sample_rows(n: int, seed: int = 99) -> list[dict[str, float]]:
    """Feature rows as events carry them."""
    ds = synthetic("hyperplane", rows=n, seed=seed, features=FEATURES)
    values = ds.numeric.tolist()
    return [dict(zip(ds.numeric_names, row, strict=True)) for row in values]


def make_world(root: Path, bootstrap: str, redis_url: str) -> World:
    """Train the benchmark model (champion) under ``root``."""
    model = "bench-hyperplane"
    registry = Registry(root / "registry")
    version = register_model(registry, model, seed=1)
    registry.promote(model, version)
    return World(bootstrap, redis_url, root, model, sample_rows(2000))


def command(kind: str) -> list[str]:
    """The command line of a contender."""
    if kind == "driftline":
        return [sys.executable, "-m", "streams.cli", "worker"]
    if kind in ("floor", "naive"):
        return [sys.executable, "-m", f"bench.{kind}"]
    if kind == "relay":
        return [sys.executable, "-m", "bench.floor", "--relay"]
    if kind == "quix":
        return quix_command()
    raise ValueError(f"unknown contender {kind!r}; choose one of {', '.join(KINDS)}")


@contextmanager
def running(
    kind: str, env: dict[str, str], log: Path, profile: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a contender during the block; stop it with SIGTERM (then SIGKILL) after.

    With ``profile``, py-spy samples the contender from ``PROFILE_AFTER_S`` on (past the
    imports and the group join: the steady state) and writes collapsed stacks there. The block
    runs at once either way, so a collector started in it sees the first predictions as they
    come (a block that waited for py-spy timed a drain already done as one burst); a drain
    shorter than that delay leaves the profile empty.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command(kind), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
        )
        # Monitoring in a process of its own (``driftline monitor``), as a deployment may run it.
        split = (
            kind == "driftline"
            and env.get(env_name("monitoring"), "true") == "true"
            and env.get(env_name("monitor_in_worker"), "true") == "false"
        )
        # Whatever fails below (py-spy missing, say), the contender is stopped, not left behind.
        monitor: subprocess.Popen[bytes] | None = None
        spies: list[subprocess.Popen[bytes]] = []
        timer: threading.Timer | None = None
        try:
            monitor = (
                subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", "monitor"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=log.parent,
                )
                if split
                else None
            )
            if profile is not None:
                argv = [_py_spy(), "record", "--gil", "-f", "raw", "-r", "200", "-o", str(profile)]
                argv += ["-p", str(proc.pid)]
                timer = threading.Timer(
                    PROFILE_AFTER_S,
                    lambda: spies.append(subprocess.Popen(argv, stdout=out, stderr=out)),
                )
                timer.start()
            yield proc
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy.wait(timeout=30)
            for child in (monitor, proc):
                if child is not None:
                    _terminate(child)


def _py_spy() -> str:
    """py-spy beside this interpreter (a virtualenv's bin need not be on PATH), else PATH's."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else "py-spy"


def _terminate(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM, and SIGKILL when it does not exit within ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process (``VmHWM``), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def wait_alive(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Fail early when a contender died at start."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"contender exited with {proc.returncode} at start")
        time.sleep(0.1)


__all__ = [
    "FEATURES",
    "KINDS",
    "PARTITIONS",
    "World",
    "command",
    "make_world",
    "peak_rss_mb",
    "register_model",
    "running",
    "sample_rows",
]
