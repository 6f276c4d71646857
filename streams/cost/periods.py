"""Period keys and bounds in a tenant's time zone, by event time.

A day is ``"YYYY-MM-DD"``, a month ``"YYYY-MM"``, a run its ``run_id``. Bounds are
``[start, end)`` as UTC instants computed with zoneinfo, so a local day is 23 or 25 hours
long across a DST change and a local midnight that does not exist (a gap at 00:00) starts
the day at the first instant that does.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.models import BudgetPeriod

_DAY_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@cache
def zone(name: str) -> ZoneInfo:
    """The zone for an IANA name; ``ValueError`` with the name if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # ZoneInfo raises ValueError for malformed keys such as absolute paths.
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like 'Europe/Berlin')") from None


def _aware(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("timestamp needs a time zone")
    return ts


def day_key(ts: datetime, tz: ZoneInfo) -> str:
    return _aware(ts).astimezone(tz).date().isoformat()


def month_key(ts: datetime, tz: ZoneInfo) -> str:
    local = _aware(ts).astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


def period_key(period: BudgetPeriod, ts: datetime, tz: ZoneInfo, run_id: str | None) -> str | None:
    """The key of the period ``ts`` falls in; ``None`` for a per-run period without a run."""
    if period is BudgetPeriod.DAILY:
        return day_key(ts, tz)
    if period is BudgetPeriod.MONTHLY:
        return month_key(ts, tz)
    return run_id


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # fold=0 maps a midnight inside a DST gap to the instant after the gap and an ambiguous
    # midnight to its first occurrence: both are the first instant whose local date is `day`.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def parse_day(key: str) -> date:
    match = _DAY_RE.match(key)
    if match is None:
        raise ValueError(f"{key!r} is not a day (YYYY-MM-DD)")
    return date(int(match[1]), int(match[2]), int(match[3]))


def parse_month(key: str) -> date:
    match = _MONTH_RE.match(key)
    if match is None:
        raise ValueError(f"{key!r} is not a month (YYYY-MM)")
    return date(int(match[1]), int(match[2]), 1)


def day_bounds(key: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    day = parse_day(key)
    return _local_midnight(day, tz), _local_midnight(day + timedelta(days=1), tz)


def month_bounds(key: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    first = parse_month(key)
    nxt = date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)
    return _local_midnight(first, tz), _local_midnight(nxt, tz)


def bounds(period: BudgetPeriod, key: str, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """``[start, end)`` in UTC; ``None`` for a run, which has no calendar end."""
    if period is BudgetPeriod.DAILY:
        return day_bounds(key, tz)
    if period is BudgetPeriod.MONTHLY:
        return month_bounds(key, tz)
    return None


def parse_report_period(text: str) -> tuple[BudgetPeriod, str]:
    """``"2026-11"`` -> monthly, ``"2026-11-27"`` -> daily; ``ValueError`` otherwise."""
    text = text.strip()
    if _MONTH_RE.match(text):
        parse_month(text)
        return BudgetPeriod.MONTHLY, text
    if _DAY_RE.match(text):
        parse_day(text)
        return BudgetPeriod.DAILY, text
    raise ValueError(f"{text!r} is not a period: use a month (2026-11) or a day (2026-11-27)")
