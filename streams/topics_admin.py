"""Make the broker's topics match topics.yaml: create what is missing, fix drifted configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.errors import StreamsError
from streams.kafka import admin, broker_errors
from streams.topology import TopicSpec, Topology


@dataclass(frozen=True)
class ActualTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass
class TopicPlan:
    spec: TopicSpec
    create: bool = False
    add_partitions: int | None = None
    config_changes: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not (self.create or self.add_partitions or self.config_changes or self.problems)

    def describe(self) -> list[str]:
        name = self.spec.name
        if self.create:
            return [
                f"{name}: missing (want {self.spec.partitions} partitions, {self.spec.cleanup_policy}, "
                f"retention.ms={self.spec.retention_ms})"
            ]
        lines = [f"{name}: {p}" for p in self.problems]
        if self.add_partitions:
            lines.append(f"{name}: partitions below spec, want {self.add_partitions}")
        lines += [f"{name}: {k} is {old!r}, want {new!r}" for k, (old, new) in sorted(self.config_changes.items())]
        return lines


def _normalize(key: str, value: str | None) -> str | None:
    if value is not None and key == "cleanup.policy":
        return ",".join(sorted(v.strip() for v in value.split(",")))
    return value


def plan(spec: TopicSpec, actual: ActualTopic | None) -> TopicPlan:
    """What must change for ``actual`` to match ``spec``. Pure, so it tests without a broker."""
    result = TopicPlan(spec=spec)
    if actual is None:
        result.create = True
        return result
    if actual.partitions < spec.partitions:
        result.add_partitions = spec.partitions
    elif actual.partitions > spec.partitions:
        # Kafka cannot shrink a topic; keys would move anyway. Report, never "fix".
        result.problems.append(f"has {actual.partitions} partitions, spec says {spec.partitions} (cannot shrink)")
    if actual.replication_factor != spec.replication_factor:
        result.problems.append(
            f"replication factor is {actual.replication_factor}, spec says {spec.replication_factor} "
            "(change it with a reassignment, not here)"
        )
    for key, want in spec.desired_configs().items():
        have = actual.configs.get(key)
        if _normalize(key, have) != _normalize(key, want):
            result.config_changes[key] = (have, want)
    return result


async def _describe(client: Any, names: list[str]) -> dict[str, ActualTopic]:
    existing = set(await client.list_topics())
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    described = {t["topic"]: t for t in await client.describe_topics(wanted)}
    responses = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted])
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            _, _, _, name, entries = resource[:5]
            configs[name] = {e[0]: e[1] for e in entries}
    out = {}
    for name in wanted:
        parts = described[name]["partitions"]
        rf = len(parts[0]["replicas"]) if parts else 0
        out[name] = ActualTopic(name, len(parts), rf, configs.get(name, {}))
    return out


async def check(bootstrap: str, topology: Topology) -> list[TopicPlan]:
    async with admin(bootstrap) as client, broker_errors(bootstrap):
        actual = await _describe(client, [t.name for t in topology.topics.values()])
    return [plan(spec, actual.get(spec.name)) for spec in topology.topics.values()]


async def apply(bootstrap: str, topology: Topology) -> list[TopicPlan]:
    """Create missing topics, raise partition counts, set drifted configs. Idempotent."""
    plans = await check(bootstrap, topology)
    async with admin(bootstrap) as client, broker_errors(bootstrap):
        new = [
            NewTopic(
                p.spec.name,
                p.spec.partitions,
                p.spec.replication_factor,
                topic_configs=p.spec.desired_configs(),
            )
            for p in plans
            if p.create
        ]
        if new:
            response = await client.create_topics(new)
            _raise_on_errors("create", getattr(response, "topic_errors", getattr(response, "topic_error_codes", [])))
        grow = {p.spec.name: NewPartitions(p.add_partitions) for p in plans if p.add_partitions}
        if grow:
            response = await client.create_partitions(grow)
            _raise_on_errors("add partitions to", response.topic_errors)
        drifted = [p for p in plans if p.config_changes and not p.create]
        if drifted:
            # AlterConfigs replaces a topic's whole dynamic config: send the full desired set.
            resources = [
                ConfigResource(ConfigResourceType.TOPIC, p.spec.name, configs=p.spec.desired_configs()) for p in drifted
            ]
            for response in await client.alter_configs(resources):
                for resource in response.resources:
                    if resource[0]:
                        raise StreamsError(f"cannot alter configs of {resource[3]}: {resource[1] or resource[0]}")
    return plans


def _raise_on_errors(action: str, errors: list[Any]) -> None:
    for entry in errors:
        name, code = entry[0], entry[1]
        if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS: a concurrent apply won the race
            message = entry[2] if len(entry) > 2 and entry[2] else f"error code {code}"
            raise StreamsError(f"cannot {action} topic {name}: {message}")
