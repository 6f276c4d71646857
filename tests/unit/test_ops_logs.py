"""The worker's logging config: JSON lines on stdout, only whitelisted context keys."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys

import pytest

from streams import logs


def test_worker_logging_config_writes_json_lines_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logs.worker_logging_config("info"))
        logging.getLogger("streams.test").info(
            "processed %d", 3, extra={"stage": "cost", "tenant": "acme-corp", "payload": {"prompt": "secret"}}
        )
        logging.getLogger("aiokafka").info("retrying 10.0.0.1:9092")  # below WARNING: dropped
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["msg"] == "processed 3" and data["level"] == "info"
    assert data["stage"] == "cost" and data["tenant"] == "acme-corp"
    assert "payload" not in data and "secret" not in lines[0]


def test_an_exception_is_logged_by_type_and_location_never_by_message() -> None:
    def fail(text: str) -> None:
        raise ValueError(f"bad record: {text}")

    record: logging.LogRecord | None = None
    try:
        fail("jane.doe@example.com")
    except ValueError:
        record = logging.LogRecord("streams.test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert record is not None
    line = logs.JsonFormatter().format(record)
    data = json.loads(line)
    assert data["exc_type"] == "ValueError"
    assert data["exc_where"][-1].startswith("test_ops_logs.py:") and data["exc_where"][-1].endswith(" in fail")
    assert "jane.doe" not in line
