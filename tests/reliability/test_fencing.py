"""A frozen owner of a model's monitors wakes up after another worker took them over: its
writes are refused and counted, and the new owner's state stays as the new owner left it.

Of two workers, the one that owns the monitors (it holds the model's key partition of
monitor-input) is frozen (SIGSTOP) past its session, so the other takes the monitors over (a
newer ownership epoch) and goes on with more events. Then the frozen one is resumed: it still
believes it owns the monitors and writes its snapshot as it hands them over, and every such
write is refused by the fence (streams.adapters.redis_fence).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from streams.contracts.names import monitors_group
from tests.conftest import Endpoints
from tests.kit import Deployment, Workers, agrawal_events, monitors_snapshot
from tests.waiting import wait_for, wait_until

pytestmark = [pytest.mark.timeout(300)]


def _events(redis_url: str, model: str) -> int:
    """How many scored events the monitors' snapshot in Redis counts."""
    return int(monitors_snapshot(redis_url, model).get("events", 0))


def _owner(workers: Workers, name: str) -> bool:
    doc = workers.health(name) or {}
    return bool((doc.get("monitoring") or {}).get("owner"))


def _settled_owner(workers: Workers, names: tuple[str, ...], model: str) -> str | None:
    """The worker that owns the monitors once every worker joined the monitors group's same
    generation: it took them over after that join and did not hand them over since.

    The health document is a sample taken every few seconds, so it can still call owner a
    worker that handed the monitors over when the second worker joined; the log says what
    happened in which generation."""
    joined = f"Joined group '{monitors_group(model)}' (generation "
    generations, owners = set(), []
    for name in names:
        log = workers.full_log(name)
        at = log.rfind(joined)
        if at < 0:
            return None
        generations.add(int(log[at + len(joined) :].split(")", 1)[0]))
        since = log[at:]
        if "owner, reading" in since and "handed over" not in since.split("owner, reading")[-1]:
            owners.append(name)
    settled = len(generations) == 1 and len(owners) == 1
    return owners[0] if settled and _owner(workers, owners[0]) else None


def test_a_frozen_owner_resumed_after_a_takeover_writes_nothing(
    services: Endpoints, unique: str, tmp_path: Path
) -> None:
    # the watchdog would end a process frozen this long: not what this test is about
    dep = Deployment.up(
        services, unique, tmp_path, champion="logreg", monitor={}, DRIFTLINE_WATCHDOG_S="0"
    )
    model = dep.model
    with Workers(dep) as workers:
        procs = {name: workers.start(name) for name in ("a", "b")}
        for name in procs:
            workers.ready(name)

        # whichever holds the model's key partition of monitor-input
        frozen = wait_until(
            "one owner of the monitors, both workers in the group",
            lambda: _settled_owner(workers, tuple(procs), model),
            90,
            0.2,
        )
        other = "b" if frozen == "a" else "a"
        asyncio.run(dep.produce("events", agrawal_events(400, prefix=f"a{unique}-")))
        wait_for(
            "the owner's snapshot of the first events",
            lambda: _events(services.redis, model) == 400,
            60,
            0.2,
            lambda: workers.log(frozen),
        )
        os.kill(procs[frozen].pid, signal.SIGSTOP)
        try:
            wait_for("the other owns the monitors", lambda: _owner(workers, other), 90, 0.5)
            asyncio.run(dep.produce("events", agrawal_events(400, prefix=f"b{unique}-")))
            wait_for(
                "the new owner's snapshot of the new events, over the old one's",
                lambda: _events(services.redis, model) == 800,
                60,
                0.2,
                lambda: workers.log(other),
            )
        finally:
            os.kill(procs[frozen].pid, signal.SIGCONT)
        wait_for(
            "the resumed owner's stale writes refused",
            lambda: "took them over" in workers.full_log(frozen),
            90,
            0.5,
            lambda: workers.log(frozen),
        )
        # it wrote (and was refused) at least once: its view of 400 events never replaced 800
        after = _events(services.redis, model)
        log_frozen = workers.full_log(frozen)
    refused = [line for line in log_frozen.splitlines() if "took them over" in line]
    assert refused and "refused" in refused[0], refused
    assert after == 800
