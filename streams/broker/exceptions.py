"""Errors of the local broker tooling; all derive from the project's root categories."""

from __future__ import annotations

from streams.errors import BrokerUnavailableError


class BrokerStartError(BrokerUnavailableError):
    """The broker could not be prepared or did not become ready; the message carries the log's tail."""


class PortConflictError(BrokerStartError):
    """The port is held by something we must not reuse: not Kafka, or a broker of another version."""


class JarFetchError(BrokerStartError):
    """Maven could not fetch the broker jars (offline, or an unknown version)."""
