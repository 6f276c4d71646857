"""Rendering of the broker's configs, POM and paths: the 3.9 vs 4.x differences, no JVM."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from streams.broker.config import (
    format_args,
    is_kafka4,
    logging_config,
    logging_jvm_flag,
    parse_version,
    render_properties,
    server_properties,
)
from streams.broker.exceptions import JarFetchError
from streams.broker.jars import MARKER, fetch_jars, logging_artifacts, render_pom
from streams.broker.java import java_major
from streams.broker.layout import JARS_HOME_ENV, BrokerLayout, layout_for
from streams.broker.process import new_cluster_id
from streams.errors import ConfigError
from streams.settings import Settings


def _layout(tmp_path: Path, version: str) -> BrokerLayout:
    settings = Settings(kafka_home=tmp_path / "k", kafka_port=19192, kafka_controller_port=19193)
    return layout_for(settings, version=version)


def test_versions_parse_and_split_at_4() -> None:
    assert parse_version("3.9.1") == (3, 9, 1)
    assert not is_kafka4("3.9.1")
    assert is_kafka4("4.1.1")
    assert is_kafka4("5.0.0")


@pytest.mark.parametrize("bad", ["3.9", "latest", "4.1.1-rc1", "", "2.8.2"])
def test_bad_versions_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_version(bad)


def test_common_properties(tmp_path: Path) -> None:
    for version in ("3.9.1", "4.1.1"):
        layout = _layout(tmp_path, version)
        props = server_properties(layout)
        assert props["process.roles"] == "broker,controller"
        assert props["node.id"] == "1"
        assert props["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
        assert props["controller.listener.names"] == "CONTROLLER"
        assert props["auto.create.topics.enable"] == "false"
        assert props["log.cleaner.enable"] == "true"
        assert props["num.partitions"] == "6"
        assert props["group.initial.rebalance.delay.ms"] == "0"
        for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
            assert props[key] == "1"
        assert props["transaction.state.log.min.isr"] == "1"
        assert props["log.dirs"] == str(tmp_path / "k" / f"data-{version}" / "kraft-logs")


def test_39_uses_static_voters(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "3.9.1")
    props = server_properties(layout)
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19193"
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19192"
    assert not any(key.startswith("share.") for key in props)
    assert "--standalone" not in format_args(layout, "ID")


def test_4x_uses_dynamic_quorum_and_standalone_format(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "4.1.1")
    props = server_properties(layout)
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19193"
    assert "controller.quorum.voters" not in props
    assert "CONTROLLER://127.0.0.1:19193" in props["advertised.listeners"]
    assert props["share.coordinator.state.topic.replication.factor"] == "1"
    args = format_args(layout, "ID")
    assert args[:3] == ["format", "-t", "ID"]
    assert args[-1] == "--standalone"


def test_properties_text_is_one_key_per_line() -> None:
    text = render_properties({"a.b": "1", "log.dirs": "C:\\x"})
    assert text.splitlines()[1:] == ["a.b=1", "log.dirs=C:\\\\x"]


def test_logging_backend_per_major() -> None:
    name3, text3 = logging_config("3.9.1")
    assert name3 == "log4j.properties"
    assert "org.apache.log4j.ConsoleAppender" in text3
    assert logging_jvm_flag("3.9.1", "/c/log4j.properties") == "-Dlog4j.configuration=file:/c/log4j.properties"
    name4, text4 = logging_config("4.1.1")
    assert name4 == "log4j2.properties"
    assert "appender.console.type = Console" in text4
    assert logging_jvm_flag("4.1.1", "/c/l.properties") == "-Dlog4j2.configurationFile=/c/l.properties"


def test_pom_per_major() -> None:
    pom3 = render_pom("3.9.1")
    assert "<artifactId>kafka_2.13</artifactId><version>3.9.1</version>" in pom3
    assert "slf4j-reload4j" in pom3
    assert "log4j-core" not in pom3
    pom4 = render_pom("4.1.1")
    assert "<version>4.1.1</version>" in pom4
    names = {artifact for _, artifact, _ in logging_artifacts("4.1.1")}
    assert names == {"log4j-core", "log4j-slf4j-impl", "log4j-slf4j2-impl"}
    assert "reload4j" not in pom4


def test_each_version_has_its_own_data_dir_and_shared_run_files(tmp_path: Path) -> None:
    l3, l4 = _layout(tmp_path, "3.9.1"), _layout(tmp_path, "4.1.1")
    assert l3.data_dir != l4.data_dir
    assert l3.pid_file == l4.pid_file  # one broker per kafka_home at a time
    assert l3.lib_dir == tmp_path / "k" / "3.9.1" / "lib"


def test_jar_cache_can_live_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(kafka_home=tmp_path / "home")
    monkeypatch.setenv(JARS_HOME_ENV, str(tmp_path / "cache"))
    assert layout_for(settings).lib_dir == tmp_path / "cache" / settings.kafka_version / "lib"
    assert layout_for(settings, jars_home=tmp_path / "x").lib_dir.parent.parent == tmp_path / "x"
    assert layout_for(settings).data_dir.parent == tmp_path / "home"
    monkeypatch.delenv(JARS_HOME_ENV)
    assert layout_for(settings).jars_home == tmp_path / "home"


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    ("banner", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_412"', 8),
        ('openjdk version "25" x', 25),
    ],
)
def test_java_major_reads_the_banner(tmp_path: Path, banner: str, major: int) -> None:
    fake = tmp_path / "java"
    fake.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert java_major(fake) == major
    assert java_major(tmp_path / "missing") is None
    assert os.access(fake, os.X_OK)


def test_fetched_jars_are_reused_without_maven(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "3.9.1")
    with pytest.raises(JarFetchError, match="not on PATH"):
        fetch_jars(layout, mvn="no-such-mvn-here")
    layout.lib_dir.mkdir(parents=True)
    (layout.version_dir / MARKER).write_text("kafka_2.13-3.9.1.jar\n")
    assert fetch_jars(layout, mvn="no-such-mvn-here") == layout.lib_dir  # offline, instant
