"""`driftline demo --quick`: the README's first command runs the whole loop and cleans up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_loop_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--quick", "--broker", "kafka"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for needle in ("ALERT concept_drift", "gates passed", "shadow", "promote", "stopped worker"):
        assert needle in out, needle
    accuracy = re.search(
        r"before drift: ([\d.]+), after drift: ([\d.]+), after promotion: ([\d.]+)", out
    )
    assert accuracy, out[-2000:]
    before, during, after = map(float, accuracy.groups())
    assert during < before - 0.1 and after > during + 0.1
    state = tmp_path / "data" / "demo" / "services.json"
    assert not state.exists(), "services stopped"
    assert _processes_mentioning(str(tmp_path)) == [], "no process of the demo left"


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or environment mentions ``text``."""
    found = []
    needle = text.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in blob and state != "Z":
            found.append(int(proc.name))
    return found
