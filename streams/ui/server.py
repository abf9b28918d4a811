"""Run the console: bind its address, build its Redis clients, serve it with uvicorn.

The socket is bound here, before uvicorn starts, so that a port of 0 (any free one) is known
and printed as the console's address; uvicorn then serves that socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from models.registry import Registry
from streams.adapters.redis_client import async_redis, sync_redis
from streams.config.settings import Settings, env_name
from streams.errors import ConfigError
from streams.ui.app import Console, build_app
from streams.ui.feed import BLOCK_MS

log = logging.getLogger("driftline.ui")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` is one).

    Raises
    ------
    ConfigError
        The address is taken or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the console cannot listen on {host}:{port} ({exc.strerror}): set "
            f"{env_name('ui_host')} / {env_name('ui_port')} (or --host / --port) to a free "
            "address; a port of 0 picks a free one"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def console_url(sock: socket.socket) -> str:
    """The address a browser opens for the console served on ``sock``."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(settings: Settings, redis_url: str, sock: socket.socket) -> int:
    """Serve the console on ``sock`` (from :func:`bind`) until interrupted; return the exit
    code."""
    client = sync_redis(redis_url, settings, socket_timeout=5.0, socket_connect_timeout=5.0)
    # a feed's read blocks up to BLOCK_MS: its socket must wait longer than that
    feed = async_redis(redis_url, settings, socket_timeout=BLOCK_MS / 1000 + 10.0)
    console = Console(Registry(settings.registry), client, feed, settings.history_max_points)
    token = settings.ui_token.get_secret_value() if settings.ui_token else None
    app = build_app(console, token)
    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        access_log=settings.log_level == "DEBUG",
        timeout_graceful_shutdown=2,  # open feeds never end by themselves
        lifespan="off",
    )
    where = console_url(sock)
    guarded = " (token required)" if token else ""
    print(f"driftline console at {where}{guarded}; read-only; Ctrl-C stops it", flush=True)
    if not token and sock.getsockname()[0] not in ("127.0.0.1", "::1"):
        log.warning(
            "the console listens beyond loopback on %s without a token (%s)",
            where,
            env_name("ui_token"),
        )
    try:
        asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    finally:
        client.close()
        sock.close()
    return 0


__all__ = ["bind", "console_url", "serve"]
