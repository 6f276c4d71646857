"""Checks that turn a regex candidate into a finding, or reject it.

Each refiner takes the whole text and the candidate span and returns the span to replace
(possibly narrower) or None. They see the surroundings, which the regex alone cannot judge
cheaply: a port after an address, trailing words swallowed by a spaced IBAN.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

Span = tuple[int, int]
Refiner = Callable[[str, int, int], Span | None]

_NON_DIGIT = re.compile(r"\D")
_PORT_AFTER = re.compile(r":\d{1,5}(?!\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _trim_groups(text: str, start: int, end: int, ok: Callable[[str], bool], min_len: int) -> Span | None:
    """The longest prefix of the candidate, cut at a separator, that passes ``ok``.

    Greedy spaced patterns can swallow a following number or word; trimming whole groups
    recovers the real value without a second regex.
    """
    while end - start >= min_len:
        if ok(text[start:end]):
            return start, end
        cut = max(text.rfind(" ", start, end), text.rfind("-", start, end))
        if cut <= start:
            return None
        end = cut
    return None


def _card_ok(candidate: str) -> bool:
    digits = _NON_DIGIT.sub("", candidate)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def refine_card(text: str, start: int, end: int) -> Span | None:
    return _trim_groups(text, start, end, _card_ok, 13)


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def refine_iban(text: str, start: int, end: int) -> Span | None:
    return _trim_groups(text, start, end, iban_ok, 15)


def ssn_ok(candidate: str) -> bool:
    digits = _NON_DIGIT.sub("", candidate)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    # Never issued (SSA): area 000, 666, 900-999; group 00; serial 0000.
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def refine_ssn(text: str, start: int, end: int) -> Span | None:
    return (start, end) if ssn_ok(text[start:end]) else None


def _ipv4_octets(candidate: str) -> list[int] | None:
    parts = candidate.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and (p == "0" or p[0] != "0") for p in parts):
        return None
    octets = [int(p) for p in parts]
    return octets if max(octets) <= 255 else None


def _ipv4_internal(a: int, b: int) -> bool:
    """RFC 1918, CGNAT and link-local ranges (faster than ipaddress.is_private on the hot path)."""
    return (
        a == 10
        or (a == 172 and 16 <= b <= 31)
        or (a == 192 and b == 168)
        or (a == 100 and 64 <= b <= 127)
        or (a == 169 and b == 254)
    )


def refine_ipv4(text: str, start: int, end: int) -> Span | None:
    octets = _ipv4_octets(text[start:end])
    if octets is None:
        return None
    a, b = octets[0], octets[1]
    if a in (0, 127):  # this-network and loopback: never a person's address
        return None
    # An internal address with a port is a service endpoint (10.0.0.1:8080), not a person's.
    if _ipv4_internal(a, b) and _PORT_AFTER.match(text, end):
        return None
    return start, end


def refine_ipv6(text: str, start: int, end: int) -> Span | None:
    candidate = text[start:end]
    if candidate.count(":") < 2 or sum(c.isalnum() for c in candidate) < 2:
        return None
    try:
        addr = ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    if addr.is_loopback or addr.is_unspecified:
        return None
    return start, end


def refine_phone(text: str, start: int, end: int) -> Span | None:
    digits = _NON_DIGIT.sub("", text[start:end])
    return (start, end) if 7 <= len(digits) <= 15 else None


_PLACEHOLDER_VALUE = re.compile(
    r"^(?:<[^>]*>?|\$\{?\w+\}?|%\w+%|\*+|x+|null|none|true|false|undefined|changeme)$", re.I
)


def _assigned_value(text: str, start: int, end: int, min_len: int) -> Span | None:
    value = text[start:end].rstrip(".")
    if len(value) < min_len or value.isdigit() or _PLACEHOLDER_VALUE.match(value):
        return None
    return start, start + len(value)


def refine_password_value(text: str, start: int, end: int) -> Span | None:
    """A value assigned to a password-named key: any non-placeholder of 4+ characters."""
    return _assigned_value(text, start, end, 4)


def refine_secret_value(text: str, start: int, end: int) -> Span | None:
    """A value assigned to a key/token-named key. Skips counts (tokens=94034), placeholders and
    short words (token_type=bearer): a credential is long or mixes digits in."""
    span = _assigned_value(text, start, end, 8)
    if span is None:
        return None
    value = text[span[0] : span[1]]
    return span if len(value) >= 16 or any(c.isdigit() for c in value) else None


def refine_token(text: str, start: int, end: int) -> Span | None:
    """A bearer token must look random: letters and digits mixed, not a word."""
    value = text[start:end]
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return (start, end) if has_digit and has_alpha else None


_ORG_WORDS_TEXT = (
    "inc corp corporation co llc ltd plc gmbh group bank university college school cloud services service "
    "team teams labs lab systems support company foundation institute association department office center "
    "centre platform studio studios hospital clinic agency council committee club network networks partners "
    "holdings capital ventures technologies solutions software security airlines airways motors energy "
    "street avenue road park hall tower bridge"
)
# Words that end organisations, places and teams, not people ("Support Team", "Call Center").
ORG_WORDS = frozenset(_ORG_WORDS_TEXT.split())


def refine_person_name(text: str, start: int, end: int) -> Span | None:
    """A cue-matched "First Last" unless one of its words is an organisation word."""
    words = text[start:end].lower().replace("-", " ").split()
    return None if any(w in ORG_WORDS for w in words) else (start, end)
