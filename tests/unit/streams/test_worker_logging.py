"""How a Faust worker of Driftline configures logging (streams.adapters.faust_app.faust_worker)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.adapters.faust_app import faust_app, faust_worker
from streams.config.settings import load_settings


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("level", ["WARNING", "ERROR", "INFO"])
def test_debug_records_are_not_built_above_debug(
    tmp_path: Path, level: str, restored_logging: None
) -> None:
    app = faust_app(load_settings(data_dir=tmp_path), "localhost:9", f"log-test-{level}")
    worker = faust_worker(app, level)
    worker._setup_logging()  # what the worker does first when it starts
    # Faust's spinner handler would set the root logger to DEBUG at WARNING and above.
    assert logging.getLogger().level == getattr(logging, level)
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("driftline.monitor").isEnabledFor(getattr(logging, level))
