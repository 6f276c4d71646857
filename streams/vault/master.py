"""Master keys: the keys that wrap every data key, and the pluggable providers that hold them.

A provider holds a *keyring*: several master keys by id, one of them current. New data keys
are wrapped under the current one; the others stay readable so data keys wrapped under them
can still be opened until :meth:`streams.vault.KeyStore.rewrap_all` moves them over.
``refresh()`` re-reads the source, which is how a key is rotated without a restart.

Keyring text (``STREAMS_MASTER_KEY``, a line file): ``"k2:<base64>,k1:<base64>"``, the first
entry current. A bare ``"<base64>"`` is one key with the id ``default``. Each key is the
standard base64 of exactly 32 random bytes; :func:`generate_master_key` makes one.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import SecretStr

from streams.vault.errors import MasterKeyError, UnknownMasterKeyError

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

KEY_BYTES = 32
DEFAULT_KEY_ID = "default"
ENV_VARIABLE = "STREAMS_MASTER_KEY"
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GENERATE_HINT = "generate one with `python -m streams.vault generate-key`"


def generate_master_key() -> str:
    """A new master key for development: the base64 of 32 bytes from the OS's CSPRNG."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True, eq=False, slots=True)
class MasterKey:
    """One master key. ``material`` is the 32 raw bytes; the repr never shows it.

    ``eq=False``: keys compare by identity, so nothing compares material in variable time.
    """

    key_id: str
    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise MasterKeyError(f"master key id {self.key_id!r} is invalid: use 1-64 letters, digits, '.', '_' or '-'")
        if len(self.material) != KEY_BYTES:
            raise MasterKeyError(f"master key {self.key_id!r} is {len(self.material)} bytes; it must be {KEY_BYTES}")

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r}, material=<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Keyring:
    """Master keys by id; ``current_id`` names the one that wraps new data keys."""

    current_id: str
    keys: Mapping[str, MasterKey]

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise MasterKeyError(f"the current master key {self.current_id!r} is not in the keyring")

    @property
    def current(self) -> MasterKey:
        return self.keys[self.current_id]


@runtime_checkable
class MasterKeyProvider(Protocol):
    """Where master keys come from. Implementations must keep material out of reprs and logs."""

    def current(self) -> MasterKey:
        """The key that wraps new data keys."""
        ...

    def get(self, key_id: str) -> MasterKey:
        """A key by id, current or older; raises :class:`UnknownMasterKeyError` if not held."""
        ...

    def refresh(self) -> None:
        """Re-read the source. On failure raise :class:`MasterKeyError` and keep the old keys."""
        ...

    def key_ids(self) -> tuple[str, ...]:
        """The ids held, current first."""
        ...


def _decode_key(text: str, what: str) -> bytes:
    # The messages say where the bad key is and what is wrong, never the key itself.
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{what} is not valid base64; {_GENERATE_HINT}") from None
    if len(material) != KEY_BYTES:
        raise MasterKeyError(
            f"{what} decodes to {len(material)} bytes; a master key is {KEY_BYTES} bytes; {_GENERATE_HINT}"
        )
    return material


def _build_keyring(entries: list[tuple[str, str]], source: str, current_id: str | None = None) -> Keyring:
    """``entries`` are (key id, base64) pairs; the current key is ``current_id`` or the first."""
    if not entries:
        raise MasterKeyError(f"{source} holds no master key; {_GENERATE_HINT}")
    keys: dict[str, MasterKey] = {}
    for key_id, text in entries:
        if not _KEY_ID.fullmatch(key_id):
            raise MasterKeyError(
                f"{source}: master key id {key_id!r} is invalid: use 1-64 letters, digits, '.', '_' or '-'"
            )
        if key_id in keys:
            raise MasterKeyError(f"{source}: master key id {key_id!r} appears twice")
        keys[key_id] = MasterKey(key_id, _decode_key(text, f"{source}: master key {key_id!r}"))
    chosen = current_id if current_id is not None else entries[0][0]
    if chosen not in keys:
        raise MasterKeyError(f"{source}: the current master key {chosen!r} is not among the keys")
    return Keyring(chosen, keys)


def parse_keyring(text: str, source: str = "keyring") -> Keyring:
    """Parse ``"id1:b64,id2:b64"`` (first current; commas or newlines separate) or a bare ``"b64"``.

    ``source`` names where the text came from, for error messages. Blank entries and lines
    starting with ``#`` are skipped.
    """
    entries: list[tuple[str, str]] = []
    items = [item.strip() for item in re.split(r"[,\n]", text)]
    items = [item for item in items if item and not item.startswith("#")]
    for item in items:
        key_id, sep, encoded = item.partition(":")
        if not sep:
            if len(items) > 1:
                raise MasterKeyError(f"{source}: with several keys, write each as 'id:base64'")
            key_id, encoded = DEFAULT_KEY_ID, item
        entries.append((key_id.strip(), encoded))
    return _build_keyring(entries, source)


class BaseMasterKeyProvider(ABC):
    """Holds a keyring in memory and re-reads it from :meth:`load_keyring` on :meth:`refresh`.

    Subclasses implement only ``load_keyring`` (and a ``_describe`` for the repr). The
    constructor of each subclass loads once, so a bad configuration fails at start-up.
    """

    _keyring: Keyring | None = None

    @abstractmethod
    def load_keyring(self) -> Keyring:
        """Read the source now and return its keyring; raise :class:`MasterKeyError` if unusable."""

    def refresh(self) -> None:
        keyring = self.load_keyring()
        previous = self._keyring
        # One assignment: readers see the old keyring or the new one, never a mix.
        self._keyring = keyring
        if previous is not None and previous.current_id != keyring.current_id:
            log.info("master key rotated: current %r (was %r)", keyring.current_id, previous.current_id)

    def _ring(self) -> Keyring:
        if self._keyring is None:
            self.refresh()
        assert self._keyring is not None  # refresh sets it or raises
        return self._keyring

    def current(self) -> MasterKey:
        return self._ring().current

    def get(self, key_id: str) -> MasterKey:
        ring = self._ring()
        try:
            return ring.keys[key_id]
        except KeyError:
            raise UnknownMasterKeyError(
                f"master key {key_id!r} is not held by {self._describe()} (it holds {', '.join(ring.keys)})"
            ) from None

    def key_ids(self) -> tuple[str, ...]:
        ring = self._ring()
        return (ring.current_id, *(k for k in ring.keys if k != ring.current_id))

    def _describe(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        ring = self._keyring
        held = "not loaded" if ring is None else f"current={ring.current_id!r}, keys={len(ring.keys)}"
        return f"{type(self).__name__}({self._describe_args()}{held})"

    __str__ = __repr__

    def _describe_args(self) -> str:
        return ""


class StaticMasterKeyProvider(BaseMasterKeyProvider):
    """A fixed keyring given in code (tests, or ``Settings.master_key``). ``refresh`` changes nothing."""

    def __init__(self, keyring: str | SecretStr, source: str = "static keyring") -> None:
        # Parsed once and the text dropped: only the MasterKey objects keep the material.
        text = keyring.get_secret_value() if isinstance(keyring, SecretStr) else keyring
        self._static = parse_keyring(text, source)
        self.refresh()

    def load_keyring(self) -> Keyring:
        return self._static


class EnvMasterKeyProvider(BaseMasterKeyProvider):
    """Reads the keyring from an environment variable (default ``STREAMS_MASTER_KEY``).

    ``environ`` defaults to ``os.environ``; pass a mapping in tests. A running process's
    environment cannot be changed from outside, so rotation here means a restart (or a test
    changing the mapping); use the file or a secrets backend to rotate in place.
    """

    def __init__(self, variable: str = ENV_VARIABLE, environ: Mapping[str, str] | None = None) -> None:
        self._variable = variable
        self._environ = environ
        self.refresh()

    def load_keyring(self) -> Keyring:
        environ = os.environ if self._environ is None else self._environ
        text = environ.get(self._variable)
        if not text or not text.strip():
            raise MasterKeyError(f"environment variable {self._variable} is not set; {_GENERATE_HINT}")
        return parse_keyring(text, f"environment variable {self._variable}")

    def _describe(self) -> str:
        return f"environment variable {self._variable}"

    def _describe_args(self) -> str:
        return f"variable={self._variable!r}, "


class FileMasterKeyProvider(BaseMasterKeyProvider):
    """Reads the keyring from a file (development). Two forms:

    * JSON: ``{"current": "k2", "keys": {"k2": "<base64>", "k1": "<base64>"}}``
      (``current`` may be left out when there is one key);
    * lines: ``k2:<base64>`` one a line, the first current; ``#`` comments and blanks skipped.

    Rotate by writing the new key into the file (atomically: write a temp file, rename) and
    calling :meth:`refresh`. The file should be readable by the owner only; a warning is
    logged otherwise.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self.refresh()

    def load_keyring(self) -> Keyring:
        source = f"master key file {self._path}"
        try:
            text = self._path.read_text(encoding="utf-8")
            mode = self._path.stat().st_mode
        except OSError as exc:
            raise MasterKeyError(f"{source} cannot be read: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise MasterKeyError(f"{source} is not UTF-8 text") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s is readable by group or others; chmod 600 it", source)
        if text.lstrip().startswith("{"):
            return self._parse_json(text, source)
        return parse_keyring(text, source)

    @staticmethod
    def _parse_json(text: str, source: str) -> Keyring:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # exc's own message quotes nothing, but its .doc holds the file: never pass it on.
            raise MasterKeyError(f"{source} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            raise MasterKeyError(f'{source} must hold {{"current": "<id>", "keys": {{"<id>": "<base64>"}}}}')
        current = data.get("current")
        if current is None and len(keys) > 1:
            raise MasterKeyError(f'{source} holds several keys: say which is "current"')
        if current is not None and not isinstance(current, str):
            raise MasterKeyError(f'{source}: "current" must be a key id')
        return _build_keyring(list(keys.items()), source, current)

    def _describe(self) -> str:
        return f"master key file {self._path}"

    def _describe_args(self) -> str:
        return f"path={str(self._path)!r}, "


class SecretsBackendMasterKeyProvider(BaseMasterKeyProvider):
    """Skeleton for a production secrets backend (HashiCorp Vault, AWS Secrets Manager, GCP ...).

    Subclass it and implement one method, :meth:`load_keyring`, which fetches the keys and
    returns ``Keyring(current_id, {key_id: MasterKey(key_id, material)})``. The base class
    caches the keyring, serves ``current``/``get``/``key_ids``, and swaps atomically on
    ``refresh``. What an implementation must do:

    * authenticate with a short-lived identity (Kubernetes auth, IAM role), never a static token
      in the environment;
    * return *every* key still wrapping a data key, not only the newest; with Vault KV v2, for
      instance, one secret whose versions are the keys: ``current`` = latest version, ids =
      ``"v<version>"``, older versions kept until ``rewrap_all`` has run;
    * raise :class:`MasterKeyError` (never a transport error carrying a response body) when the
      backend is unreachable, so ``refresh`` keeps the keys it already holds;
    * keep material out of logs, exceptions and reprs (:class:`MasterKey` already hides it);
    * be called on a timer (``refresh`` every few minutes) so a rotation reaches every worker.

    A stronger design keeps the master key inside the backend (Vault Transit, a cloud KMS) and
    sends each data key to it to wrap and unwrap; that needs a ``KeyStore`` change (a wrapper
    interface instead of raw master material) and is not implemented here.
    """

    def load_keyring(self) -> Keyring:
        raise NotImplementedError("subclass SecretsBackendMasterKeyProvider and implement load_keyring()")


def provider_from_settings(settings: Settings) -> MasterKeyProvider:
    """The provider ``Settings`` asks for: ``master_key_file`` (rotatable) or ``master_key``.

    ``master_key`` comes from ``STREAMS_MASTER_KEY``, which cannot change under a running
    process, so a static parse of it loses nothing.
    """
    if settings.master_key_file is not None and settings.master_key is not None:
        raise MasterKeyError("set STREAMS_MASTER_KEY or STREAMS_MASTER_KEY_FILE, not both")
    if settings.master_key_file is not None:
        return FileMasterKeyProvider(settings.master_key_file)
    if settings.master_key is not None:
        return StaticMasterKeyProvider(settings.master_key, f"environment variable {ENV_VARIABLE}")
    raise MasterKeyError(f"no master key: set {ENV_VARIABLE} or STREAMS_MASTER_KEY_FILE; {_GENERATE_HINT}")
