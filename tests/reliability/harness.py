"""What only the fault-injection and load scenarios need besides the kit (``tests/kit.py``):
streams whose end or size the test decides, and what a worker process costs (CPU, memory).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Tap:
    """A stream whose end the test decides: ``events`` in order until :meth:`close`."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for event in self.events:
            if self._closed.is_set():
                return
            yield event

    def close(self) -> None:
        self._closed.set()


def stamped(
    events: list[dict[str, Any]], prefix: str, total: int, first: int = 0
) -> Iterator[dict[str, Any]]:
    """``total`` events cycled from ``events``, numbered ``<prefix>-<first>`` on (soaks)."""
    for i in range(first, first + total):
        event = events[i % len(events)]
        yield {**event, "event_id": f"{prefix}-{i}"}


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) that ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


__all__ = ["Tap", "cpu_s", "rss_kib", "stamped"]
