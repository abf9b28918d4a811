"""A file-system model registry with immutable versions and aliases.

Layout::

    <root>/<name>/<version>/model.onnx     the exported pipeline (read-only)
    <root>/<name>/<version>/card.json      its :class:`~models.card.ModelCard`
    <root>/<name>/aliases.json             champion / challenger, their history, the routing
    <root>/<name>/.lock                    advisory lock serialising writers

Versions are 1, 2, 3, ... A version is written into a private temporary directory and
published with one atomic ``rename``; writers of the same model also hold an exclusive
``flock``, so two processes registering at once get distinct versions and readers never see
a half-written version. Every file is fsynced before its rename and its directory after it,
so a version or an alias that was announced survives a crash of the host. The aliases and
the routing between champion and challenger live in one file, written under the lock and
read in one read (:meth:`Registry.state`): a worker never sees a new champion with the
previous routing. The history of each alias keeps its last :data:`HISTORY_KEEP` changes.
Loading re-hashes ``model.onnx`` and refuses a file whose sha256 differs from the card.

Workers on several hosts share the registry through a file system that gives every host the
same files with POSIX ``rename`` and ``flock`` (NFSv4 with locking, CephFS, a cloud file
share); an object store or a per-host copy does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, ValidationError

from models.card import MODEL_NAME, ModelCard
from models.errors import IntegrityError, ModelNotFoundError, RegistryError

Alias = Literal["champion", "challenger"]
ALIASES: tuple[str, ...] = ("champion", "challenger")
MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
ALIASES_FILE = "aliases.json"
LEGACY_ROUTING_FILE = "routing.json"  # where routing lived before it joined the aliases
HISTORY_KEEP = 200  # alias changes remembered per alias
STACK_KEEP = 50  # versions an alias can roll back through


class AliasEvent(BaseModel):
    """One change of an alias."""

    action: Literal["promote", "rollback"]
    version: str
    previous: str | None
    at: str


class AliasState(BaseModel):
    """Current target of an alias, the stack used by rollback, and the full history."""

    version: str
    stack: list[str]
    history: list[AliasEvent] = Field(default_factory=list)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model version: its card and the ONNX bytes whose sha256 matched."""

    card: ModelCard
    payload: bytes


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ModelState:
    """A model's aliases and routing, as one read of its aliases file found them."""

    aliases: dict[str, AliasState]
    routing: Mapping[str, Any] | None


def _fsync_dir(path: Path) -> None:
    # a rename is durable only once the directory that holds the new name is
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Registry:
    """Versioned, immutable storage of model cards and ONNX files.

    Parameters
    ----------
    root : str or Path
        Registry directory (created on first write).

    Examples
    --------
    >>> import tempfile
    >>> from models.workflow import TrainOptions, train
    >>> from models.data import synthetic
    >>> result = train(synthetic("sea", rows=400, seed=1), TrainOptions(name="sea", folds=3))
    >>> tmp = tempfile.TemporaryDirectory()
    >>> reg = Registry(tmp.name)
    >>> card = reg.register(result.payload, result.card)
    >>> card.version, reg.versions("sea")
    ('1', ['1'])
    >>> reg.promote("sea", "1")
    >>> reg.resolve("sea@champion")
    ('sea', '1')
    >>> reg.load("sea").card.onnx.sha256 == card.onnx.sha256
    True
    >>> tmp.cleanup()
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- naming -----------------------------------------------------------------------
    def _model_dir(self, name: str) -> Path:
        if not MODEL_NAME.match(name):
            raise RegistryError(
                f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (max 64)",
                name=name,
            )
        return self.root / name

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[Path]:
        mdir = self._model_dir(name)
        try:
            mdir.mkdir(parents=True, exist_ok=True)
            fh = (mdir / ".lock").open("a+b")
        except OSError as exc:
            raise RegistryError(
                f"cannot write registry {self.root}: {exc.strerror}", name=name
            ) from exc
        with fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield mdir
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- reading ----------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every model name with at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._has_versions(p))

    @staticmethod
    def _has_versions(mdir: Path) -> bool:
        return any(p.name.isdigit() for p in mdir.iterdir())

    def versions(self, name: str) -> list[str]:
        """Versions of ``name`` in ascending order (empty if the model is unknown)."""
        mdir = self._model_dir(name)
        if not mdir.is_dir():
            return []
        return sorted((p.name for p in mdir.iterdir() if p.name.isdigit()), key=int)

    def aliases(self, name: str) -> dict[str, AliasState]:
        """Alias name → state for ``name``."""
        return self.state(name).aliases

    def state(self, name: str) -> ModelState:
        """The aliases and the routing of ``name``, from one read of its aliases file."""
        mdir = self._model_dir(name)
        path = mdir / ALIASES_FILE
        try:
            raw = orjson.loads(path.read_bytes()) if path.exists() else {"aliases": {}}
            aliases = {k: AliasState.model_validate(v) for k, v in raw["aliases"].items()}
        except (OSError, orjson.JSONDecodeError, KeyError, ValidationError) as exc:
            raise RegistryError(f"corrupt alias file {path}: {exc}", name=name) from exc
        routing = raw.get("routing")
        legacy = mdir / LEGACY_ROUTING_FILE
        if routing is None and legacy.exists():
            try:
                routing = orjson.loads(legacy.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise RegistryError(f"corrupt routing file {legacy}: {exc}", name=name) from exc
        if routing is not None and not isinstance(routing, dict):
            raise RegistryError(f"corrupt routing in {path}: {routing!r}", name=name)
        return ModelState(aliases, routing)

    def set_routing(self, name: str, routing: Mapping[str, Any]) -> None:
        """Store how ``name``'s traffic is routed between its champion and challenger."""
        self.resolve(name)  # an unknown model is an error, not a new directory
        with self._lock(name) as mdir:
            self._save(mdir, self.state(name).aliases, dict(routing))
            (mdir / LEGACY_ROUTING_FILE).unlink(missing_ok=True)

    def resolve(self, ref: str) -> tuple[str, str]:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` → (name, version).

        A bare name means the champion, or the latest version when there is none.

        Raises
        ------
        ModelNotFoundError
            Unknown model, version or alias.
        """
        name, _, tag = ref.partition("@")
        versions = self.versions(name)
        if not versions:
            raise ModelNotFoundError(f"no model named {name!r} in {self.root}", name=name)
        if not tag:
            champion = self.aliases(name).get("champion")
            return name, champion.version if champion else versions[-1]
        if tag in ALIASES:
            state = self.aliases(name).get(tag)
            if state is None:
                raise ModelNotFoundError(f"model {name!r} has no {tag}", name=name)
            return name, state.version
        if tag not in versions:
            raise ModelNotFoundError(
                f"model {name!r} has no version {tag!r} (versions: {', '.join(versions)})",
                name=name,
                version=tag,
            )
        return name, tag

    def card(self, ref: str) -> ModelCard:
        """The card of a version, without reading the model file."""
        name, version = self.resolve(ref)
        path = self.root / name / version / CARD_FILE
        try:
            return ModelCard.from_json(path.read_bytes())
        except (OSError, orjson.JSONDecodeError, ValidationError) as exc:
            raise RegistryError(
                f"unreadable card for {name}@{version}: {exc}", name=name, version=version
            ) from exc

    def load(self, ref: str) -> LoadedModel:
        """Card and model bytes of a version, after checking the sha256.

        Raises
        ------
        IntegrityError
            The model file's sha256 differs from the card's.
        """
        card = self.card(ref)
        path = self.root / card.name / card.version / MODEL_FILE
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise RegistryError(
                f"cannot read {path}: {exc.strerror}", name=card.name, version=card.version
            ) from exc
        actual = hashlib.sha256(payload).hexdigest()
        if actual != card.onnx.sha256:
            raise IntegrityError(
                name=card.name, version=card.version, expected=card.onnx.sha256, actual=actual
            )
        return LoadedModel(card=card, payload=payload)

    # -- writing ----------------------------------------------------------------------
    def register(self, payload: bytes, draft: ModelCard) -> ModelCard:
        """Store a new immutable version of ``draft.name`` and return its final card.

        ``version``, ``parent_version`` (the champion, else the latest version) and
        ``created_at`` are assigned here, under the model's lock.
        """
        if hashlib.sha256(payload).hexdigest() != draft.onnx.sha256:
            raise RegistryError("payload does not match the card's sha256", name=draft.name)
        with self._lock(draft.name) as mdir:
            existing = self.versions(draft.name)
            champion = self.aliases(draft.name).get("champion")
            parent = champion.version if champion else (existing[-1] if existing else None)
            number = int(existing[-1]) + 1 if existing else 1
            tmp = mdir / f".tmp-{uuid.uuid4().hex}"
            try:
                tmp.mkdir()
                while True:
                    card = draft.model_copy(
                        update={
                            "version": str(number),
                            "parent_version": parent,
                            "created_at": _now(),
                        }
                    )
                    for fname, data in ((MODEL_FILE, payload), (CARD_FILE, card.to_json())):
                        _write_atomic(tmp / fname, data)
                        (tmp / fname).chmod(0o444)
                    try:
                        os.rename(tmp, mdir / str(number))
                        _fsync_dir(mdir)
                        return card
                    except OSError:
                        # Only reached if a writer ignored the lock; take the next number.
                        if not (mdir / str(number)).exists():
                            raise
                        number += 1
            except OSError as exc:
                raise RegistryError(
                    f"cannot write version to {mdir}: {exc.strerror}", name=draft.name
                ) from exc

    def _save_aliases(self, mdir: Path, states: dict[str, AliasState]) -> None:
        self._save(mdir, states, self.state(mdir.name).routing)

    def _save(
        self, mdir: Path, states: dict[str, AliasState], routing: Mapping[str, Any] | None
    ) -> None:
        bounded = {
            k: v.model_copy(
                update={"stack": v.stack[-STACK_KEEP:], "history": v.history[-HISTORY_KEEP:]}
            )
            for k, v in states.items()
        }
        doc: dict[str, Any] = {
            "schema_version": 1,
            "aliases": {k: v.model_dump() for k, v in bounded.items()},
        }
        if routing is not None:
            doc["routing"] = dict(routing)
        _write_atomic(mdir / ALIASES_FILE, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def promote(self, name: str, version: str, alias: str = "champion") -> None:
        """Point ``alias`` at ``version``; the previous target stays on the rollback stack."""
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; use champion or challenger", name=name)
        self.resolve(f"{name}@{version}")
        with self._lock(name) as mdir:
            states = self.aliases(name)
            state = states.get(alias)
            previous = state.version if state else None
            if previous == version:
                return
            stack = [*(state.stack if state else []), version]
            history = [*(state.history if state else [])]
            history.append(
                AliasEvent(action="promote", version=version, previous=previous, at=_now())
            )
            states[alias] = AliasState(version=version, stack=stack, history=history)
            self._save_aliases(mdir, states)

    def rollback(self, name: str, alias: str = "champion") -> str:
        """Point ``alias`` back to its previous target and return that version."""
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; use champion or challenger", name=name)
        self.resolve(name)
        with self._lock(name) as mdir:
            states = self.aliases(name)
            state = states.get(alias)
            if state is None or len(state.stack) < 2:
                raise RegistryError(
                    f"model {name!r} has no earlier {alias} to roll back to", name=name
                )
            stack = state.stack[:-1]
            event = AliasEvent(
                action="rollback", version=stack[-1], previous=state.version, at=_now()
            )
            states[alias] = AliasState(
                version=stack[-1], stack=stack, history=[*state.history, event]
            )
            self._save_aliases(mdir, states)
            return stack[-1]


__all__ = [
    "ALIASES",
    "HISTORY_KEEP",
    "STACK_KEEP",
    "Alias",
    "AliasEvent",
    "AliasState",
    "LoadedModel",
    "ModelState",
    "Registry",
]
