"""Dependencies point one way: checked on every import of every module, statically.

Every ``import`` and ``from ... import`` counts, relative ones (``from . import x``) and those
inside functions included. The layers of ``streams``, top to bottom:

- ``cli``                                 the command line
- ``worker``, ``local``, ``ui``           the scoring worker; local development services; the
                                          web console
- ``control``, ``monitors``, ``scoring``, ``ops``, ``sinks``
- ``adapters``                            Kafka and Redis clients, the Redis label join
- ``contracts``, ``config``, ``errors``   wire contracts and names, settings, exceptions
- ``models``, ``monitoring``              pure libraries: no I/O client, no ``streams``

A module of ``streams`` imports its own subpackage, the layers below its own, and a peer of
its own layer only where :data:`PEERS` says so (the package root counts as ``errors``: it
re-exports them). ``bench`` stands apart: it imports the public API of ``streams``, ``models``
and ``monitoring`` (no name starting with ``_``), and nothing imports it: ``driftline bench``
comes through the ``driftline.commands`` entry point that ``bench`` registers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("faust", "mode", "aiokafka", "kafka", "redis", "hiredis", "streams", "bench")
PURE = ("models", "monitoring")
FIRST_PARTY = ("streams", "models", "monitoring", "bench")

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("worker", "local", "ui"),
    ("control", "monitors", "scoring", "ops", "sinks"),
    ("adapters",),
    ("contracts", "config", "errors"),
)
RANK = {unit: len(LAYERS) - i for i, layer in enumerate(LAYERS) for unit in layer}

# The imports allowed between two subpackages of one layer, (importer, imported): why.
# Everything else within a layer is forbidden, so the middle layer stays a tree on scoring.
PEERS: dict[tuple[str, str], str] = {
    ("monitors", "scoring"): "the monitors take scored batches (Scored, BatchResult, Encoded) "
    "and the scorer's dead letters",
    ("control", "scoring"): "the retrainer writes a model's routing (scoring.routing)",
    ("ops", "scoring"): "the worker's metrics read each batch's BatchStats",
    ("contracts", "errors"): "a contract may raise the package's errors",
    ("config", "errors"): "so may the settings",
}


@dataclass(frozen=True)
class Import:
    """One imported module, with the names taken from it (``from m import a``)."""

    target: str
    names: tuple[str, ...]
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str, root: Path) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import of ``path``, wherever it stands, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, *([module] if module else [])])
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if alias.name != "*" and _is_module(sub, root):
                    found.append(Import(sub, (), node.lineno))  # a module, e.g. from . import x
                else:
                    found.append(Import(module, (alias.name,), node.lineno))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def unit(dotted: str) -> str:
    """The subpackage of ``streams`` a module belongs to (the package root counts as errors)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "errors"


def layer_violation(importer: str, imported: str) -> str | None:
    """Why subpackage ``importer`` may not import ``imported`` (None when it may)."""
    if importer == imported:
        return None
    for u in (importer, imported):
        if u not in RANK:
            return f"streams.{u} is in no layer: move it into a subpackage"
    if RANK[imported] < RANK[importer] or (importer, imported) in PEERS:
        return None
    if RANK[imported] > RANK[importer]:
        return f"{importer} imports {imported}, a layer above it"
    return f"{importer} imports its peer {imported}, which PEERS does not allow"


def wrong_way(path: Path, root: Path = ROOT) -> list[str]:
    """Every import of ``path`` that breaks the rules, as ``file:line: a -> b: why``."""
    me = module_name(path, root)
    top = me.split(".")[0]
    found = []
    for imp in imports(path, root):
        target_top = imp.target.split(".")[0]
        where = f"{path.relative_to(root)}:{imp.line}: {me} -> {imp.target}"
        if target_top == "bench" and top != "bench":
            found.append(f"{where}: nothing imports bench")
        elif top in PURE and target_top in FORBIDDEN:
            found.append(f"{where}: a pure library imports no I/O client and no streams")
        elif top == "bench" and target_top in FIRST_PARTY and target_top != "bench":
            private = [p for p in (*imp.target.split("."), *imp.names) if _private(p)]
            if private:
                found.append(f"{where}: bench uses public names only, not {private}")
        elif top == "streams" and target_top == "streams":
            why = layer_violation(unit(me), unit(imp.target))
            if why:
                found.append(f"{where}: {why}")
    return found


def private_reads(path: Path, root: Path = ROOT) -> list[str]:
    """``x._name`` in ``path``, but on ``self``/``cls`` and on third-party modules.

    Static analysis does not know what ``x`` is: for ``bench`` the rule is that it reads no
    private attribute of anything but itself.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    outside = {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.split(".")[0] not in FIRST_PARTY
    }
    return [
        f"{path.relative_to(root)}:{node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and _private(node.attr)
        and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls", *outside})
    ]


def _files(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


SUBPACKAGES = sorted(u for u in RANK if u != "errors")


def test_every_module_of_streams_sits_in_a_layer() -> None:
    files = _files("streams")
    assert files
    homeless = [module_name(f) for f in files if unit(module_name(f)) not in RANK]
    assert homeless == []
    assert {p.name for p in (ROOT / "streams").iterdir() if p.suffix == ".py"} == {
        "__init__.py",
        "errors.py",
    }, "streams/ holds subpackages, its package root and errors.py only"
    for sub in SUBPACKAGES:
        assert (ROOT / "streams" / sub / "__init__.py").is_file(), sub


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_each_subpackage_says_its_role_and_exports(sub: str) -> None:
    init = ROOT / "streams" / sub / "__init__.py"
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"streams/{sub}/__init__.py has no docstring"
    exported = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == "__all__"
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    assert exported, f"streams/{sub}/__init__.py has no __all__"


@pytest.mark.parametrize("sub", [*SUBPACKAGES, "errors.py", "__init__.py"])
def test_streams_imports_point_down(sub: str) -> None:
    path = ROOT / "streams" / sub
    files = [path] if path.is_file() else _files(f"streams/{sub}")
    assert files
    assert [v for f in files for v in wrong_way(f)] == []


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_no_io_client_statically(package: str) -> None:
    files = _files(package)
    assert files, f"{package} has no modules"
    assert [v for f in files for v in wrong_way(f)] == []


def test_bench_uses_the_public_api_only_and_nothing_imports_it() -> None:
    bench = _files("bench")
    assert bench
    assert [v for f in bench for v in (*wrong_way(f), *private_reads(f))] == []
    others = [f for p in ("streams", *PURE) for f in _files(p)]
    assert [v for f in others for v in wrong_way(f) if v.endswith("nothing imports bench")] == []


def test_bench_reaches_the_command_line_through_its_entry_point() -> None:
    from streams.cli.main import build_cli
    from streams.cli.options import Command

    points = {p.name: p.value for p in entry_points(group="driftline.commands")}
    assert points.get("bench") == "bench.cli:register"
    bench = build_cli().commands["bench"]
    assert isinstance(bench, Command) and bench.handler.__module__ == "bench.cli"


def test_pure_packages_load_no_io_client_at_runtime() -> None:
    code = (
        "import pkgutil, importlib, sys\n"
        "for pkg in ('models', 'monitoring'):\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_monitoring_loads_no_model_training_or_export_stack() -> None:
    """The monitors read cards; they must not pay for scikit-learn pipelines' export and the
    ONNX runtime (models/__init__ loads those names on first use)."""
    code = (
        "import pkgutil, importlib, sys\n"
        "for info in pkgutil.walk_packages(importlib.import_module('monitoring').__path__, "
        "'monitoring.'):\n"
        "    importlib.import_module(info.name)\n"
        "heavy = ('onnxruntime', 'skl2onnx', 'onnx', 'matplotlib', 'models.workflow')\n"
        "print(','.join(sorted(m for m in sys.modules if m in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_streams_loads_no_bench_at_runtime() -> None:
    code = (
        "import pkgutil, importlib, sys, streams\n"
        "for info in pkgutil.walk_packages(streams.__path__, 'streams.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'bench')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# -- the checker itself ----------------------------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for parent in path.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    _tree(tmp_path, {"models/bad.py": "import redis\nfrom aiokafka import AIOKafkaProducer\n"})
    found = wrong_way(tmp_path / "models" / "bad.py", tmp_path)
    assert len(found) == 2 and all("pure library" in v for v in found)


def test_the_checker_catches_wrong_way_imports(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "streams/errors.py": "",
            "streams/config/settings.py": "",
            "streams/scoring/batch.py": "",
            "streams/control/retrainer.py": "",
            "streams/cli/main.py": "",
            "streams/adapters/bad.py": (
                "from streams.config.settings import Settings\n"  # down: fine
                "from ..scoring import batch\n"  # relative, up a layer
                "def later():\n"
                "    from streams.cli.main import main\n"  # inside a function, up
                "    import bench.harness\n"  # nothing imports bench
            ),
            "streams/monitors/peer.py": (
                "from streams.scoring.batch import Scored\n"  # a peer PEERS allows
                "from . import sibling\n"  # its own subpackage
                "from streams.control import retrainer\n"  # a peer it does not
            ),
            "streams/monitors/sibling.py": "",
            "streams/flat.py": "from streams.errors import ConfigError\n",
            "bench/ok.py": (
                "import argparse\n"
                "from streams.scoring.batch import Scored\n"
                "def f(x: argparse._SubParsersAction, self): return self._own\n"
            ),
            "bench/bad.py": (
                "from streams.monitors.peer import _helper\n"
                "def f(monitor): return monitor._vectors(1)\n"
            ),
        },
    )
    bad = wrong_way(tmp_path / "streams" / "adapters" / "bad.py", tmp_path)
    assert [v.split(": ", 1)[0] for v in bad] == [
        "streams/adapters/bad.py:2",
        "streams/adapters/bad.py:4",
        "streams/adapters/bad.py:5",
    ]
    assert "a layer above" in bad[0] and "a layer above" in bad[1] and "bench" in bad[2]
    peer = wrong_way(tmp_path / "streams" / "monitors" / "peer.py", tmp_path)
    assert len(peer) == 1 and "peer control" in peer[0]
    flat = wrong_way(tmp_path / "streams" / "flat.py", tmp_path)
    assert len(flat) == 1 and "no layer" in flat[0]
    assert wrong_way(tmp_path / "bench" / "ok.py", tmp_path) == []
    assert private_reads(tmp_path / "bench" / "ok.py", tmp_path) == []
    assert len(wrong_way(tmp_path / "bench" / "bad.py", tmp_path)) == 1
    assert len(private_reads(tmp_path / "bench" / "bad.py", tmp_path)) == 1
