"""``streams sanitize``: JSONL in, JSONL out, one line per line, bad lines reported not echoed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from streams.sanitize import cli

GOOD = {
    "event_id": "e1",
    "event_type": "tool_call",
    "user_id": "tenant-a",
    "timestamp": "2026-11-27T00:00:00Z",
    "source": "test",
    "cost_usd": 0.0123,
    "payload": {"text": "mail bob@example.com", "n": 2},
}


def _run(monkeypatch: pytest.MonkeyPatch, stdin: str, *argv: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = cli.main(["--no-ner", *argv])
    return code, out.getvalue().splitlines(), err.getvalue()


def test_sanitizes_and_keeps_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = {**GOOD, "event_id": "e2", "payload": {"text": "nothing here"}}
    code, lines, err = _run(monkeypatch, json.dumps(GOOD) + "\n" + json.dumps(clean) + "\n")
    assert code == 0 and err == ""
    first, second = (json.loads(line) for line in lines)
    assert first == {**GOOD, "payload": {"text": "mail <EMAIL_ADDRESS>", "n": 2}}
    assert set(first) == set(GOOD)  # no keys added (run_id, model ... stay absent)
    assert second == clean


def test_bad_lines_get_an_error_line_without_content(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_line = '{"event_id": "x", "payload": "ssn 165-12-7295"}'
    stdin = "\n".join([json.dumps(GOOD), "not json at all bob@example.com", secret_line, json.dumps(GOOD)]) + "\n"
    code, lines, err = _run(monkeypatch, stdin, "--batch-size", "2")
    assert code == 1
    assert len(lines) == 4
    assert json.loads(lines[0])["payload"]["text"] == "mail <EMAIL_ADDRESS>"
    assert json.loads(lines[1])["error"].startswith("line 2: ")
    assert json.loads(lines[2])["error"].startswith("line 3: ")
    assert json.loads(lines[3])["event_id"] == "e1"
    assert "line 2" in err and "line 3" in err
    assert "bob@example.com" not in "".join(lines) + err
    assert "165-12-7295" not in "".join(lines) + err


def test_reads_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    code, lines, _ = _run(monkeypatch, "", str(path))
    assert code == 0 and json.loads(lines[0])["payload"]["text"] == "mail <EMAIL_ADDRESS>"


def test_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, lines, err = _run(monkeypatch, "", str(tmp_path / "absent.jsonl"))
    assert code == 2 and lines == [] and "cannot read" in err


def test_hash_key_from_settings_gives_keyed_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.settings import get_settings

    monkeypatch.setenv("STREAMS_SANITIZE_HASH_KEY", "k" * 32)
    get_settings.cache_clear()
    try:
        code, lines, _ = _run(monkeypatch, json.dumps(GOOD) + "\n")
        keyed = json.loads(lines[0])["payload"]["text"]
        monkeypatch.setenv("STREAMS_SANITIZE_HASH_KEY", "z" * 32)
        get_settings.cache_clear()
        _, other_lines, _ = _run(monkeypatch, json.dumps(GOOD) + "\n")
    finally:
        get_settings.cache_clear()
    assert code == 0
    assert keyed.startswith("mail <EMAIL_ADDRESS:") and keyed.endswith(">")
    assert json.loads(other_lines[0])["payload"]["text"] != keyed  # the digest depends on the key
    assert "bob@example.com" not in keyed
