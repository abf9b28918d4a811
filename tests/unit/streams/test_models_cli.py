"""``driftline train`` and ``driftline models …`` through the command line."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from streams.cli.main import main

SMALL = ["--rows", "600", "--folds", "2"]


def _run(argv: list[str]) -> int:
    return main(argv)


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    out = capsys.readouterr().out
    return orjson.loads(out)


def test_train_json_registers_and_promotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "reg"
    argv = ["train", "--model", "gbdt", "--name", "credit", "--registry", str(reg)]
    code = _run([*argv, *SMALL, "--mitigate", "threshold", "--promote", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    summary = orjson.loads(captured.out)
    assert captured.err == ""  # --json: no progress lines
    assert summary["name"] == "credit" and summary["version"] == "1"
    assert summary["promoted"] is True
    assert summary["parity"]["max_abs_diff"] <= 1e-4
    assert summary["fairness"]["mitigation"] == "threshold"
    assert set(summary["thresholds"]["per_group"]) == {"<40", "40-59", "60+"}
    assert summary["metrics"]["cv"]["f1"]["mean"] > 0.5
    assert (reg / "credit" / "1" / "model.onnx").is_file()
    assert (
        orjson.loads((reg / "credit" / "aliases.json").read_bytes())["aliases"]["champion"][
            "version"
        ]
        == "1"
    )


def test_train_human_output_and_registry_from_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_REGISTRY", str(tmp_path / "from-env"))
    assert _run(["train", "--dataset", "sea", *SMALL]) == 0
    out, err = capsys.readouterr()
    # Not a terminal: one progress line per step on stderr.
    assert "train: cross-validation fold 1/2 [" in err and "train: registering [" in err
    assert "registered sea@1" in out and "parity" in out and "roc_auc" in out
    assert "confusion matrix [[tn, fp], [fn, tp]]: [[" in out  # brackets are not markup
    assert (tmp_path / "from-env" / "sea" / "1" / "card.json").is_file()


def test_train_on_csv_with_reweighing(
    tmp_path: Path, credit_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--csv", str(credit_csv), "--target", "decision", "--sensitive", "sex"]
    argv += ["--features", "age,income,job,sex", "--mitigate", "reweigh", "--model", "rf"]
    code = _run([*argv, "--folds", "2", "--registry", str(tmp_path), "--json"])
    assert code == 0
    summary = _json(capsys)
    assert isinstance(summary, dict)
    assert summary["name"] == "credit"  # the CSV file name
    assert summary["fairness"]["after"] is not None
    assert summary["data"]["class_balance"].keys() == {"approved", "denied"}


def test_models_list_show_promote_rollback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ["--registry", str(tmp_path)]
    for _ in range(3):
        assert _run(["train", "--dataset", "sea", "--name", "m", *SMALL, *reg, "--json"]) == 0
    capsys.readouterr()
    assert _run(["models", "promote", "m", "2", *reg]) == 0
    assert _run(["models", "promote", "m", "3", *reg]) == 0
    assert _run(["models", "promote", "m", "1", "--alias", "challenger", *reg]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "m@challenger -> 1"

    assert _run(["models", "list", *reg, "--json"]) == 0
    assert _json(capsys) == [
        {
            "name": "m",
            "versions": ["1", "2", "3"],
            "latest": "3",
            "champion": "3",
            "challenger": "1",
        }
    ]
    assert _run(["models", "list", *reg]) == 0
    assert "champion" in capsys.readouterr().out

    assert _run(["models", "show", "m@champion", *reg, "--json"]) == 0
    shown = _json(capsys)
    assert isinstance(shown, dict)
    assert shown["card"]["version"] == "3"
    assert shown["card"]["parent_version"] == "2"
    assert shown["aliases"]["champion"]["stack"] == ["2", "3"]
    assert _run(["models", "show", "m@1", *reg]) == 0
    assert "m@1" in capsys.readouterr().out

    assert _run(["models", "rollback", "m", *reg]) == 0
    assert capsys.readouterr().out.strip() == "m@champion rolled back to 2"
    assert _run(["models", "show", "m", *reg, "--json"]) == 0
    shown = _json(capsys)
    assert isinstance(shown, dict) and shown["card"]["version"] == "2"


def test_list_of_an_empty_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["models", "list", "--registry", str(tmp_path / "none")]) == 0
    assert "no models" in capsys.readouterr().out


def _bad_csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--dataset", "sea", "--mitigate", "reweigh"], "needs a sensitive attribute"),
        (["train", "--target", "y"], "apply to --csv or --sql data only"),
        (["train", "--csv", "{tmp}/nope.csv", "--target", "y"], "cannot read CSV"),
        (["train", "--csv", "{tmp}/empty.csv", "--target", "y"], "empty"),
        (["train", "--csv", "{tmp}/multi.csv"], "--csv needs --target"),
        (["train", "--csv", "{tmp}/multi.csv", "--target", "y"], "must be binary"),
        (["train", "--csv", "{tmp}/multi.csv", "--target", "label"], "unknown target column"),
        (["train", "--csv", "{tmp}/const.csv", "--target", "y"], "'k' is constant"),
        (
            ["train", "--csv", "{tmp}/const.csv", "--target", "y", "--features", "a,zz"],
            "unknown feature column 'zz'",
        ),
        (
            ["train", "--csv", "{tmp}/const.csv", "--target", "y", "--sensitive", "sex"],
            "unknown sensitive column 'sex'",
        ),
        (["models", "show", "ghost"], "no model named 'ghost'"),
        (["models", "promote", "ghost", "1"], "no model named 'ghost'"),
        (["models", "rollback", "ghost"], "no model named 'ghost'"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _bad_csv(tmp_path, "empty.csv", "")
    _bad_csv(tmp_path, "multi.csv", "x,y\n" + "\n".join(f"{i},{i % 3}" for i in range(60)))
    _bad_csv(tmp_path, "const.csv", "a,k,y\n" + "\n".join(f"{i},1,{i % 2}" for i in range(60)))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = _run([*argv, "--registry", str(tmp_path / "reg")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("driftline: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--model", "svm"], "'logreg', 'rf', 'gbdt'"),
        (["train", "--dataset", "iris"], "'agrawal', 'sea', 'hyperplane'"),
        (["train", "--mitigate", "magic"], "'none', 'reweigh', 'threshold'"),
        (["train", "--class-weight", "heavy"], "'none', 'balanced'"),
        (["train", "--rows", "0"], "0 is not in the range x>=1"),
        (["models", "promote", "m", "1", "--alias", "prod"], "'champion', 'challenger'"),
        (["models", "route", "m", "--canary", "150"], "150.0 is not in the range 0<x<=100"),
    ],
)
def test_unknown_option_values_exit_2_with_what_was_expected(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert _run(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("Usage: driftline ")
    assert expected in err


def test_tampered_model_and_bad_alias_ops_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ["--registry", str(tmp_path)]
    assert _run(["train", "--dataset", "sea", "--name", "t", *SMALL, *reg, "--json"]) == 0
    capsys.readouterr()
    assert _run(["models", "rollback", "t", *reg]) == 2
    assert "no earlier champion" in capsys.readouterr().err
    model = tmp_path / "t" / "1" / "model.onnx"
    os.chmod(model, 0o644)
    model.write_bytes(model.read_bytes() + b"\x00")
    assert _run(["models", "show", "t@1", *reg]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "failed its integrity check" in err and "tampered" in err


def test_every_registry_option_names_its_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["train"],
        ["models", "list"],
        ["models", "show"],
        ["models", "promote"],
        ["models", "rollback"],
    ):
        assert _run([*argv, "--help"]) == 0
        help_text = " ".join(capsys.readouterr().out.split())
        assert "--registry DIR" in help_text
        assert "env var: DRIFTLINE_REGISTRY" in help_text


def test_validate_runs_the_gates_and_names_a_failed_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = ["--registry", str(tmp_path)]
    for seed in ("1", "2"):
        assert (
            _run(
                [
                    "train",
                    "--dataset",
                    "agrawal",
                    "--name",
                    "a",
                    "--seed",
                    seed,
                    "--model",
                    "gbdt",
                    *SMALL,
                    *reg,
                    "--json",
                ]
            )
            == 0
        )
    assert _run(["models", "promote", "a", "1", *reg]) == 0
    capsys.readouterr()
    monkeypatch.setenv("DRIFTLINE_GATES", '{"max_dp_gap": null, "max_eo_gap": null}')
    assert _run(["models", "validate", "a", "2", *reg, "--json"]) in (0, 1)
    report = _json(capsys)
    assert isinstance(report, dict)
    assert {r["name"] for r in report["results"]} >= {"cross_validation", "champion", "onnx_parity"}
    monkeypatch.setenv("DRIFTLINE_GATES", '{"max_dp_gap": 0.0001}')
    assert _run(["models", "validate", "a", "2", *reg]) == 1
    out = capsys.readouterr().out
    assert "refused" in out and "fairness" in out


def test_history_lists_what_happened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models.history import History

    reg = ["--registry", str(tmp_path)]
    assert _run(["train", "--dataset", "sea", "--name", "h", *SMALL, *reg, "--json"]) == 0
    History(tmp_path).record("h", "promote", version="1", reason="by hand")
    History(tmp_path).record("h", "rollback", version="1", reason="worse live")
    capsys.readouterr()
    assert _run(["models", "history", "h", *reg, "--json"]) == 0
    entries = _json(capsys)
    assert isinstance(entries, list)
    assert [e["kind"] for e in entries] == ["promote", "rollback"]
    assert _run(["models", "history", "h", *reg]) == 0
    assert "worse live" in capsys.readouterr().out
