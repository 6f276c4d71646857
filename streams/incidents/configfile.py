"""YAML config files with line numbers: a bad value is reported as ``file, line N: where: why``.

PyYAML's SafeLoader drops the marks once it builds Python objects, so the loader here
builds dicts and lists that remember the line of each key and item.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from streams.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class LineDict(dict[Any, Any]):
    """A mapping that knows the line of the mapping itself and of each key."""

    line: int = 0
    lines: dict[Any, int]


class LineList(list[Any]):
    line: int = 0
    lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no arbitrary objects) that keeps lines and refuses duplicate keys."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[LineDict]:
    loader.flatten_mapping(node)
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.lines = {}
    yield data
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in data:
            # YAML keeps the last duplicate silently; in a config that hides a typo.
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.line = node.start_mark.line + 1
    data.lines = []
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.lines.append(item.start_mark.line + 1)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error becomes a ConfigError with the line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {type(exc).__name__}") from None


def line_of(data: Any, loc: Sequence[Any]) -> int | None:
    """The line of the deepest node on ``loc`` that the loader recorded."""
    line: int | None = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


def validate(model: type[M], data: Any, source: str) -> M:
    """Validate parsed YAML against a pydantic model; the first problem names file and line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        raise config_error(source, data, loc, first["msg"]) from None


def config_error(source: str, data: Any, loc: Sequence[Any], reason: str) -> ConfigError:
    line = line_of(data, loc)
    where = ".".join(str(p) for p in loc) or "(top level)"
    at = f", line {line}" if line is not None else ""
    return ConfigError(f"{source}{at}: {where}: {reason}")


def read_config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
