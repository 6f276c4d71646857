"""What a finding is replaced with: ``<TYPE>``, or ``<TYPE:digest>`` keyed per tenant.

The digest is HMAC-SHA256 under a per-tenant key derived from one secret, so equal values map
to equal tokens within a tenant (joins and counts still work) but cannot be linked across
tenants, and nobody without the secret can confirm a guessed value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

from streams.sanitize import entities as E

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
# Formatting does not change identity: (428) 495-7953 and 428.495.7953 are the same phone.
_ALNUM_KEYED = frozenset({E.PHONE_NUMBER, E.CREDIT_CARD, E.US_SSN, E.IBAN_CODE})
_CASELESS = frozenset({E.EMAIL_ADDRESS, E.PERSON, E.IP_ADDRESS})


def normalize(entity: str, value: str) -> str:
    if entity in _ALNUM_KEYED:
        return _NON_ALNUM.sub("", value).upper()
    if entity in _CASELESS:
        return " ".join(value.split()).lower()
    return value


class Placeholders:
    """Typed placeholders; keyed digests when ``secret`` is given (at least 16 bytes)."""

    def __init__(self, secret: bytes | None = None, digest_chars: int = 8) -> None:
        if secret is not None and len(secret) < 16:
            raise ValueError("the placeholder secret must be at least 16 bytes")
        if not 4 <= digest_chars <= 64:
            raise ValueError("digest_chars must be between 4 and 64")
        self._secret = secret
        self._chars = digest_chars
        self._tenant_key = lru_cache(maxsize=4096)(self._derive)

    @property
    def keyed(self) -> bool:
        return self._secret is not None

    def _derive(self, tenant: str) -> bytes:
        assert self._secret is not None
        return hmac.new(self._secret, b"streams.sanitize.tenant\x00" + tenant.encode(), hashlib.sha256).digest()

    def token(self, entity: str, value: str, tenant: str) -> str:
        if self._secret is None:
            return f"<{entity}>"
        message = entity.encode() + b"\x00" + normalize(entity, value).encode("utf-8", "surrogatepass")
        digest = hmac.new(self._tenant_key(tenant), message, hashlib.sha256).hexdigest()
        return f"<{entity}:{digest[: self._chars]}>"
