"""MonitorConfig: defaults, mapping from settings, and clear errors on bad values."""

from __future__ import annotations

from typing import Any

import pytest

from monitoring import MonitorConfig, MonitorConfigError, MonitoringError


def test_defaults_are_the_documented_ones() -> None:
    cfg = MonitorConfig()
    assert (cfg.window, cfg.psi_threshold, cfg.ks_pvalue) == (2000, 0.2, 0.001)
    assert (cfg.stream_detector, cfg.concept_detectors) == ("cusum", ("cusum",))
    assert cfg.false_alarms_per_million == 1.0
    assert (cfg.performance_metric, cfg.performance_margin) == ("f1", 0.1)
    assert (cfg.rolling_window, cfg.min_labels) == (1000, 200)
    assert (cfg.fairness_gap_threshold, cfg.fairness_min_group) == (0.2, 50)
    assert (cfg.quality_missing_margin, cfg.quality_out_of_range_rate) == (0.1, 0.05)


def test_from_mapping_accepts_lists_and_ints_for_floats() -> None:
    cfg = MonitorConfig.from_mapping(
        {"concept_detectors": ["ddm"], "psi_threshold": 1, "stream_detector": "pagehinkley"}
    )
    assert cfg.concept_detectors == ("ddm",)
    assert cfg.psi_threshold == 1
    assert MonitorConfig.from_mapping(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("values", "option", "words"),
    [
        ({"windw": 10}, "windw", "unknown monitoring setting"),
        ({"window": "big"}, "window", "must be an integer"),
        ({"window": 10.0}, "window", "must be an integer"),
        ({"window": True}, "window", "must be an integer"),
        ({"window": 5}, "window", "must be >= 50"),
        ({"psi_threshold": 0}, "psi_threshold", "must be > 0"),
        ({"psi_threshold": float("nan")}, "psi_threshold", "finite number"),
        ({"ks_pvalue": 1.5}, "ks_pvalue", "must be <= 1.0"),
        ({"stream_detector": "kswin"}, "stream_detector", "unknown value 'kswin'"),
        ({"concept_detectors": ["adwin", "adwin"]}, "concept_detectors", "twice"),
        ({"concept_detectors": ["page"]}, "concept_detectors", "unknown value"),
        ({"concept_detectors": "ddm"}, "concept_detectors", "list of strings"),
        ({"performance_metric": "auc"}, "performance_metric", "unknown value"),
        ({"drift_all_variants": "yes"}, "drift_all_variants", "true or false"),
        ({"champion_variant": ""}, "champion_variant", "must not be empty"),
        ({"min_labels": 0}, "min_labels", "must be >= 1"),
    ],
)
def test_bad_values_raise_a_clear_error(values: dict[str, Any], option: str, words: str) -> None:
    with pytest.raises(MonitorConfigError, match=words) as info:
        MonitorConfig.from_mapping(values)
    assert info.value.option == option
    assert isinstance(info.value, MonitoringError)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(MonitorConfigError, match="rolling_window"):
        MonitorConfig(rolling_window=1)
