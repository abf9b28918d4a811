"""What ``driftline demo`` shows: on a terminal a live screen, elsewhere a line every 5 s.

:class:`DemoState` is what the demo has seen so far; :class:`DemoScreen` draws it, notes the
alerts and decisions as they come (off a terminal), and prints the summary at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table


@dataclass
class DemoState:
    """What the screen shows."""

    phase: str = "starting"
    sent: int = 0
    predicted: int = 0
    correct: dict[str, list[int]] = field(default_factory=dict)  # phase -> [right, total]
    latest: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=4))
    alerts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    champion: str = "1"
    rate: float = 0.0
    promoted_at: float | None = None
    drift_at: float | None = None

    def accuracy(self, phase: str) -> float | None:
        """The champion's accuracy on the labelled events of ``phase``; None before any."""
        right, total = self.correct.get(phase, [0, 0])
        return right / total if total else None


class DemoScreen:
    """Shows ``state`` on ``console``: live on a terminal, as dated lines elsewhere."""

    def __init__(self, console: Console, state: DemoState) -> None:
        self.console = console
        self.state = state

    def note(self, text: str) -> None:
        """Print ``text`` with the time, off a terminal (the live screen shows it there)."""
        if not self.console.is_terminal:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {text}")

    async def refresh(self, live: Live) -> None:
        """Redraw ``live`` four times a second until cancelled."""
        while True:
            live.update(self.render())
            await asyncio.sleep(0.25)

    async def log_lines(self) -> None:
        """Print a line of progress every 5 s until cancelled: the screen off a terminal."""
        while True:
            await asyncio.sleep(5)
            s = self.state
            acc = s.accuracy(s.phase)
            self.console.print(
                f"[{time.strftime('%H:%M:%S')}] {s.phase}: sent {s.sent}, predicted {s.predicted} "
                f"({s.rate:.0f}/s), champion v{s.champion}, accuracy "
                f"{'-' if acc is None else f'{acc:.3f}'}"
            )

    def render(self) -> Group:
        """The live screen: progress, accuracy by phase, predictions, alerts, decisions."""
        s = self.state
        head = Table.grid(padding=(0, 3))
        head.add_row(
            f"[bold]{s.phase}[/bold]",
            f"sent {s.sent}",
            f"predicted {s.predicted}",
            f"{s.rate:,.0f} events/s",
            f"champion v{s.champion}",
        )
        acc = Table("phase", "accuracy", "labelled", title="live accuracy (champion)")
        for phase in ("before drift", "after drift", "after promotion"):
            right, total = s.correct.get(phase, [0, 0])
            acc.add_row(phase, f"{right / total:.3f}" if total else "-", str(total))
        latest = Table(
            "event", "version", "label", "p(1)", "latency ms", title="latest predictions"
        )
        for p in list(s.latest):
            latest.add_row(
                p["event_id"][-12:],
                p["version"],
                str(p["label"]),
                f"{p['probabilities'][1]:.2f}",
                f"{p['latency_ms']:.0f}",
            )
        alerts = Table("kind", "feature", "detector", "statistic", title="drift alerts")
        for a in s.alerts[-6:]:
            alerts.add_row(
                a["kind"], a.get("feature") or "", a["detector"], f"{a['statistic']:.3g}"
            )
        loop = Table("kind", "what", title="retraining, gates, shadow, promotion")
        for d in s.decisions[-8:]:
            loop.add_row(d["kind"], describe(d))
        return Group(Panel(head, title="Driftline demo"), acc, latest, alerts, loop)

    def summary(self) -> None:
        """Print the accuracy of each phase and how long drift took to a promotion."""
        s = self.state
        parts = [
            f"{p}: {s.accuracy(p):.3f}"
            for p in ("before drift", "after drift", "after promotion")
            if s.accuracy(p) is not None
        ]
        took = (s.promoted_at - s.drift_at) if s.promoted_at and s.drift_at else None
        self.console.print("accuracy " + ", ".join(parts))
        if took is not None:
            self.console.print(f"drift to promotion: {took:.1f}s; alerts: {len(s.alerts)}")


def describe(decision: dict[str, Any]) -> str:
    """One line for a decision of the retrainer (gates, shadow stage, promotion ...)."""
    kind = decision["kind"]
    if kind == "gates":
        return "gates " + ("passed" if decision.get("passed") else "failed")
    what = decision.get("reason") or decision.get("stage") or decision.get("decision") or ""
    version = decision.get("version")
    return f"{kind} {'v' + version if version else ''} {what}".strip()


__all__ = ["DemoScreen", "DemoState", "describe"]
