"""budgets.yaml: validation messages, exact amounts, and reload that keeps the old budgets."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from streams.cost.budgets import BudgetBook, load_budgets, parse_budgets
from streams.errors import ConfigError
from streams.models import BudgetPeriod

ROOT = Path(__file__).resolve().parents[2]


def test_example_file_loads_with_the_promised_shapes() -> None:
    config = load_budgets(ROOT / "budgets.yaml")
    budgets = [b for t in config.tenants.values() for b in t.budgets]
    assert any(b.period is BudgetPeriod.PER_RUN and b.hard_kill for b in budgets)
    assert any(b.period is BudgetPeriod.MONTHLY and not b.hard_kill for b in budgets)
    assert any(b.period is BudgetPeriod.DAILY for b in budgets)
    assert any(t.timezone != "UTC" for t in config.tenants.values())
    assert config.default is not None
    assert config.for_tenant("someone-new") == config.default
    assert config.for_tenant("internal-evals").budgets == []  # listed without budgets: no default


def test_amounts_are_exact_even_when_unquoted() -> None:
    config = parse_budgets(
        "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: 0.1}\n"
        "      - {name: big, period: daily, limit_usd: 1200.000000001}\n",
        "b.yaml",
    )
    first, second = config.tenants["a"].budgets
    assert first.limit_usd == Decimal("0.1")
    assert second.limit_usd == Decimal("1200.000000001")
    assert first.thresholds == [80, 100]
    assert first.name == "monthly"  # defaults to the period
    assert first.hard_kill is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: -5}",
            r"tenants\.a\.budgets\[0\]\.limit_usd: must not be negative",
        ),
        (
            "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: 0}",
            r"tenants\.a\.budgets\[0\]\.limit_usd: must be greater than 0",
        ),
        (
            "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: lots}",
            r"limit_usd: is not a decimal number",
        ),
        (
            "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: 1.0000000001}",
            r"more than 9 decimal places",
        ),
        ("tenants:\n  a:\n    budgets:\n      - {period: weekly, limit_usd: 1}", r"tenants\.a\.budgets\[0\]\.period"),
        (
            "tenants:\n  a:\n    timezone: Mars/Olympus\n    budgets: []",
            r"tenants\.a\.timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            "tenants:\n  a:\n    budgets:\n      - {period: daily, limit_usd: 1, thresholds: []}",
            r"thresholds: needs at least one",
        ),
        (
            "tenants:\n  a:\n    budgets:\n      - {period: daily, limit_usd: 1, thresholds: [80, 80]}",
            r"threshold twice",
        ),
        ("tenants:\n  a:\n    budgets:\n      - {period: daily, limit_usd: 1, thresholds: [0]}", r"thresholds\[0\]"),
        (
            "tenants:\n  a:\n    budgets:\n      - {period: daily, limit_usd: 1, hardkill: true}",
            r"budgets\[0\]\.hardkill: Extra inputs",
        ),
        (
            "tenants:\n  a:\n    budgets:\n"
            "      - {period: daily, limit_usd: 1}\n      - {period: daily, limit_usd: 2}",
            r"two budgets are named 'daily'",
        ),
        ("tenants:\n  a:\n    budgets: []\n  a:\n    budgets: []", r"line 4, column 3: duplicate key 'a'"),
        ("tenants: [unclosed", r"b\.yaml: line \d+, column \d+"),
        ("- just\n- a list", r"\(top level\): must be a mapping"),
        ("version: 2", r"version: Input should be 1"),
        ("accounting: {grace_hours: -1}", r"accounting\.grace_hours"),
        (
            "tenants:\n  a:\n    budgets:\n      - {name: 'has space', period: daily, limit_usd: 1}",
            r"name 'has space' must match",
        ),
    ],
)
def test_invalid_files_name_the_file_the_path_and_the_problem(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        parse_budgets(text, "b.yaml")
    assert str(info.value).startswith("b.yaml: ")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_budgets(tmp_path / "nope.yaml")


def _write(path: Path, text: str) -> None:
    # Bump mtime explicitly: two writes within one clock tick must still look changed.
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


VALID_A = "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: '10'}\n"
VALID_B = "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: '20'}\n"
INVALID = "tenants:\n  a:\n    budgets:\n      - {period: monthly, limit_usd: '-20'}\n"


def _limit(book: BudgetBook) -> Decimal:
    return book.config.for_tenant("a").budgets[0].limit_usd


def test_reload_picks_up_a_valid_change(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    _write(path, VALID_A)
    book = BudgetBook(path)
    assert book.reload_if_changed().changed is False
    _write(path, VALID_B)
    result = book.reload_if_changed()
    assert result.changed and result.error is None
    assert _limit(book) == Decimal(20)


def test_touch_without_content_change_is_not_a_change(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    _write(path, VALID_A)
    book = BudgetBook(path)
    _write(path, VALID_A)
    assert book.reload_if_changed().changed is False


def test_invalid_file_keeps_previous_budgets_and_reports_once(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    _write(path, VALID_A)
    book = BudgetBook(path)
    _write(path, INVALID)
    result = book.reload_if_changed()
    assert result.changed is False
    assert result.error is not None
    assert str(path) in str(result.error)
    assert "tenants.a.budgets[0].limit_usd: must not be negative" in str(result.error)
    assert _limit(book) == Decimal(10)  # still in force
    assert book.last_error is result.error
    assert book.reload_if_changed().error is None  # same bad file: not reported again
    assert book.last_error is not None  # ...but still visible
    _write(path, VALID_A)  # put back as it was
    assert book.reload_if_changed().changed is False
    assert book.last_error is None
    _write(path, VALID_B)
    assert book.reload_if_changed().changed
    assert _limit(book) == Decimal(20)


def test_deleted_file_keeps_previous_budgets(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    _write(path, VALID_A)
    book = BudgetBook(path)
    path.unlink()
    first = book.reload_if_changed()
    assert first.error is not None and "cannot read" in str(first.error)
    assert book.reload_if_changed().error is None  # reported once
    assert _limit(book) == Decimal(10)
    _write(path, VALID_B)
    assert book.reload_if_changed().changed
    assert _limit(book) == Decimal(20)


def test_first_load_must_be_valid(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    _write(path, INVALID)
    with pytest.raises(ConfigError, match="must not be negative"):
        BudgetBook(path)
