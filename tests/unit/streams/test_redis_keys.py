"""Every Redis key of a model hashes to one Cluster slot; the alerts' keys to the stream's."""

from __future__ import annotations

import inspect

from redis.crc import key_slot

from streams.adapters.redis_alerts import dedupe_suffix
from streams.adapters.redis_join import RING, join_keys
from streams.contracts import names


def model_keys(model: str) -> list[str]:
    """Every per-model key name the helpers of :mod:`streams.contracts.names` build."""
    out = [f"{names.pairs_prefix(model)}:7"]
    for name, fn in vars(names).items():
        if inspect.isfunction(fn) and name.endswith("_key"):
            extra = ["7"] * (len(inspect.signature(fn).parameters) - 1)  # a version, an id
            out.append(fn(model, *extra))
    return out + join_keys(names.join_prefix(model))


def test_every_key_of_a_model_lies_in_the_slot_of_its_hash_tag() -> None:
    for model in ("credit", "sea", "a.b-c_9"):
        keys = model_keys(model)
        assert len(keys) > 2 * RING + 9
        assert all(f"{{{model}}}" in k for k in keys)
        assert {key_slot(k.encode()) for k in keys} == {key_slot(model.encode())}


def test_two_models_land_in_different_slots() -> None:
    slots = {key_slot(names.state_key(m).encode()) for m in ("credit", "fraud", "churn")}
    assert len(slots) == 3


def test_alert_dedupe_keys_share_the_alert_stream_slot() -> None:
    alert = {"model": "credit", "version": "3", "kind": "data_drift", "feature": "age"}
    key = names.ALERT_DEDUPE_PREFIX + dedupe_suffix(alert)
    assert key_slot(key.encode()) == key_slot(names.ALERTS_KEY.encode())
    assert key.endswith("credit:3:data_drift:age")


def test_legacy_prefixes_are_the_untagged_names() -> None:
    state, join = names.legacy_prefixes("credit")
    assert "{" not in state + join
    assert names.state_key("credit").replace("{credit}", "model:credit").startswith(state)


def test_the_sinks_keys_share_the_alert_stream_slot() -> None:
    # the delivery script acknowledges an entry and records its delivery in one call
    stream = key_slot(names.ALERTS_KEY.encode())
    assert key_slot(names.sink_delivery_mark("ops", "a1f3").encode()) == stream
    assert key_slot(names.sink_open_hash("pager").encode()) == stream
