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
