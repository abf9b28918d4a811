"""Which models ``driftline worker`` serves: ``--model`` repeated, or ``--all-models``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from models.registry import Registry
from models.workflow import TrainResult
from streams.cli.serve import _served_models
from streams.errors import ConfigError


def _registry(tmp_path: Path, sea_result: TrainResult) -> Registry:
    registry = Registry(tmp_path)
    for name, promoted in (("a", True), ("b", True), ("draft", False)):
        card = sea_result.card.model_copy(update={"name": name})
        version = registry.register(sea_result.payload, card).version
        if promoted:
            registry.promote(name, version)
    return registry


def test_named_models_in_order_once_each(tmp_path: Path, sea_result: TrainResult) -> None:
    registry = _registry(tmp_path, sea_result)
    args = SimpleNamespace(model=("b", "a", "b"), all_models=False)
    assert _served_models(args, registry) == ["b", "a"]


def test_all_models_are_those_with_a_champion(tmp_path: Path, sea_result: TrainResult) -> None:
    registry = _registry(tmp_path, sea_result)
    assert _served_models(SimpleNamespace(model=(), all_models=True), registry) == ["a", "b"]
    with pytest.raises(ConfigError, match="not both"):
        _served_models(SimpleNamespace(model=("a",), all_models=True), registry)
    with pytest.raises(ConfigError, match=r"no model in .* has a champion"):
        _served_models(SimpleNamespace(model=(), all_models=True), Registry(tmp_path / "none"))
    with pytest.raises(ConfigError, match="which model"):
        _served_models(SimpleNamespace(model=(), all_models=False), registry)
