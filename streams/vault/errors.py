"""The vault's exceptions. Every one is a :class:`streams.errors.SecretsError`.

Messages name key ids, user ids, variables and paths, never key material.
"""

from __future__ import annotations

from streams.errors import SecretsError


class VaultError(SecretsError):
    """Root of the vault's errors."""


class InvalidInputError(VaultError, ValueError):
    """A caller passed something unusable (a naive datetime, a reserved user id, non-JSON findings)."""


class MasterKeyError(VaultError):
    """A master key is missing or malformed, or its source cannot be read."""


class UnknownMasterKeyError(MasterKeyError):
    """A wrapped data key names a master key the provider no longer holds.

    Usually a master key was dropped before :meth:`KeyStore.rewrap_all` ran: put it back,
    refresh the provider, re-wrap, and only then drop it.
    """


class KeyShreddedError(VaultError):
    """The data key a ciphertext needs is gone (shredded, expired or never created): it stays unreadable."""


class DecryptionError(VaultError):
    """A ciphertext does not authenticate: wrong associated data, wrong key, or altered bytes."""


class EnvelopeError(VaultError):
    """A stored wrapped-key envelope is malformed or does not authenticate under its master key."""


class RewrapError(VaultError):
    """:meth:`KeyStore.rewrap_all` could not re-wrap some users; the others were re-wrapped."""

    def __init__(self, rewrapped: int, failed: dict[str, str]) -> None:
        self.rewrapped = rewrapped
        self.failed = failed
        users = ", ".join(f"{user!r} ({reason})" for user, reason in sorted(failed.items()))
        super().__init__(f"re-wrapped {rewrapped} data keys; could not re-wrap {len(failed)} users: {users}")
