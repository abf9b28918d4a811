"""A worker process's ``/metrics`` and ``/health`` endpoints, for every model it serves.

The HTTP server runs in threads of its own, not on the event loop: when the loop is blocked
(the case the watchdog exists for) ``/health`` still answers, and says ``stuck``. It reads
each model's :class:`~streams.worker.health.WorkerObservability`, which keeps only what is
safe to read from another thread.

Endpoints (``metrics_host``:``metrics_port``; port 0 picks a free one, printed and written
to ``<data_dir>/metrics/worker-<pid>.json``):

- ``/metrics`` — Prometheus text format (:mod:`streams.ops.observability`), every model's
  series labelled with its ``model``;
- ``/health`` — JSON, 200 when live and ready, else 503; ``/health/live`` and
  ``/health/ready`` answer the same JSON with the status code of one question each. A worker
  of one model answers that model's document; a worker of several answers
  ``{"status", "live", "ready", "pid", "models": {name: document}}``, live and ready when
  every model is, with the worst status.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import faust
import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from streams.config.settings import Settings, env_name
from streams.ops.observability import render_all
from streams.worker.health import WorkerObservability

# worst first: the status of a worker of several models is the worst of theirs
STATUS_ORDER = ("stuck", "starting", "degraded", "ok")


def combined_health(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``/health`` document of a worker whose models answered ``docs``.

    Examples
    --------
    >>> ok = {"model": "a", "status": "ok", "live": True, "ready": True, "pid": 7}
    >>> combined_health([ok]) is ok
    True
    >>> late = {"model": "b", "status": "starting", "live": True, "ready": False, "pid": 7}
    >>> doc = combined_health([ok, late])
    >>> doc["status"], doc["live"], doc["ready"], sorted(doc["models"])
    ('starting', True, False, ['a', 'b'])
    """
    if len(docs) == 1:
        return docs[0]
    return {
        "status": min((d["status"] for d in docs), key=STATUS_ORDER.index),
        "live": all(d["live"] for d in docs),
        "ready": all(d["ready"] for d in docs),
        "pid": os.getpid(),
        "models": {d["model"]: d for d in docs},
    }


class WorkerEndpoints:
    """The HTTP server of a worker process: :meth:`start` before running the apps."""

    def __init__(self, settings: Settings, parts: Sequence[WorkerObservability]) -> None:
        if not parts:
            raise ValueError("a worker serves at least one model")
        self.settings = settings
        self.parts = list(parts)
        self.server: ThreadingHTTPServer | None = None
        self.port_file: Path | None = None

    def metrics(self) -> bytes:
        """Every model's metrics, one exposition."""
        return render_all([p.metrics for p in self.parts])

    def health(self) -> dict[str, Any]:
        """The process's health document (see the module docstring)."""
        return combined_health([p.health() for p in self.parts])

    def attach(self, app: faust.App) -> None:
        """Stop serving when ``app`` shuts down."""

        async def on_shutdown(sender: Any, /, *args: Any, **kwargs: Any) -> None:
            await asyncio.get_running_loop().run_in_executor(None, self.stop)

        app.on_before_shutdown.connect(on_shutdown)

    def start(self) -> int | None:
        """Start the HTTP server; return the bound port (None: off).

        A port in use is logged, not fatal: scoring matters more than its metrics.
        """
        if not self.settings.metrics_enabled:
            return None
        host, port = self.settings.metrics_host, self.settings.metrics_port
        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        try:
            self.server = server_class((host, port), _handler(self))
        except OSError as exc:
            print(
                f"metrics: cannot listen on {host}:{port} ({exc}); no /metrics nor /health. "
                f"Set {env_name('metrics_port')}=0 for any free port.",
                file=sys.stderr,
            )
            return None
        self.server.daemon_threads = True
        bound = int(self.server.server_address[1])
        Thread(target=self.server.serve_forever, name="driftline-metrics", daemon=True).start()
        self.port_file = self.settings.data_dir / "metrics" / f"worker-{os.getpid()}.json"
        self.port_file.parent.mkdir(parents=True, exist_ok=True)
        models = [p.runtime.model for p in self.parts]
        doc = {"model": models[0], "models": models, "pid": os.getpid(), "host": host}
        self.port_file.write_bytes(orjson.dumps({**doc, "port": bound}))
        where = f"[{host}]" if ":" in host else host
        print(f"metrics and health on http://{where}:{bound}/metrics /health", file=sys.stderr)
        return bound

    def stop(self) -> None:
        """Stop the server; remove the port file."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.port_file is not None:
            self.port_file.unlink(missing_ok=True)


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler(endpoints: WorkerEndpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                self._send(200, endpoints.metrics(), CONTENT_TYPE_LATEST)
                return
            if path not in ("/health", "/health/live", "/health/ready"):
                self._send(404, b"not found: try /metrics or /health\n", "text/plain")
                return
            doc = endpoints.health()
            ok = {"/health": doc["live"] and doc["ready"], "/health/live": doc["live"]}
            code = 200 if ok.get(path, doc["ready"]) else 503
            self._send(code, orjson.dumps(doc) + b"\n", "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not worth a log line

    return Handler


__all__ = ["STATUS_ORDER", "WorkerEndpoints", "combined_health"]
