"""Liveness: a worker that stops scoring while events wait is restarted, not left hung.

docs/architecture.md ("What must never happen") forbids a worker stuck after a rebalance.
A stuck worker still holds its partitions, so nobody else scores them: the only cure is to
exit and let the supervisor (systemd, Docker, Kubernetes) start a fresh process, which
rescores the uncommitted batch.

:class:`Watchdog` is the decision, a pure class with an injectable clock. The event loop
reports to it once a second (:meth:`Watchdog.observe`: batches committed so far, events
waiting, whether a batch is in hand); anyone may ask for the :meth:`Watchdog.verdict`. The
loop is stuck when work waits and no batch was committed for ``limit_s``, or when the loop
itself stopped reporting (it is blocked, e.g. by a hung native call). :class:`WatchdogThread`
asks from a thread of its own, so that it can act even when the event loop cannot.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("driftline.worker")

# EX_SOFTWARE (sysexits.h): an internal error; the supervisor should restart us.
WATCHDOG_EXIT_CODE = 70

State = Literal["starting", "ok", "stuck"]


@dataclass(frozen=True)
class Verdict:
    """What the watchdog thinks of the scoring loop now.

    ``stalled_s`` is how long work has waited without a committed batch (or the event loop
    has been silent); ``state`` is ``stuck`` from ``report_after_s`` on, and ``exit`` is
    true from ``limit_s`` on.
    """

    state: State
    stalled_s: float
    reason: str | None
    exit: bool


class Watchdog:
    """Decide whether the scoring loop is stuck (``limit_s`` 0 disables the decision).

    Parameters
    ----------
    limit_s
        Stalled this long: exit.
    report_after_s
        Stalled this long: report ``stuck`` (default: half of ``limit_s``).
    clock
        Monotonic seconds; a test passes a controllable one.

    Examples
    --------
    >>> now = [0.0]
    >>> dog = Watchdog(60, clock=lambda: now[0])
    >>> dog.observe(progress=5, lag=0, busy=False)
    >>> now[0] = 10.0; dog.observe(progress=5, lag=200, busy=False)
    >>> now[0] = 45.0; dog.observe(progress=5, lag=900, busy=True)
    >>> v = dog.verdict(); v.state, v.stalled_s, v.exit
    ('stuck', 45.0, False)
    >>> now[0] = 61.0; dog.verdict().exit
    True
    """

    def __init__(
        self,
        limit_s: float,
        *,
        report_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_s = limit_s
        self.report_after_s = limit_s / 2 if report_after_s is None else report_after_s
        self.clock = clock
        self.armed = limit_s > 0
        self._lock = threading.Lock()  # observe() on the event loop, verdict() anywhere
        self._seen_at: float | None = None  # last report from the event loop
        self._moved_at = 0.0  # last committed batch, or last time nothing waited
        self._progress = -1
        self._lag = 0
        self._busy = False

    def observe(self, progress: int, lag: int, busy: bool) -> None:
        """Report from the event loop: batches committed so far, events waiting, batch in hand."""
        now = self.clock()
        with self._lock:
            if progress != self._progress or not (lag > 0 or busy) or self._seen_at is None:
                self._moved_at = now
            self._progress, self._lag, self._busy = progress, lag, busy
            self._seen_at = now

    def disarm(self) -> None:
        """Stop judging (the worker is shutting down: a slow stop is not a hang)."""
        self.armed = False

    def verdict(self) -> Verdict:
        """The state of the scoring loop now."""
        now = self.clock()
        with self._lock:
            if self._seen_at is None:
                return Verdict("starting", 0.0, None, False)
            silent = now - self._seen_at
            waiting = self._lag > 0 or self._busy
            stalled = now - self._moved_at if waiting else 0.0
            lag, busy = self._lag, self._busy
        if not self.armed:
            return Verdict("ok", stalled, None, False)
        worst = max(silent, stalled)
        if worst < self.report_after_s:
            return Verdict("ok", worst, None, False)
        if silent >= stalled:
            reason = f"the event loop has not answered for {silent:.0f} s"
        else:
            what = f"{lag} events waiting" + (" and a batch in hand" if busy else "")
            reason = f"no batch committed for {stalled:.0f} s with {what}"
        return Verdict("stuck", worst, reason, worst >= self.limit_s)


def exit_process(verdict: Verdict) -> None:
    """Log why and exit at once with :data:`WATCHDOG_EXIT_CODE` (no cleanup: we are hung)."""
    exit_for_restart(f"scoring is stuck ({verdict.reason})")


def exit_for_restart(reason: str) -> None:
    """Log ``reason`` and exit at once with :data:`WATCHDOG_EXIT_CODE`: the supervisor starts
    a fresh worker, which scores again what was not committed. Also for a scoring loop that
    ended on an error it cannot get past: a live process that no longer scores would hold
    its partitions from every other worker."""
    log.critical("watchdog: %s; exiting for a restart", reason)
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(WATCHDOG_EXIT_CODE)


class WatchdogThread(threading.Thread):
    """Ask the watchdog every ``interval_s``; on an exit verdict call ``on_stuck`` once."""

    def __init__(
        self,
        watchdog: Watchdog,
        interval_s: float = 1.0,
        on_stuck: Callable[[Verdict], None] = exit_process,
    ) -> None:
        super().__init__(name="driftline-watchdog", daemon=True)
        self.watchdog = watchdog
        self.interval_s = interval_s
        self.on_stuck = on_stuck
        self._stop_event = threading.Event()

    def run(self) -> None:
        warned = False
        while not self._stop_event.wait(self.interval_s):
            verdict = self.watchdog.verdict()
            if verdict.state == "stuck" and not warned:
                log.error(
                    "watchdog: %s; exiting if it lasts %.0f s",
                    verdict.reason,
                    self.watchdog.limit_s,
                )
            warned = verdict.state == "stuck"
            if verdict.exit:
                self.on_stuck(verdict)
                return

    def stop(self) -> None:
        """End the thread (it is a daemon: the process never waits for it)."""
        self._stop_event.set()


__all__ = [
    "WATCHDOG_EXIT_CODE",
    "Verdict",
    "Watchdog",
    "WatchdogThread",
    "exit_for_restart",
    "exit_process",
]
