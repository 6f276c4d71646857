"""Rendering of server.properties and the logging config; pure functions of the layout."""

from __future__ import annotations

import re

from streams.broker.layout import BrokerLayout
from streams.errors import ConfigError

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

# Loggers that are chatty at INFO on every request or partition change.
_QUIET_LOGGERS = ("kafka.request.logger", "state.change.logger", "kafka.authorizer.logger")


def parse_version(version: str) -> tuple[int, int, int]:
    """``"3.9.1"`` -> ``(3, 9, 1)``; only plain releases, and only those with KRaft combined mode."""
    match = _VERSION.match(version)
    if match is None:
        raise ConfigError(f"kafka_version {version!r} is not a release like 3.9.1 or 4.1.1")
    parsed = (int(match[1]), int(match[2]), int(match[3]))
    if parsed < (3, 3, 0):
        raise ConfigError(f"kafka_version {version}: KRaft combined mode needs Kafka >= 3.3")
    return parsed


def is_kafka4(version: str) -> bool:
    """4.x differs from 3.x in logging (log4j2) and in how the controller quorum is bootstrapped."""
    return parse_version(version)[0] >= 4


def server_properties(layout: BrokerLayout) -> dict[str, str]:
    """The broker's configuration as an ordered mapping (rendered by :func:`render_properties`)."""
    host, port, cport = layout.host, layout.port, layout.controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
    }
    if is_kafka4(layout.version):
        # 4.x prefers a dynamic quorum (KIP-853): bootstrap servers here, `format --standalone`
        # writes the single voter; the controller must then advertise its own endpoint.
        props["controller.quorum.bootstrap.servers"] = f"{host}:{cport}"
        props["advertised.listeners"] = f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}"
    else:
        props["controller.quorum.voters"] = f"1@{host}:{cport}"
        props["advertised.listeners"] = f"PLAINTEXT://{host}:{port}"
    props |= {
        "log.dirs": str(layout.log_dirs),
        # Topics come from `streams topics apply` or the tests; a typo must not create one.
        "auto.create.topics.enable": "false",
        "num.partitions": "6",
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Faust changelogs are compacted topics: the cleaner must run.
        "log.cleaner.enable": "true",
        "delete.topic.enable": "true",
        # Small machine: fewer threads than the defaults sized for servers.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    if is_kafka4(layout.version):
        # The share-group state topic (KIP-932) defaults to RF 3, impossible on one node.
        props["share.coordinator.state.topic.replication.factor"] = "1"
        props["share.coordinator.state.topic.min.isr"] = "1"
    return props


def render_properties(props: dict[str, str]) -> str:
    """Java properties text; a backslash is the only character in our values that needs escaping."""
    lines = ["# Written by streams.broker on every start; edits are overwritten."]
    lines += [f"{key}={_escape(value)}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\")


def logging_config(version: str) -> tuple[str, str]:
    """(file name, text) of a console-only logging config: the console goes to broker.log."""
    pattern = "[%d] %p %m (%c)%n"
    if is_kafka4(version):
        lines = [
            "status = warn",
            "appender.console.type = Console",
            "appender.console.name = STDOUT",
            "appender.console.layout.type = PatternLayout",
            f"appender.console.layout.pattern = {pattern}",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.stdout.ref = STDOUT",
        ]
        for i, name in enumerate(_QUIET_LOGGERS):
            lines += [f"logger.quiet{i}.name = {name}", f"logger.quiet{i}.level = WARN"]
        return "log4j2.properties", "\n".join(lines) + "\n"
    lines = [
        "log4j.rootLogger=INFO, stdout",
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
        f"log4j.appender.stdout.layout.ConversionPattern={pattern}",
    ]
    lines += [f"log4j.logger.{name}=WARN" for name in _QUIET_LOGGERS]
    return "log4j.properties", "\n".join(lines) + "\n"


def logging_jvm_flag(version: str, path: str) -> str:
    """The system property that points the JVM's logging backend at ``path``."""
    if is_kafka4(version):
        return f"-Dlog4j2.configurationFile={path}"
    return f"-Dlog4j.configuration=file:{path}"


def format_args(layout: BrokerLayout, cluster_id: str) -> list[str]:
    """StorageTool arguments that format the log dirs once."""
    args = ["format", "-t", cluster_id, "-c", str(layout.server_properties)]
    if is_kafka4(layout.version):
        args.append("--standalone")  # this node is the initial (and only) voter
    return args
