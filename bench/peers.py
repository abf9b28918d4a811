"""The peer processors the bench measures Driftline against, in an environment of their own.

Quix Streams pins what it was released with (confluent-kafka < 2.13, pydantic < 2.14), older
than what Driftline runs on, so it is never installed beside Driftline: the bench builds one
virtual environment per pinned set below, once, in the user's cache, and runs the peer's
program (a single file, importing nothing of Driftline) with that environment's Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

# Pinned together and tested together: the peer, its Kafka client and what it scores with (the
# same onnxruntime, numpy and orjson as Driftline, so that the model and parsing cost alike).
QUIX = (
    "quixstreams==3.28.1",
    "confluent-kafka==2.12.2",
    "pydantic==2.13.5",
    "onnxruntime==1.31.1",
    "numpy==2.4.6",
    "orjson==3.13.0",
)


class PeerError(RuntimeError):
    """The peer's environment could not be built (says what to do)."""


def peer_python(requirements: tuple[str, ...] = QUIX) -> Path:
    """The Python of an environment holding ``requirements``, built on first use."""
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = cache / "driftline" / f"bench-peers-{digest}"
    python = root / "bin" / "python"
    done = root / ".complete"
    if done.exists():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    result = subprocess.run([*pip, *requirements], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PeerError(
            f"could not install the bench's peers ({', '.join(requirements)}) into {root}: "
            f"{result.stderr.strip()[-800:]}\nCheck that PyPI is reachable, or delete {root} "
            "and run the bench again."
        )
    done.write_text("\n".join(requirements) + "\n")
    return python


def quix_command() -> list[str]:
    """The command line of the Quix Streams contender."""
    return [str(peer_python()), str(Path(__file__).with_name("quix_app.py"))]


__all__ = ["QUIX", "PeerError", "peer_python", "quix_command"]

if __name__ == "__main__":  # build the environment ahead of a run
    print(peer_python(), file=sys.stderr)
