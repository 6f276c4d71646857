"""The encrypted vault: per-user data keys, envelope encryption and crypto-shredding.

The sanitizer replaces PII in events; the originals it replaced are kept only here, encrypted,
so they can be shown to someone entitled to them and destroyed on request or by age without
rewriting any topic. This package is the crypto core (pure Python, no Kafka); the Faust wiring
lives elsewhere.

Key hierarchy
=============

::

    master key (32 bytes, from a MasterKeyProvider; several by id, one "current")
      └─ wraps, with AES-256-GCM, associated data = (user id, key id, validity)
         data key (DEK, 32 random bytes) per user per period (a day by default)
           └─ encrypts, with AES-256-GCM, a fresh 96-bit nonce each time
              vault records (aad = event id + user id) and dead-letter originals

* A DEK's ``key_id`` encodes its period and a random tail, e.g.
  ``20260101T000000Z.86400s.3f9a1c2e7b10``; ids are never reused, even after a shred.
* Wrapped DEKs are kept in a :class:`WrappedKeyBackend`, one JSON *envelope* per user id
  (base64 strings only). Any ``MutableMapping[str, dict]`` works, a plain dict or a Faust
  ``Table`` whose changelog is the compacted ``vault_keys`` topic (``hook.vault.keys``).
* The plaintext DEK exists only in memory for one operation; it is never cached, logged or
  stored unwrapped.

Crypto-shredding
================

:meth:`KeyStore.shred` deletes the user's envelope (on a Faust table: a tombstone). Every
vault record and dead letter of that user becomes unreadable at once, although the ciphertexts
stay on their topics until retention drops them: decrypting raises :class:`KeyShreddedError`.
:meth:`KeyStore.shred_older_than` destroys only the DEKs whose period ended by a cutoff (one
user or all), which is how per-tenant retention shorter than the topic's retention works.
Other users, and a user's newer DEKs, are untouched.

Dead letters whose user is unknown are sealed under the reserved principal ``_unattributed``
(:data:`UNATTRIBUTED`); shredding a user cannot reach them, only retention does.

Master-key rotation
===================

1. Add the new key to the source as current and keep the old one
   (``STREAMS_MASTER_KEY="k2:<new>,k1:<old>"``, or the key file), then ``provider.refresh()``
   (the file and secrets-backend providers re-read in place; the environment needs a restart).
   New DEKs are wrapped under ``k2``; those under ``k1`` still open.
2. Run :meth:`KeyStore.rewrap_all` (on every worker, as each holds only its table partitions).
   It re-wraps DEKs, not data: no vault record is rewritten.
3. Only then remove ``k1`` from the source and refresh. A DEK still under ``k1`` would raise
   :class:`UnknownMasterKeyError`, not lose data: put ``k1`` back and re-wrap.

``python -m streams.vault generate-key [--id k2]`` prints a new key (development).

A production secrets backend
============================

Subclass :class:`SecretsBackendMasterKeyProvider` and implement ``load_keyring()``: fetch every
master key still in use (not only the newest) with a short-lived identity, return a
:class:`Keyring`, raise :class:`MasterKeyError` when the backend is unreachable (the cached keys
stay in use), keep material out of logs and errors, and call ``refresh()`` on a timer. Keeping
the master key inside a KMS (wrap/unwrap remotely) is stronger and not implemented.

Honest limits
=============

* A compacted topic keeps the superseded value of a key until the log cleaner runs: after a
  shred, the old wrapped DEK is still on disk in ``hook.vault.keys`` for a while, and anyone with
  that record *and* the master key could unwrap it. ``topics.yaml`` sets ``segment.ms``,
  ``max.compaction.lag.ms`` and ``delete.retention.ms`` to one hour to bound that window; a
  shred is complete after roughly that (plus broker log-cleaner scheduling).
* Backups and replicas of that topic (MirrorMaker, disk snapshots, a Faust RocksDB store) keep
  wrapped DEKs beyond compaction. They are harmless only once the master key that wrapped them
  is gone too: rotate the master key (and re-wrap) at least as often as the longest retention
  promise, and destroy old master keys, in the secrets backend and in its backups.
* Python cannot wipe memory: a DEK or master key may linger in freed memory of a live process.
* Per-period shredding is as fine as the period: data can outlive its cutoff by up to one
  period.

Errors are :class:`streams.errors.SecretsError` subclasses; no message or repr holds key
material. Importing this package has no side effects.
"""

from __future__ import annotations

from streams.vault.errors import (
    DecryptionError,
    EnvelopeError,
    InvalidInputError,
    KeyShreddedError,
    MasterKeyError,
    RewrapError,
    UnknownMasterKeyError,
    VaultError,
)
from streams.vault.keystore import (
    DataKey,
    Envelope,
    InMemoryBackend,
    KeyStore,
    MappingBackend,
    WrappedKeyBackend,
)
from streams.vault.master import (
    BaseMasterKeyProvider,
    EnvMasterKeyProvider,
    FileMasterKeyProvider,
    Keyring,
    MasterKey,
    MasterKeyProvider,
    SecretsBackendMasterKeyProvider,
    StaticMasterKeyProvider,
    generate_master_key,
    parse_keyring,
    provider_from_settings,
)
from streams.vault.records import (
    UNATTRIBUTED,
    open_dead_letter,
    open_record,
    record_aad,
    seal_dead_letter,
    seal_findings,
)

__all__ = [
    "UNATTRIBUTED",
    "BaseMasterKeyProvider",
    "DataKey",
    "DecryptionError",
    "EnvMasterKeyProvider",
    "Envelope",
    "EnvelopeError",
    "FileMasterKeyProvider",
    "InMemoryBackend",
    "InvalidInputError",
    "KeyShreddedError",
    "KeyStore",
    "Keyring",
    "MappingBackend",
    "MasterKey",
    "MasterKeyError",
    "MasterKeyProvider",
    "RewrapError",
    "SecretsBackendMasterKeyProvider",
    "StaticMasterKeyProvider",
    "UnknownMasterKeyError",
    "VaultError",
    "WrappedKeyBackend",
    "generate_master_key",
    "open_dead_letter",
    "open_record",
    "parse_keyring",
    "provider_from_settings",
    "record_aad",
    "seal_dead_letter",
    "seal_findings",
]
