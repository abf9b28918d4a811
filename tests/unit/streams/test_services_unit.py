"""Service bookkeeping that needs no running service."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config.settings import load_settings
from streams.errors import ServiceError
from streams.local.services import LocalServices, ServiceRecord, free_port, kafka_version


def test_kafka_version_is_pinned_4x() -> None:
    major, minor, patch = kafka_version().split(".")
    assert major == "4" and minor.isdigit() and patch.isdigit()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_record_alive_tracks_the_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    from streams.local.services import _start_time

    rec = ServiceRecord(kind="x", endpoint="", pid=proc.pid, started=_start_time(proc.pid))
    assert rec.alive()
    impostor = ServiceRecord(kind="x", endpoint="", pid=proc.pid, started=1)
    assert not impostor.alive(), "a reused pid is not our process"
    proc.kill()
    proc.wait()
    assert not rec.alive()


def test_no_services_gives_a_clear_error(tmp_path: Path) -> None:
    local = LocalServices(load_settings(data_dir=tmp_path))
    with pytest.raises(ServiceError, match="DRIFTLINE_KAFKA_BOOTSTRAP"):
        local.kafka_bootstrap()
    with pytest.raises(ServiceError, match="DRIFTLINE_REDIS_URL"):
        local.redis_url()
    assert local.down() == []


def test_configured_endpoints_win(tmp_path: Path) -> None:
    local = LocalServices(
        load_settings(data_dir=tmp_path, kafka_bootstrap="k:1", redis_url="redis://r:2/0")
    )
    assert local.kafka_bootstrap() == "k:1"
    assert local.redis_url() == "redis://r:2/0"


def test_restarting_a_service_that_up_did_not_start_is_a_clear_error(tmp_path: Path) -> None:
    local = LocalServices(load_settings(data_dir=tmp_path, kafka_bootstrap="x:1", redis_url="r"))
    for name in ("kafka", "redis"):
        with pytest.raises(ServiceError, match="not started here"):
            local.stop_service(name)
        with pytest.raises(ServiceError, match="not started here"):
            local.start_service(name)
