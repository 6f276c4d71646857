"""The project's exceptions: one root, two categories.

A *permanent* error means the record itself is bad: retrying cannot help, so it goes to
the dead-letter topic with the reason. A *retryable* error means something around the
record failed (broker away, webhook 503): retry with a bound, then surface it.
"""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every error this package raises on purpose."""


class PermanentError(StreamsError):
    """The input is bad; dead-letter it, never retry it."""


class RetryableError(StreamsError):
    """A dependency failed; the same operation may succeed later."""


class ConfigError(StreamsError):
    """A configuration file or setting is invalid; raised at load time with the location."""


class ValidationError(PermanentError):
    """An event does not satisfy the contract. ``problems`` lists (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))


class DecodeError(PermanentError):
    """Bytes on a topic are neither valid JSON nor Avro of a known schema version."""


class BufferFullError(RetryableError):
    """The publisher's bounded buffer is full: the broker is slower than the daemon."""


class BrokerUnavailableError(RetryableError):
    """The Kafka broker cannot be reached."""


class SecretsError(StreamsError):
    """A key or secret cannot be loaded, or a ciphertext cannot be opened."""
