"""`driftline produce`, `tail` and `models route|promote` against a real broker and worker."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import orjson
import pytest

from tests.conftest import Endpoints
from tests.kit import Deployment, agrawal_events, nothing_pending
from tests.waiting import wait_until


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    return Deployment.up(services, unique, tmp_path)


def _wait_for_swap(dep: Deployment, *, champion: str, mode: str, challenger: str = "") -> None:
    """Wait until the worker has swapped to ``champion`` with ``mode`` routing (and
    ``challenger`` when given): what the announced change is."""

    def swapped() -> bool:
        last = (dep.swaps() or [{}])[-1]
        return (
            last.get("champion") == champion
            and last.get("routing", {}).get("mode") == mode
            and (not challenger or last.get("challenger") == challenger)
        )

    wait_until(
        f"the worker to swap to champion {champion}, {mode} routing",
        swapped,
        60,
        0.1,
        detail=lambda: (dep.swaps(), dep.log()),
    )


def test_produce_replays_jsonl_and_csv_with_delayed_labels(deployment: Deployment) -> None:
    dep = deployment
    events = agrawal_events(30, prefix="file")
    jsonl = dep.root / "events.jsonl"
    jsonl.write_bytes(b"\n".join(orjson.dumps({**e, "label": i % 2}) for i, e in enumerate(events)))
    done = dep.cli(
        "produce", "--file", str(jsonl), "--labels", "--label-delay", "0.5", "--count", "30"
    )
    assert done.returncode == 0, done.stderr
    assert "sent 30 events" in done.stdout and "30 labels" in done.stdout

    table = dep.root / "rows.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*events[0]["features"], "y"])
        writer.writeheader()
        for e in events[:10]:
            writer.writerow({**e["features"], "y": 1})
    done = dep.cli(
        "produce", "--file", str(table), "--label-column", "y", "--labels", "--prefix", "csv"
    )
    assert done.returncode == 0, done.stderr

    # the two commands have exited: whatever they sent is on the topics
    sent = asyncio.run(dep.collect("events", 40, timeout_s=30, complete=nothing_pending))
    assert len(sent) == 40
    replayed = {e["event_id"]: e for e in sent}
    assert replayed["file-3"]["features"] == events[3]["features"]
    assert "label" not in replayed["file-3"], "the label is not part of the event"
    assert replayed["csv-0"]["features"]["salary"] == pytest.approx(events[0]["features"]["salary"])
    labels = asyncio.run(dep.collect("labels", 40, timeout_s=30, complete=nothing_pending))
    by_id = {lab["event_id"]: lab["label"] for lab in labels}
    assert len(by_id) == 40
    assert by_id["file-3"] == 1 and by_id["csv-9"] == 1


def test_tail_prints_the_messages_of_a_topic(deployment: Deployment) -> None:
    dep = deployment
    asyncio.run(
        dep.produce(
            "labels",
            [{"event_id": f"t{i}", "label": 1} for i in range(5)],
        )
    )
    done = dep.cli("tail", dep.topics["labels"], "--count", "5", "--json", "--from-beginning")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert sorted(orjson.loads(line)["event_id"] for line in lines) == [f"t{i}" for i in range(5)]


def test_route_and_promote_commands_reach_a_running_worker(deployment: Deployment) -> None:
    dep = deployment
    v1, v2 = dep.add_version("logreg", seed=1), dep.add_version("logreg", seed=4)
    dep.registry.promote(dep.model, v1)
    # Worker re-reads on its own only every 30 s here: what it applies sooner came as an update.
    dep.env["DRIFTLINE_RELOAD_INTERVAL_S"] = "30"
    refused = dep.cli("models", "route", dep.model, "--shadow")
    assert refused.returncode == 2
    assert "needs a challenger" in refused.stderr
    events = agrawal_events(600, prefix="rt", entities=100)
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", events[:200]))
        asyncio.run(
            dep.collect(
                "predictions",
                200,
                timeout_s=60,
                worker=worker,
            )
        )
        assert dep.cli("models", "promote", dep.model, v2, "--alias", "challenger").returncode == 0
        routed = dep.cli("models", "route", dep.model, "--shadow")
        assert routed.returncode == 0, routed.stderr
        assert "announced" in routed.stderr and "not announced" not in routed.stderr
        _wait_for_swap(dep, champion=v1, challenger=v2, mode="shadow")
        asyncio.run(dep.produce("events", events[200:400]))
        asyncio.run(
            dep.collect(
                "predictions",
                600,
                timeout_s=60,
                worker=worker,
            )
        )
        promoted = dep.cli("models", "promote", dep.model, v2)
        assert promoted.returncode == 0, promoted.stderr
        assert dep.cli("models", "route", dep.model, "--off").returncode == 0
        _wait_for_swap(dep, champion=v2, mode="off")
        asyncio.run(dep.produce("events", events[400:]))
        preds = asyncio.run(
            dep.collect(
                "predictions",
                800,
                timeout_s=60,
                worker=worker,
                complete=dep.scored_all,  # a stray shadow prediction would be in
            )
        )
    seen = {
        (p["event_id"][:2], int(p["event_id"][3:]) // 200, p["variant"], p["version"])
        for p in preds
    }
    assert {(v, ver) for _, part, v, ver in seen if part == 0} == {("champion", v1)}
    assert {(v, ver) for _, part, v, ver in seen if part == 1} == {
        ("champion", v1),
        ("shadow", v2),
    }, dep.log()
    assert {(v, ver) for _, part, v, ver in seen if part == 2} == {("champion", v2)}
    assert len(preds) == 800
