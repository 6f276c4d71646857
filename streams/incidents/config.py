"""detectors.yaml -> validated detector thresholds. Times are seconds, money is Decimal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.incidents.configfile import parse_yaml, read_config_text, validate
from streams.models import EventType

Seconds = Annotated[int, Field(ge=1, le=30 * 86400)]
IncidentType = Literal["repeat_error", "cost_spike", "latency_regression_p99", "volume_spike"]
INCIDENT_TYPES: tuple[IncidentType, ...] = (
    "repeat_error",
    "cost_spike",
    "latency_regression_p99",
    "volume_spike",
)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Windowed(_Strict):
    enabled: bool = True
    window_seconds: Seconds = 300
    bucket_seconds: Seconds = 10

    @model_validator(mode="after")
    def _window_holds_buckets(self) -> _Windowed:
        if self.window_seconds % self.bucket_seconds:
            raise ValueError("window_seconds must be a multiple of bucket_seconds")
        return self


class RepeatErrorConfig(_Windowed):
    """The same error code at least ``min_count`` times within the sliding window."""

    min_count: int = Field(default=20, ge=1)
    # Across all tenants; None turns the global scope off.
    global_min_count: int | None = Field(default=100, ge=1)


class _Baselined(_Windowed):
    baseline_seconds: Seconds = 3600
    # A scope younger than this has no trustworthy baseline yet and is not evaluated.
    min_history_seconds: Seconds = 1800

    @model_validator(mode="after")
    def _baseline_fits(self) -> _Baselined:
        if self.baseline_seconds % self.bucket_seconds:
            raise ValueError("baseline_seconds must be a multiple of bucket_seconds")
        if self.min_history_seconds > self.baseline_seconds:
            raise ValueError("min_history_seconds must not exceed baseline_seconds")
        return self


class CostSpikeConfig(_Baselined):
    """Cost rate over the window above ``factor`` times the baseline rate."""

    factor: Decimal = Field(default=Decimal(5), gt=0)
    # Floors against noise: tiny spends multiply easily.
    min_window_cost_usd: Decimal = Field(default=Decimal("1"), ge=0)
    min_baseline_cost_usd: Decimal = Field(default=Decimal("0.01"), gt=0)
    include_total: bool = True


class LatencyConfig(_Windowed):
    """p99 latency per model (and per model+region) above a threshold for K consecutive ticks."""

    threshold_ms: int = Field(default=30_000, ge=1)
    consecutive_ticks: int = Field(default=3, ge=1, le=1000)
    min_samples: int = Field(default=20, ge=1)
    relative_accuracy: float = Field(default=0.01, gt=0, lt=1)


class VolumeSpikeConfig(_Baselined):
    """One user's call count in the window at least ``factor`` times the baseline count."""

    factor: Decimal = Field(default=Decimal(10), gt=1)
    min_calls: int = Field(default=50, ge=1)
    event_types: tuple[EventType, ...] = (EventType.POST_AGENT_CALL, EventType.AGENT_ERROR)


class DetectorsSection(_Strict):
    repeat_error: RepeatErrorConfig = RepeatErrorConfig()
    cost_spike: CostSpikeConfig = CostSpikeConfig()
    latency_regression_p99: LatencyConfig = LatencyConfig()
    volume_spike: VolumeSpikeConfig = VolumeSpikeConfig()


class TrackerConfig(_Strict):
    # Resolve only after the condition stayed false this long (hysteresis against flapping).
    hold_down_seconds: Seconds = 300
    # Notify again about a still-open incident after this long.
    repeat_interval_seconds: Seconds = 4 * 3600


class DetectorsConfig(_Strict):
    tick_seconds: Annotated[int, Field(ge=1, le=3600)] = 5
    # Events whose time is older than now minus this are too late for any window.
    max_event_lag_seconds: Seconds = 600
    tracker: TrackerConfig = TrackerConfig()
    detectors: DetectorsSection = DetectorsSection()


def parse_detectors_config(text: str, source: str = "detectors.yaml") -> DetectorsConfig:
    return validate(DetectorsConfig, parse_yaml(text, source) or {}, source)


def load_detectors_config(path: Path) -> DetectorsConfig:
    """Read and validate detectors.yaml; raises ConfigError naming file, line and reason."""
    return parse_detectors_config(read_config_text(path), str(path))
