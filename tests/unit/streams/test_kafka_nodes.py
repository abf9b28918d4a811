"""The metadata refresh of every aiokafka client asks a broker that answers first."""

from __future__ import annotations

import random
from collections import Counter

import aiokafka
from aiokafka.client import AIOKafkaClient

from streams.adapters import kafka_nodes
from streams.adapters.kafka_admin import client_options
from streams.adapters.kafka_nodes import ANSWERING, SUSPECT, UNKNOWN, order, rank


def test_building_any_clients_options_installs_the_ordered_refresh() -> None:
    client_options(None)
    assert aiokafka.__version__ == kafka_nodes.AIOKAFKA_VERSION, "check the refresh, then pin"
    assert AIOKafkaClient._metadata_update is kafka_nodes._metadata_update
    assert AIOKafkaClient._on_connection_closed is kafka_nodes._on_connection_closed


def test_a_stalled_or_failed_broker_is_asked_last_and_never_before_one_that_answers() -> None:
    ranks = {
        1: rank(connected=True, outstanding=True, idle_s=4.0, failed_s=None),  # frozen
        2: rank(connected=True, outstanding=False, idle_s=60.0, failed_s=None),
        3: rank(connected=False, outstanding=False, idle_s=0.0, failed_s=None),
        "bootstrap": rank(connected=False, outstanding=False, idle_s=0.0, failed_s=2.0),
    }
    assert ranks == {1: SUSPECT, 2: ANSWERING, 3: UNKNOWN, "bootstrap": SUSPECT}
    rng = random.Random(7)
    orders = [order(ranks, rng) for _ in range(200)]
    assert {tuple(o[:2]) for o in orders} == {(2, 3)}
    # the suspects still come last, in both orders: a refresh never gives up on them
    assert Counter(o[2] for o in orders).keys() == {1, "bootstrap"}


def test_a_broker_is_suspect_only_for_a_while_after_its_failure() -> None:
    fresh = rank(connected=False, outstanding=False, idle_s=0.0, failed_s=1.0)
    old = rank(connected=False, outstanding=False, idle_s=0.0, failed_s=kafka_nodes.SUSPECT_S)
    assert (fresh, old) == (SUSPECT, UNKNOWN)
