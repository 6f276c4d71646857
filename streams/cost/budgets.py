"""``budgets.yaml``: per-tenant budgets, accounting policy, and a holder that hot-reloads.

Shape (see the repo's ``budgets.yaml``)::

    version: 1
    accounting: {grace_hours: 48, dedupe_window_hours: 168, ...}   # optional
    default:                      # optional: tenants not listed below
      timezone: UTC
      budgets: [{period: monthly, limit_usd: "100", hard_kill: false}]
    tenants:
      acme-corp:
        timezone: America/New_York
        budgets:
          - {name: monthly, period: monthly, limit_usd: "5000.00", thresholds: [50, 80, 100]}
          - {name: run-cap, period: per_run, limit_usd: "25", hard_kill: true}

The time zone is the tenant's, not the budget's: one tenant has one set of day and month
periods, which the ledger and chargeback use too. A tenant listed with ``budgets: []`` has
no budget (the default does not apply to it). YAML numbers such as ``limit_usd: 100.50``
are read as exact decimals, never floats.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.cost.periods import zone
from streams.errors import ConfigError
from streams.models import BudgetPeriod, Money

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Budget(_Strict):
    """One limit on one period. ``name`` defaults to the period and is unique per tenant."""

    name: str = ""
    period: BudgetPeriod
    limit_usd: Money
    hard_kill: bool = False
    thresholds: list[Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=lambda: [80, 100])

    @field_validator("limit_usd")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("thresholds")
    @classmethod
    def _sorted_unique(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("needs at least one threshold (percent of the limit)")
        if len(set(value)) != len(value):
            raise ValueError("has a threshold twice")
        return sorted(value)

    @model_validator(mode="after")
    def _default_name(self) -> Budget:
        if not self.name:
            # Frozen model: set the derived default the one way pydantic allows.
            object.__setattr__(self, "name", self.period.value)
        if not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r} must match {_NAME_RE.pattern}")
        return self


class TenantBudgets(_Strict):
    timezone: str = "UTC"
    budgets: list[Budget] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("budgets")
    @classmethod
    def _unique_names(cls, value: list[Budget]) -> list[Budget]:
        names = [b.name for b in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two budgets are named {name!r}; give each a distinct name")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def has(self, period: BudgetPeriod) -> bool:
        return any(b.period is period for b in self.budgets)


class Accounting(_Strict):
    """Policy of the ledger. Changing it on reload applies to events counted afterwards."""

    # A day or month keeps accepting events this long after its end; later ones are adjustments.
    grace_hours: int = Field(default=48, ge=0, le=24 * 366)
    # The longest a duplicate may arrive after its first copy (publisher retries, restarts).
    dedupe_window_hours: int = Field(default=168, ge=1, le=24 * 400)
    # Events stamped further than this ahead of their arrival are dead-lettered.
    max_future_skew_seconds: int = Field(default=300, ge=0, le=7 * 24 * 3600)
    # Closed days kept in the state for reports (months are kept; the ledger is the archive).
    keep_days: int = Field(default=93, ge=1, le=800)
    # A run with no event for this long is dropped from the state; its spend restarts at 0.
    run_idle_days: int = Field(default=7, ge=1, le=400)

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.grace_hours)

    @property
    def dedupe_window(self) -> timedelta:
        return timedelta(hours=self.dedupe_window_hours)

    @property
    def max_future_skew(self) -> timedelta:
        return timedelta(seconds=self.max_future_skew_seconds)


_NO_BUDGETS = TenantBudgets()


class BudgetsConfig(_Strict):
    version: Literal[1] = 1
    accounting: Accounting = Field(default_factory=Accounting)
    default: TenantBudgets | None = None
    tenants: dict[Annotated[str, Field(min_length=1, max_length=256)], TenantBudgets] = Field(default_factory=dict)

    def for_tenant(self, user_id: str) -> TenantBudgets:
        """The tenant's entry, else the default, else no budgets in UTC."""
        found = self.tenants.get(user_id)
        if found is not None:
            return found
        return self.default if self.default is not None else _NO_BUDGETS


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (a repeated tenant would silently win) and
    reads floats as exact ``Decimal``."""


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _decimal(loader: _Loader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite decimal", node.start_mark
        ) from None
    if not value.is_finite():
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not finite", node.start_mark)
    return value


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_budgets(text: str, source: str) -> BudgetsConfig:
    """Validate YAML text; ``ConfigError`` names ``source``, the YAML path and the problem."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  # _Loader is a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{source}: {where}: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: (top level): must be a mapping with 'tenants' and optional 'default'")
    try:
        return BudgetsConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [f"{_loc(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def load_budgets(path: Path) -> BudgetsConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_budgets(text, str(path))


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    error: ConfigError | None = None


class BudgetBook:
    """The budgets in force. ``reload_if_changed()`` swaps in a new valid file; an invalid
    one is reported and the previous budgets stay in force. The first load must succeed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text, stamp = self._read()
        self._config = parse_budgets(text, str(path))
        self._digest = _digest(text)
        self._stamp = stamp
        self.last_error: ConfigError | None = None

    @property
    def config(self) -> BudgetsConfig:
        return self._config

    def _read(self) -> tuple[str, tuple[int, int, int]]:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read: {exc}") from None
        return text, (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def reload_if_changed(self) -> ReloadResult:
        """Cheap when nothing changed (one stat). Returns whether the budgets changed, and the
        error when the file is unreadable or invalid, once per change of the file."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError as exc:
            return self._failed(_MISSING, ConfigError(f"{self.path}: cannot read: {exc}"))
        if stamp == self._stamp:
            return ReloadResult(changed=False)
        try:
            text, stamp = self._read()
        except ConfigError as exc:
            return self._failed(_MISSING, exc)
        self._stamp = stamp
        digest = _digest(text)
        if digest == self._digest:
            self.last_error = None  # touched, or put back as it was
            return ReloadResult(changed=False)
        try:
            config = parse_budgets(text, str(self.path))
        except ConfigError as exc:
            self.last_error = exc
            return ReloadResult(changed=False, error=exc)
        self._config, self._digest, self.last_error = config, digest, None
        return ReloadResult(changed=True)

    def _failed(self, stamp: tuple[int, int, int], error: ConfigError) -> ReloadResult:
        first = self._stamp != stamp
        self._stamp, self.last_error = stamp, error
        return ReloadResult(changed=False, error=error if first else None)


_MISSING = (-1, -1, -1)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
