"""Waiting in tests: poll for the condition itself, until a deadline, then fail saying what.

A fixed ``sleep`` before a check is either too long (a slow suite) or too short (a flaky one
on a loaded machine); these poll the condition instead, with short sleeps between polls, and
raise ``AssertionError`` naming what did not happen when the deadline passes. A deadline is
not a speed check: make it generous.

- :func:`wait_until` returns the first truthy value of ``get`` (the thing waited for);
- :func:`wait_for` returns the seconds it took (for scenario reports that record them);
- :func:`wait_until_async` is :func:`wait_until` for coroutines (``get`` may be async);
- :func:`poll` is the loop without the failure: the first truthy value, or ``None``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _message(what: str, timeout_s: float, detail: Callable[[], object] | None) -> str:
    out = f"timed out after {timeout_s:g}s waiting for {what}"
    if detail is not None:
        out += f"\n{detail()}"
    return out


def poll(get: Callable[[], T], timeout_s: float, every: float = 0.1) -> T | None:
    """Call ``get`` until it returns something truthy (returned) or ``timeout_s`` passed
    (``None``); ``get`` is called once more at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = get()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


def wait_until(
    what: str,
    get: Callable[[], T],
    timeout_s: float,
    every: float = 0.1,
    detail: Callable[[], object] | None = None,
) -> T:
    """The first truthy value of ``get``; ``AssertionError`` naming ``what`` (and
    ``detail()``, e.g. a log tail) when there is none within ``timeout_s``."""
    value = poll(get, timeout_s, every)
    if not value:
        raise AssertionError(_message(what, timeout_s, detail))
    return value


def wait_for(
    what: str,
    check: Callable[[], object],
    timeout_s: float,
    every: float = 0.1,
    detail: Callable[[], object] | None = None,
) -> float:
    """Poll ``check`` until it holds; return the seconds it took (``AssertionError`` naming
    ``what`` on timeout)."""
    start = time.monotonic()
    wait_until(what, check, timeout_s, every, detail)
    return time.monotonic() - start


async def wait_until_async(
    what: str,
    get: Callable[[], T | Awaitable[T]],
    timeout_s: float,
    every: float = 0.05,
    detail: Callable[[], object] | None = None,
) -> T:
    """:func:`wait_until` on an event loop: sleeps without blocking it; ``get`` may be a
    coroutine function."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = get()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(_message(what, timeout_s, detail))
        await asyncio.sleep(every)


__all__ = ["poll", "wait_for", "wait_until", "wait_until_async"]
