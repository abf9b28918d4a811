"""Configuration files of the local Apache Kafka broker that ``driftline services up`` starts.

The broker always has a PLAINTEXT listener (inter-broker traffic) and a CONTROLLER listener
(KRaft), both on loopback. Asked for SASL, it gets one more listener, SASL_PLAINTEXT, that
accepts SCRAM-SHA-256 and SCRAM-SHA-512; the users are bootstrapped into the metadata log when
the storage is formatted (KIP-900), so the broker keeps only salted SCRAM hashes, never a
password.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from streams.errors import ServiceError

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# Characters that the storage tool's ``[name=...,password=...]`` syntax cannot carry.
_SCRAM_UNSAFE = re.compile(r"[\s,=\[\]\"'\\]")


@dataclass(frozen=True)
class ScramUser:
    """One SCRAM user of the local broker's SASL listener."""

    mechanism: str
    name: str
    password: str

    def __post_init__(self) -> None:
        if self.mechanism not in SCRAM_MECHANISMS:
            raise ServiceError(
                "kafka",
                f"a local broker authenticates with {' or '.join(SCRAM_MECHANISMS)}, "
                f"not {self.mechanism}",
            )
        # Never echo the password back: the message names only the rule it broke.
        for what, value in (("user name", self.name), ("password", self.password)):
            if not value or _SCRAM_UNSAFE.search(value):
                raise ServiceError(
                    "kafka",
                    f"the SCRAM {what} of a local broker must be non-empty, without spaces, "
                    "quotes, backslashes or any of , = [ ]",
                )

    def storage_argument(self) -> str:
        """The ``--add-scram`` value of ``kafka-storage format``."""
        return f"{self.mechanism}=[name={self.name},password={self.password}]"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user only from its first byte."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def scram_argfile(path: Path, users: list[ScramUser]) -> str:
    """Write the ``--add-scram`` arguments to a private java @argfile; return ``@path``.

    Passwords on a command line are visible to every user through ``ps``; the java
    launcher expands an @argfile itself, so they stay in a 0600 file (deleted after use).
    """
    lines = [f"--add-scram\n{user.storage_argument()}\n" for user in users]
    write_private(path, "".join(lines))
    return f"@{path}"


def kafka_properties(
    port: int,
    cport: int,
    logs: Path,
    sasl_port: int | None = None,
    *,
    node_id: int = 1,
    voters: dict[int, int] | None = None,
) -> str:
    """Return the ``server.properties`` of a KRaft node on loopback (broker and controller).

    ``voters``: every node's controller port by node id, for a cluster (default: this node
    alone). Kafka's internal topics get min(3, nodes) replicas, and with three nodes or more
    every write to them must reach two (``min.insync.replicas``), so a cluster survives the
    loss of one node without losing a committed offset.
    """
    voters = voters or {node_id: cport}
    nodes = len(voters)
    factor = min(3, nodes)
    insync = 2 if factor >= 3 else 1
    quorum = ",".join(f"{n}@127.0.0.1:{p}" for n, p in sorted(voters.items()))
    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{cport}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    sasl: list[str] = []
    if sasl_port is not None:
        listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}")
        advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}")
        protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        sasl.append(f"sasl.enabled.mechanisms={','.join(SCRAM_MECHANISMS)}")
        # The broker only verifies clients on this listener: its login module needs no user.
        sasl.extend(
            f"listener.name.sasl_plaintext.{m.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            for m in SCRAM_MECHANISMS
        )
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={quorum}",
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={','.join(protocols)}",
            "inter.broker.listener.name=PLAINTEXT",
            *sasl,
            f"log.dirs={logs}",
            "num.partitions=4",
            # A node that stops heartbeating is fenced after this long and its partitions get
            # new leaders: Kafka's 9 s default is the longest part of a failover on loopback.
            "broker.heartbeat.interval.ms=500",
            "broker.session.timeout.ms=3000",
            f"default.replication.factor={factor}",
            f"min.insync.replicas={insync}",
            f"offsets.topic.replication.factor={factor}",
            "offsets.topic.num.partitions=4",
            f"transaction.state.log.replication.factor={factor}",
            f"transaction.state.log.min.isr={insync}",
            f"share.coordinator.state.topic.replication.factor={factor}",
            f"share.coordinator.state.topic.min.isr={insync}",
            "group.initial.rebalance.delay.ms=0",
            # Offset commits are written at once rather than batched for 5 ms: a worker's
            # committer awaits each commit before it takes the acks of the batches after it.
            "group.coordinator.append.linger.ms=0",
            "log.retention.hours=24",
            "",
        ]
    )


LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""

__all__ = [
    "LOG4J",
    "SCRAM_MECHANISMS",
    "ScramUser",
    "kafka_properties",
    "scram_argfile",
    "write_private",
]
