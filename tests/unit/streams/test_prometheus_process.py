"""The local Prometheus: the compose file's configuration with only its targets changed, and a
clear error when there is no ``prometheus`` to run."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from streams.errors import ServiceError
from streams.local.prometheus_process import find_prometheus, with_targets

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "prometheus.yml"


def test_the_compose_configuration_changes_only_in_the_workers_targets() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    before = yaml.safe_load(CONFIG.read_text())
    out = with_targets(config, {"driftline-worker": ["127.0.0.1:8000", "127.0.0.1:8001"]})
    assert config == before, "the parsed configuration is not changed"
    (job,) = out["scrape_configs"]
    (was,) = before["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000", "127.0.0.1:8001"]}]
    assert "dns_sd_configs" in was and "dns_sd_configs" not in job
    kept = {k: v for k, v in was.items() if k != "dns_sd_configs"}
    assert {k: v for k, v in job.items() if k != "static_configs"} == kept
    assert {k: v for k, v in out.items() if k != "scrape_configs"} == {
        k: v for k, v in before.items() if k != "scrape_configs"
    }


def test_an_unknown_job_is_refused() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    with pytest.raises(ServiceError, match=r"no scrape job \['workers'\]"):
        with_targets(config, {"workers": ["127.0.0.1:8000"]})


def test_no_prometheus_says_which_package_brings_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match=r"apt-get install prometheus"):
        find_prometheus()
    fake = tmp_path / "prometheus"
    fake.write_text("#!/bin/sh\necho 'not this one'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(ServiceError, match=r"does not run as Prometheus"):
        find_prometheus()
