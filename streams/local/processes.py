"""The processes of the local services: spawn one, tell whether it still runs, stop it.

A :class:`ServiceRecord` is what ``driftline services up`` writes down for each process it
started (in ``services.json``, see :mod:`~streams.local.services`): its pid together with the
kernel start time, so that a pid reused by another program is never taken for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """Return ``n`` distinct TCP ports on loopback that nothing listens on right now."""
    with contextlib.ExitStack() as held:  # all held open at once: no port comes twice
        socks = [
            held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)
        ]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _start_time(pid: int) -> int | None:
    """Return the kernel start time of ``pid``, or None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


@dataclass
class ServiceRecord:
    """One process that ``up`` started: enough to find it, probe it and stop it."""

    kind: str
    endpoint: str
    pid: int | None
    started: int | None
    log: str | None = None
    security: str = "PLAINTEXT"
    program: str | None = None  # what runs it, with its source and version (doctor's line)

    def alive(self) -> bool:
        """Whether the recorded process still runs (never true for an external service)."""
        return self.pid is not None and _start_time(self.pid) == self.started


def spawn(
    cmd: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    *,
    user: str | None = None,
    cwd: Path | None = None,
) -> ServiceRecord:
    """Start ``cmd`` in a session of its own, its output appended to ``log``.

    Parameters
    ----------
    cmd
        The program and its arguments.
    log
        The file that receives its stdout and stderr; its folder is created.
    env
        Its environment; None inherits this process's.
    user
        The user it runs as (a program that refuses root); None: this process's.
    cwd
        Its working directory; None: this process's.

    Returns
    -------
    ServiceRecord
        Its pid, start time and log; the caller fills in kind and endpoint.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            user=user,
            cwd=cwd,
        )
    return ServiceRecord(
        kind="", endpoint="", pid=proc.pid, started=_start_time(proc.pid), log=str(log)
    )


def stop(record: ServiceRecord, timeout_s: float = 30.0, *, kill: bool = False) -> None:
    """Stop the process group of ``record`` if it still runs: SIGTERM, then SIGKILL.

    Parameters
    ----------
    record
        The process, as :func:`spawn` started it.
    timeout_s
        How long it may take to exit after SIGTERM before it gets SIGKILL.
    kill
        SIGKILL at once, as a crash would (no clean shutdown).
    """
    if not record.alive() or record.pid is None:
        return
    pid = record.pid
    try:
        os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # Reap it when this process is its parent (pytest fixtures); otherwise init does.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not record.alive():
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def freeze(record: ServiceRecord, frozen: bool) -> None:
    """SIGSTOP (``frozen``) or SIGCONT the process group of ``record``: a hung process, which
    holds its connections open and answers nothing, unlike a dead one."""
    if record.alive() and record.pid is not None:
        os.killpg(record.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


def tail(path: str | None, lines: int = 20) -> str:
    """Return the last ``lines`` lines of the log at ``path``; empty when there is none."""
    if not path or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


__all__ = ["ServiceRecord", "free_port", "freeze", "spawn", "stop", "tail"]
