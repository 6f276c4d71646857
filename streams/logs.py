"""Logging: JSON lines to stderr (one event per line), or plain text for a terminal."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

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
        for key, value in _faust_context().items():
            data.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_type"] = record.exc_info[0].__name__
            data["exc_where"] = _where(record.exc_info[2])
        return json.dumps(data, default=str)


def _where(tb: TracebackType | None, depth: int = 12) -> list[str]:
    """The innermost frames of a traceback as ``file:line in function``.

    Code locations only: an exception's message and a frame's locals can hold event text, so
    neither is logged; the type and where it was raised are what an operator needs first.
    """
    frames = traceback.extract_tb(tb)[-depth:]
    return [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames]


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


def _faust_context() -> dict[str, object]:
    """Stage (agent name) and topic/partition/offset of the record a Faust agent is handling.

    Only coordinates, never the key or value: keys are tenants on some topics but
    fingerprints or nothing on others, and values may hold anything.
    """
    faust = sys.modules.get("faust")  # never import Faust just to log
    if faust is None:
        return {}
    out: dict[str, object] = {}
    try:
        from faust.agents.agent import current_agent

        agent = current_agent()
        if agent is not None:
            out["stage"] = str(agent.name).rsplit(".", 1)[-1]
        event = faust.current_event()
        if event is not None:
            message = event.message
            out.update(topic=message.topic, partition=message.partition, offset=message.offset)
    except Exception:  # logging must never fail because of context lookup
        return out
    return out


def worker_logging_config(level: str = "INFO") -> dict[str, object]:
    """``logging.config.dictConfig`` for the Faust worker: JSON lines on stdout.

    Passed to ``faust.worker.Worker(logging_config=...)``, which otherwise installs its own
    coloured text handler when it starts (it replaces whatever ``setup`` configured).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "streams.logs.JsonFormatter"}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        # aiokafka logs every retry with broker addresses only; keep it to warnings and up.
        "loggers": {"aiokafka": {"level": max(logging.WARNING, logging.getLevelName(level.upper()))}},
    }
