"""topics.yaml -> validated topic specs. Pure: the admin calls live in ``streams.topics_admin``."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.errors import ConfigError

CleanupPolicy = Literal["delete", "compact", "compact,delete"]


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    purpose: str
    partitions: int = Field(ge=1, le=1024)
    replication_factor: int = Field(ge=1, le=16)
    cleanup_policy: CleanupPolicy
    retention_ms: int = Field(ge=-1)
    schema_name: str | None = Field(alias="schema")
    configs: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TopicSpec:
        for reserved in ("cleanup.policy", "retention.ms"):
            if reserved in self.configs:
                raise ValueError(f"set {reserved} with the dedicated field, not under configs")
        return self

    def desired_configs(self) -> dict[str, str]:
        """The topic-level configs Kafka should report for this topic."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms), **self.configs}


class Topology(BaseModel):
    model_config = ConfigDict(frozen=True)

    topics: dict[str, TopicSpec]

    def __getitem__(self, key: str) -> TopicSpec:
        return self.topics[key]

    def by_name(self, name: str) -> TopicSpec | None:
        return next((t for t in self.topics.values() if t.name == name), None)

    def resolve(self, name_or_key: str) -> TopicSpec | None:
        """A topic by its key in topics.yaml (``raw``) or its Kafka name (``hook.events.raw``)."""
        return self.topics.get(name_or_key) or self.by_name(name_or_key)


def parse_topology(text: str, source: str = "topics.yaml", schemas_dir: Path | None = None) -> Topology:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("topics"), dict):
        raise ConfigError(f"{source}: expected a mapping with a 'topics' mapping")
    defaults = raw.get("defaults") or {}
    topics: dict[str, TopicSpec] = {}
    for key, body in raw["topics"].items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: topics.{key}: expected a mapping")
        merged = {"replication_factor": defaults.get("replication_factor", 1), **body, "key": key}
        merged["configs"] = {
            **{k: str(v) for k, v in (defaults.get("configs") or {}).items()},
            **{k: str(v) for k, v in (body.get("configs") or {}).items()},
        }
        try:
            spec = TopicSpec.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{source}: topics.{key}.{where}: {first['msg']}") from None
        schema_file = schemas_dir / f"{spec.schema_name}.avsc" if schemas_dir and spec.schema_name else None
        if schema_file is not None and not schema_file.is_file():
            raise ConfigError(f"{source}: topics.{key}.schema: no schemas/{spec.schema_name}.avsc")
        topics[key] = spec
    names = [t.name for t in topics.values()]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: two topics share a Kafka name")
    return Topology(topics=topics)


@cache
def load_topology(path: Path, schemas_dir: Path | None = None) -> Topology:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_topology(text, str(path), schemas_dir)
