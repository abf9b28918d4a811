"""Start a local Prometheus on a given scrape configuration, with only its targets changed.

Driftline ships one Prometheus configuration, ``deploy/prometheus/prometheus.yml``, the one
``docker-compose.yml`` mounts. There the workers are found by DNS (the compose service name
``worker``), a name that exists only inside compose. :func:`with_targets` takes that
configuration as parsed and replaces, in the jobs it is given, the service discovery
(``dns_sd_configs``, ``static_configs`` or any other ``*_sd_configs``) by ``static_configs``
naming the targets: the job name, metrics path, intervals, timeouts and everything else stay
as the file says. :func:`start_prometheus` writes the result to the server's folder (as
JSON, which is YAML too) and starts the ``prometheus`` binary of the system (Debian's
package) on loopback, with its own data directory. It is never run as a system service.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from streams.errors import ServiceError
from streams.local.processes import ServiceRecord, free_port, spawn
from streams.local.toolchain import Found

PROMETHEUS_PACKAGE = "apt-get install prometheus (Debian's package)"


def find_prometheus() -> Found:
    """Return the ``prometheus`` server on the PATH (Debian's package installs it).

    Raises
    ------
    ServiceError
        There is none, or it does not run; the message names the command that brings one.
    """
    path = shutil.which("prometheus")
    if path is None:
        raise ServiceError("prometheus", f"the prometheus server is needed: {PROMETHEUS_PACKAGE}")
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError("prometheus", f"{path} does not run ({exc})") from None
    found = re.search(r"prometheus, version (\S+)", done.stdout + done.stderr)
    if found is None:
        raise ServiceError("prometheus", f"{path} does not run as Prometheus: {PROMETHEUS_PACKAGE}")
    return Found("prometheus", "system", found[1], path)


def _discovery(job: Mapping[str, Any]) -> list[str]:
    return [key for key in job if key == "static_configs" or key.endswith("_sd_configs")]


def with_targets(config: Mapping[str, Any], targets: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The scrape configuration ``config`` with the targets of some jobs set by hand.

    Parameters
    ----------
    config
        A Prometheus configuration, as parsed (it is not changed).
    targets
        Job name -> ``host:port`` targets. Each job's service discovery is replaced by
        ``static_configs`` with these targets; nothing else of the job changes.

    Returns
    -------
    dict
        The new configuration.

    Raises
    ------
    ServiceError
        A job of ``targets`` is not in ``config``.

    Examples
    --------
    >>> config = {"scrape_configs": [{"job_name": "w", "metrics_path": "/metrics",
    ...     "dns_sd_configs": [{"names": ["worker"], "type": "A", "port": 9464}]}]}
    >>> job = with_targets(config, {"w": ["127.0.0.1:8000"]})["scrape_configs"][0]
    >>> job["job_name"], job["metrics_path"], job["static_configs"]
    ('w', '/metrics', [{'targets': ['127.0.0.1:8000']}])
    >>> sorted(job)
    ['job_name', 'metrics_path', 'static_configs']
    """
    out = copy.deepcopy(dict(config))
    jobs = {job["job_name"]: job for job in out.get("scrape_configs", [])}
    missing = sorted(set(targets) - set(jobs))
    if missing:
        raise ServiceError("prometheus", f"no scrape job {missing} in the configuration")
    for name, hosts in targets.items():
        job = jobs[name]
        for key in _discovery(job):
            del job[key]
        job["static_configs"] = [{"targets": list(hosts)}]
    return out


def prometheus_ready(url: str, timeout_s: float = 2.0) -> bool:
    """Return whether the Prometheus at ``url`` says it is ready (``/-/ready``)."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=timeout_s) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_prometheus(
    config: Mapping[str, Any],
    data_dir: Path,
    targets: Mapping[str, Sequence[str]],
    port: int | None = None,
) -> ServiceRecord:
    """Start ``prometheus`` on 127.0.0.1 with ``config`` whose ``targets`` are set by hand.

    Parameters
    ----------
    config
        The scrape configuration, as parsed (``deploy/prometheus/prometheus.yml``).
    data_dir
        The services' folder: the server's configuration, data and log go to
        ``prometheus/``.
    targets
        Job name -> ``host:port`` targets (:func:`with_targets`).
    port
        The port of its HTTP API; None picks a free one.

    Returns
    -------
    ServiceRecord
        The server's process, its endpoint ``http://127.0.0.1:<port>``.

    Raises
    ------
    ServiceError
        There is no ``prometheus`` (the message names the package), or a job is unknown.
    """
    found = find_prometheus()
    home = data_dir / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "prometheus.yml"
    conf.write_bytes(orjson.dumps(with_targets(config, targets), option=orjson.OPT_INDENT_2))
    port = port or free_port()
    cmd = [
        found.path,
        f"--config.file={conf}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    rec = spawn(cmd, home / "prometheus.log")
    rec.kind, rec.endpoint = "prometheus", f"http://127.0.0.1:{port}"
    rec.program = found.line()
    return rec


__all__ = [
    "PROMETHEUS_PACKAGE",
    "find_prometheus",
    "prometheus_ready",
    "start_prometheus",
    "with_targets",
]
