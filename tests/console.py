"""The console's test kit: a ``driftline ui`` process, and the real Chromium that opens it.

A test of the console needs Debian's ``chromium`` (``.ci/run`` installs it; on another
machine ``apt-get install chromium``, or point ``DRIFTLINE_TEST_CHROMIUM`` at a Chromium).
When there is none, the whole run ends at once, non-zero, saying so: it is never skipped.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import SERVICE_MISSING
from tests.kit import Workers
from tests.waiting import wait_until

URL_LINE = re.compile(r"driftline console at (http://\S+/)")


def chromium_path() -> str:
    """The Chromium to drive, or the end of the run saying how to get one."""
    given = os.environ.get("DRIFTLINE_TEST_CHROMIUM")
    found = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).is_file():
        pytest.exit(
            "the console's browser tests need a real Chromium, and there is none"
            + (f" at DRIFTLINE_TEST_CHROMIUM={given}" if given else " on PATH")
            + ": apt-get install chromium (Debian's package; .ci/run installs it), or set "
            "DRIFTLINE_TEST_CHROMIUM to a Chromium binary",
            SERVICE_MISSING,
        )
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (the system's) for the block, driven by Playwright."""
    path = chromium_path()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def start_console(workers: Workers, name: str = "ui", *args: str) -> str:
    """Start ``driftline ui --port 0`` among ``workers``; return the address it printed."""
    proc = workers.start(name, "ui", "--port", "0", *args)

    def printed() -> str | None:
        assert proc.poll() is None, f"driftline ui exited\n{workers.log(name)}"
        found = URL_LINE.search(workers.full_log(name))
        return found.group(1) if found else None

    return wait_until("driftline ui to print its address", printed, 60, 0.1)


__all__ = ["chromium", "chromium_path", "start_console"]
