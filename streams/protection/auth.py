"""The bearer token of the worker's data endpoints (``/chargeback``, ``/forget``).

Configured with ``STREAMS_API_TOKEN`` or ``STREAMS_API_TOKEN_FILE``. With neither, the worker
creates a random token in ``data_dir/api-token`` (mode 0600) on start, like a notebook
server: data endpoints are never open by default, and a CLI on the same machine with the
same settings finds it there.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from streams.errors import ConfigError
from streams.settings import Settings

TOKEN_FILE_NAME = "api-token"  # noqa: S105  # a file name, not a secret


def _generated_path(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE_NAME


def configured_token(settings: Settings) -> str | None:
    if settings.api_token is not None and settings.api_token_file is not None:
        raise ConfigError("set STREAMS_API_TOKEN or STREAMS_API_TOKEN_FILE, not both")
    if settings.api_token is not None:
        token = settings.api_token.get_secret_value().strip()
    elif settings.api_token_file is not None:
        try:
            token = settings.api_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"STREAMS_API_TOKEN_FILE: cannot read ({exc.strerror})") from None
    else:
        return None
    if len(token) < 16:
        raise ConfigError("the API token must be at least 16 characters")
    return token


def client_token(settings: Settings) -> str | None:
    """The token a CLI sends: the configured one, else the worker's generated one if present."""
    token = configured_token(settings)
    if token is not None:
        return token
    try:
        return _generated_path(settings).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def worker_token(settings: Settings) -> str:
    """The token the worker requires; generated once into data_dir when none is configured."""
    token = client_token(settings)
    if token is not None:
        return token
    path = _generated_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker on this data_dir just made one: use theirs
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token)
    return token


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries the token (constant-time comparison)."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())
