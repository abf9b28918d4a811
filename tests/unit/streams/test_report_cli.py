"""`driftline report` without Redis: arguments, errors, default output, lifecycle records."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import Registry
from models.workflow import TrainResult
from streams.cli.main import main
from streams.cli.report import lifecycle_change, registry_changes
from streams.config.settings import env_name


@pytest.fixture
def registry(tmp_path: Path, sea_result: TrainResult) -> Registry:
    reg = Registry(tmp_path / "registry")
    reg.register(sea_result.payload, sea_result.card)
    reg.register(sea_result.payload, sea_result.card)
    reg.promote("sea", "1")
    reg.promote("sea", "2")
    return reg


def test_report_is_listed_and_its_options_name_their_env_vars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    assert "  report " in capsys.readouterr().out
    assert main(["report", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for field in ("registry", "redis_url", "history_max_points"):
        assert env_name(field) in text, field
    assert "NAME-report.html" in text


def test_default_output_is_name_report_html_in_the_current_directory(
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", "sea", "--registry", str(registry.root), "--no-live"]) == 0
    out = tmp_path / "sea-report.html"
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text()
    assert 'data-plot="roc"' in page and "v2 (champion)" in page and "No live history" in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "nope"], "driftline: no model named 'nope'"),
        (["report", "sea", "--versions", "7"], "driftline: model 'sea' has no version '7'"),
        (["report", "sea", "--out", "missing/dir/r.html"], "driftline: cannot write"),
    ],
)
def test_wrong_arguments_print_one_line_and_exit_2(
    argv: list[str],
    message: str,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--registry", str(registry.root), "--no-live"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not list(tmp_path.glob("*.html"))


def test_a_bad_count_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "sea", "--points", "0"]) == 2
    assert "--points" in capsys.readouterr().err


def test_bad_option_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "sea", "--points", "many"]) == 2
    assert "Usage: driftline report" in capsys.readouterr().err


def test_version_changes_come_from_the_registry_and_lifecycle_records(registry: Registry) -> None:
    changes = registry_changes(registry, "sea")
    assert [(c.action, c.version, c.previous) for c in changes] == [
        ("promote", "1", None),
        ("promote", "2", "1"),
    ]
    at = "2026-11-20T10:31:02.114+00:00"
    back = lifecycle_change({"kind": "rollback", "at": at, "version": "3", "restored": "2"})
    assert back is not None and (back.action, back.version, back.previous) == ("rollback", "2", "3")
    assert lifecycle_change({"kind": "gates", "at": at, "version": "3"}) is None
    assert lifecycle_change({"kind": "promote", "at": "yesterday", "version": "3"}) is None
