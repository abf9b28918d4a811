"""What the scoring loop keeps of a batch between its fetch and its commit."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.scoring.batch import BatchResult


@dataclass
class BatchStats:
    """What one scored batch did, for metrics and the liveness watchdog."""

    events: int
    predictions: int
    dead_letters: int
    seconds: float
    latencies_ms: Sequence[float]


@dataclass
class ScoredBatch:
    """A fetched batch, scored: what the loop sends once it holds the lock."""

    started: float  # perf_counter at the fetch
    events: int
    result: BatchResult


@dataclass
class InFlight:
    """A sent batch waiting for its acknowledgements, in the committer's queue."""

    acks: list[Awaitable[Any]]
    offsets: dict[TopicPartition, OffsetAndMetadata]  # to commit once acknowledged
    starts: dict[TopicPartition, int]  # to score again from when not delivered
    stats: BatchStats


__all__ = ["BatchStats", "InFlight", "ScoredBatch"]
