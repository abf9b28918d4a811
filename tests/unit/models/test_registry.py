"""Registry: immutable numbered versions, aliases with history, concurrency, tamper detection."""

from __future__ import annotations

import multiprocessing as mp
import os
import stat
from pathlib import Path

import orjson
import pytest

from models.card import ModelCard
from models.errors import IntegrityError, ModelNotFoundError, RegistryError
from models.registry import Registry
from models.scorer import OnnxScorer
from models.workflow import TrainResult


def _register_many(root: str, payload: bytes, card_json: bytes, count: int, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    registry = Registry(root)
    draft = ModelCard.from_json(card_json)
    for _ in range(count):
        registry.register(payload, draft)


def test_versions_are_numbered_and_immutable(sea_result: TrainResult, tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    first = reg.register(sea_result.payload, sea_result.card)
    second = reg.register(sea_result.payload, sea_result.card)
    assert (first.version, second.version) == ("1", "2")
    assert first.parent_version is None
    assert second.parent_version == "1"  # latest, as there is no champion
    assert first.created_at and first.created_at <= second.created_at
    assert reg.versions("sea") == ["1", "2"]
    assert reg.names() == ["sea"]
    model = tmp_path / "sea" / "1" / "model.onnx"
    assert model.read_bytes() == sea_result.payload
    assert not model.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    card = ModelCard.from_json((tmp_path / "sea" / "2" / "card.json").read_bytes())
    assert card == second
    assert not [p for p in (tmp_path / "sea").iterdir() if p.name.startswith(".tmp")]


def test_parent_is_the_champion(sea_result: TrainResult, tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        reg.register(sea_result.payload, sea_result.card)
    reg.promote("sea", "2")
    assert reg.register(sea_result.payload, sea_result.card).parent_version == "2"


def test_aliases_promote_rollback_and_history(sea_result: TrainResult, tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        reg.register(sea_result.payload, sea_result.card)
    assert reg.resolve("sea") == ("sea", "3")  # no champion: latest
    reg.promote("sea", "1")
    reg.promote("sea", "3")
    reg.promote("sea", "2", alias="challenger")
    assert reg.resolve("sea") == ("sea", "3")
    assert reg.resolve("sea@champion") == ("sea", "3")
    assert reg.resolve("sea@challenger") == ("sea", "2")
    assert reg.rollback("sea") == "1"
    assert reg.resolve("sea@champion") == ("sea", "1")
    state = reg.aliases("sea")["champion"]
    assert [(e.action, e.version, e.previous) for e in state.history] == [
        ("promote", "1", None),
        ("promote", "3", "1"),
        ("rollback", "1", "3"),
    ]
    with pytest.raises(RegistryError, match="no earlier champion"):
        reg.rollback("sea")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", "no model named"),
        ("sea@9", "no version '9'"),
        ("sea@challenger", "has no challenger"),
    ],
)
def test_unknown_references(
    sea_result: TrainResult, tmp_path: Path, ref: str, message: str
) -> None:
    reg = Registry(tmp_path)
    reg.register(sea_result.payload, sea_result.card)
    with pytest.raises(ModelNotFoundError, match=message):
        reg.load(ref)


def test_bad_names_and_aliases(sea_result: TrainResult, tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="invalid model name"):
        reg.register(sea_result.payload, sea_result.card.model_copy(update={"name": "../x"}))
    reg.register(sea_result.payload, sea_result.card)
    with pytest.raises(RegistryError, match="unknown alias"):
        reg.promote("sea", "1", alias="prod")
    with pytest.raises(ModelNotFoundError):
        reg.promote("sea", "4")
    with pytest.raises(RegistryError, match="sha256"):
        reg.register(b"not the model", sea_result.card)


def test_two_processes_registering_at_once(sea_result: TrainResult, tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    per_process = 6
    procs = [
        ctx.Process(
            target=_register_many,
            args=(str(tmp_path), sea_result.payload, sea_result.card.to_json(), per_process, start),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    reg = Registry(tmp_path)
    versions = reg.versions("sea")
    assert versions == [str(i) for i in range(1, 2 * per_process + 1)]
    for v in versions:
        loaded = reg.load(f"sea@{v}")
        assert loaded.card.version == v
        assert loaded.payload == sea_result.payload
    leftovers = [p.name for p in (tmp_path / "sea").iterdir() if p.name.startswith(".")]
    assert leftovers == [".lock"]


def test_tampered_model_is_refused(sea_result: TrainResult, tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(sea_result.payload, sea_result.card)
    model = tmp_path / "sea" / "1" / "model.onnx"
    os.chmod(model, 0o644)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sea@1 failed its integrity check") as info:
        reg.load("sea@1")
    assert info.value.expected == sea_result.card.onnx.sha256
    assert info.value.actual != info.value.expected
    with pytest.raises(IntegrityError):
        OnnxScorer.from_registry(reg, "sea@1")
    # The card itself is still readable for inspection.
    assert reg.card("sea@1").version == "1"


def test_corrupt_card_and_alias_files(sea_result: TrainResult, tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(sea_result.payload, sea_result.card)
    card = tmp_path / "sea" / "1" / "card.json"
    os.chmod(card, 0o644)
    card.write_bytes(orjson.dumps({"name": "sea"}))
    with pytest.raises(RegistryError, match="unreadable card"):
        reg.load("sea@1")
    (tmp_path / "sea" / "aliases.json").write_text("{not json")
    with pytest.raises(RegistryError, match="corrupt alias file"):
        reg.resolve("sea")


def test_routing_lives_with_the_aliases_and_is_read_with_them(
    sea_result: TrainResult, tmp_path: Path
) -> None:
    reg = Registry(tmp_path)
    for _ in range(2):
        reg.register(sea_result.payload, sea_result.card)
    reg.promote("sea", "1")
    assert reg.state("sea").routing is None
    reg.set_routing("sea", {"mode": "shadow"})
    reg.promote("sea", "2", alias="challenger")
    state = reg.state("sea")  # both writes in the one file, both kept
    assert (state.aliases["challenger"].version, state.routing) == ("2", {"mode": "shadow"})
    reg.promote("sea", "2")  # a promotion keeps the routing
    assert reg.state("sea").routing == {"mode": "shadow"}
    with pytest.raises(ModelNotFoundError):
        reg.set_routing("nope", {"mode": "off"})


def test_routing_of_an_older_registry_is_read_then_moved(
    sea_result: TrainResult, tmp_path: Path
) -> None:
    reg = Registry(tmp_path)
    reg.register(sea_result.payload, sea_result.card)
    reg.promote("sea", "1")
    legacy = tmp_path / "sea" / "routing.json"
    legacy.write_bytes(orjson.dumps({"mode": "canary", "percent": 10.0}))
    assert reg.state("sea").routing == {"mode": "canary", "percent": 10.0}
    reg.set_routing("sea", {"mode": "off"})
    assert not legacy.exists() and reg.state("sea").routing == {"mode": "off"}


def test_alias_history_and_rollback_stack_are_bounded(
    sea_result: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import models.registry as registry_module

    monkeypatch.setattr(registry_module, "HISTORY_KEEP", 5)
    monkeypatch.setattr(registry_module, "STACK_KEEP", 3)
    reg = Registry(tmp_path)
    for _ in range(2):
        reg.register(sea_result.payload, sea_result.card)
    for i in range(10):
        reg.promote("sea", str(1 + i % 2))
    champion = reg.aliases("sea")["champion"]
    assert len(champion.history) == 5 and len(champion.stack) == 3
    assert champion.history[-1].version == champion.version == "2"
    assert reg.rollback("sea") == "1"  # the newest entries are the ones kept
