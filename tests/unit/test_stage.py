"""StageContext.dead_letter: never raises because the vault fails, never keeps the original in the clear."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams import serde
from streams.errors import DecodeError
from streams.models import DeadLetter
from streams.settings import Settings
from streams.stage import StageContext
from streams.topology import load_topology
from streams.vault import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


class _FailingKeyStore:
    def encrypt(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidInputError("the vault is broken")


async def test_dead_letter_survives_a_failing_vault() -> None:
    ctx = StageContext(app=None, settings=Settings(), topology=load_topology(ROOT / "topics.yaml"))
    topic = _Topic()
    ctx._topics["dlq"] = topic
    ctx.keystore = _FailingKeyStore()
    await ctx.dead_letter(
        "sanitize",
        DecodeError("not JSON"),
        topic="hook.events.raw",
        partition=2,
        offset=7,
        original=b"jane@example.com",
    )
    [(key, value)] = topic.sent
    assert key == b"_unattributed"
    record = serde.decode(DeadLetter, value)
    assert record.reason == "not JSON; original not kept: InvalidInputError"
    assert record.original_ciphertext is None and b"jane@example.com" not in value
    assert (record.source_partition, record.source_offset) == (2, 7)
