"""Period keys and [start, end) bounds: month end, DST, leap day, UTC+14 and UTC-12."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.cost.periods import (
    day_bounds,
    day_key,
    month_bounds,
    month_key,
    parse_report_period,
    period_key,
    zone,
)
from streams.models import BudgetPeriod

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def hours(start: datetime, end: datetime) -> float:
    return (end - start) / timedelta(hours=1)


def test_month_end_in_utc() -> None:
    tz = zone("UTC")
    assert month_key(utc(2026, 11, 30, 23, 59, 59, 999999), tz) == "2026-11"
    assert month_key(utc(2026, 12, 1), tz) == "2026-12"
    assert month_bounds("2026-11", tz) == (utc(2026, 11, 1), utc(2026, 12, 1))
    assert month_bounds("2026-12", tz) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_month_end_in_new_york_is_05_utc() -> None:
    tz = zone("America/New_York")
    assert month_key(utc(2026, 12, 1, 4, 59, 59), tz) == "2026-11"
    assert month_key(utc(2026, 12, 1, 5), tz) == "2026-12"
    # November starts on daylight time (-4) and ends on standard time (-5).
    assert month_bounds("2026-11", tz) == (utc(2026, 11, 1, 4), utc(2026, 12, 1, 5))


@pytest.mark.parametrize(
    ("tz_name", "day", "length"),
    [
        ("America/New_York", "2026-03-08", 23),  # spring forward
        ("America/New_York", "2026-11-01", 25),  # fall back
        ("Europe/Berlin", "2026-03-29", 23),
        ("Europe/Berlin", "2026-10-25", 25),
        ("Europe/Berlin", "2026-10-26", 24),
        ("Australia/Lord_Howe", "2026-04-05", 24.5),  # a half-hour DST change
    ],
)
def test_dst_days_are_23_or_25_hours(tz_name: str, day: str, length: float) -> None:
    start, end = day_bounds(day, zone(tz_name))
    assert hours(start, end) == length


def test_fall_back_hour_belongs_to_one_day() -> None:
    tz = zone("Europe/Berlin")
    # 02:30 local happens twice on 2026-10-25: at 00:30Z (CEST) and 01:30Z (CET).
    assert day_key(utc(2026, 10, 25, 0, 30), tz) == "2026-10-25"
    assert day_key(utc(2026, 10, 25, 1, 30), tz) == "2026-10-25"
    assert day_bounds("2026-10-25", tz) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))


def test_midnight_inside_a_dst_gap_starts_the_day_after_the_gap() -> None:
    # Sao Paulo sprang forward at 00:00 on 2018-11-04: that local midnight never existed.
    start, end = day_bounds("2018-11-04", zone("America/Sao_Paulo"))
    assert start == utc(2018, 11, 4, 3)  # 01:00 -02:00, the first instant of the day
    assert hours(start, end) == 23


def test_leap_day_2028() -> None:
    tz = zone("UTC")
    assert day_key(utc(2028, 2, 29, 12), tz) == "2028-02-29"
    assert day_bounds("2028-02-29", tz) == (utc(2028, 2, 29), utc(2028, 3, 1))
    start, end = month_bounds("2028-02", tz)
    assert (end - start).days == 29
    with pytest.raises(ValueError, match="day is out of range"):
        day_bounds("2026-02-29", tz)


def test_kiritimati_utc_plus_14() -> None:
    tz = zone("Pacific/Kiritimati")
    assert month_key(utc(2026, 11, 30, 9, 59, 59), tz) == "2026-11"
    assert month_key(utc(2026, 11, 30, 10), tz) == "2026-12"
    assert day_key(utc(2026, 11, 30, 10), tz) == "2026-12-01"
    assert month_bounds("2026-12", tz)[0] == utc(2026, 11, 30, 10)


def test_etc_gmt_plus_12_is_utc_minus_12() -> None:
    tz = zone("Etc/GMT+12")  # POSIX sign: "+12" is 12 hours *behind* UTC
    assert month_key(utc(2026, 12, 1, 11, 59, 59), tz) == "2026-11"
    assert month_key(utc(2026, 12, 1, 12), tz) == "2026-12"
    assert day_bounds("2028-02-29", tz) == (utc(2028, 2, 29, 12), utc(2028, 3, 1, 12))


def test_period_key_by_budget_period() -> None:
    tz = zone("Europe/Berlin")
    ts = utc(2026, 12, 31, 23, 30)  # already 2027 in Berlin
    assert period_key(BudgetPeriod.DAILY, ts, tz, "r1") == "2027-01-01"
    assert period_key(BudgetPeriod.MONTHLY, ts, tz, "r1") == "2027-01"
    assert period_key(BudgetPeriod.PER_RUN, ts, tz, "r1") == "r1"
    assert period_key(BudgetPeriod.PER_RUN, ts, tz, None) is None


def test_report_period_parsing() -> None:
    assert parse_report_period("2026-11") == (BudgetPeriod.MONTHLY, "2026-11")
    assert parse_report_period(" 2026-11-27 ") == (BudgetPeriod.DAILY, "2026-11-27")
    for bad in ("2026-13", "2026-11-31", "Nov 2026", "2026-1", ""):
        with pytest.raises(ValueError):  # any of several messages
            parse_report_period(bad)


def test_unknown_zone_names_the_zone() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("/etc/passwd")


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        day_key(datetime(2026, 11, 1), zone("UTC"))  # the point of the test


@given(
    ts=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    tz_name=st.sampled_from(ZONES),
)
def test_every_instant_lies_in_its_own_period(ts: datetime, tz_name: str) -> None:
    tz = zone(tz_name)
    day, month = day_key(ts, tz), month_key(ts, tz)
    start, end = day_bounds(day, tz)
    assert start <= ts < end
    assert 23 <= hours(start, end) <= 25
    m_start, m_end = month_bounds(month, tz)
    assert m_start <= ts < m_end
    assert day.startswith(month)
    # Periods tile time: the next day starts where this one ends.
    assert day_key(end, tz) != day
    assert day_key(end - timedelta(microseconds=1), tz) == day
    assert month_key(m_end, tz) != month
