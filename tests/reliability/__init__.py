"""Reliability tests: security and fault injection against real Kafka and Redis."""
