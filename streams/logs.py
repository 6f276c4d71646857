"""Logging: JSON lines to stderr (one event per line), or plain text for a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Context a stage may attach with `extra=`; only these keys are emitted, so nothing
# unexpected (an event body, a secret) rides along by accident.
_CONTEXT_KEYS = ("stage", "topic", "partition", "offset", "tenant", "event_id", "reason", "count")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            if key in record.__dict__:
                data[key] = record.__dict__[key]
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_type"] = record.exc_info[0].__name__
        return json.dumps(data, default=str)


def setup(level: str = "INFO", fmt: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(
        JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every retry at WARNING/ERROR with broker addresses only; keep it quieter.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
