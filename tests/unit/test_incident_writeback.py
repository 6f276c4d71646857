"""WriteBack: detectors observing a batch through it leave the table exactly as observing
each event directly would, with one table write per changed ring per batch."""

from __future__ import annotations

import json
from collections import UserDict
from typing import Any

import pytest

from streams.incidents import scenarios
from streams.incidents.detectors import Detectors
from streams.incidents.writeback import WriteBack
from tests.unit.test_detectors import CONFIG, T0


class JsonTable(UserDict[str, Any]):
    """What a Faust table with a JSON codec does: every write is a copy, and is counted."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, json.loads(json.dumps(value)))


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_batched_observation_equals_direct_observation(batch_size: int) -> None:
    sc = scenarios.benign(3, T0, 90, rate=0.5)
    scenarios.inject_repeat_error(sc, 30, tenant="tenant-a", code="E42", count=12, min_count=10)
    events = sc.sorted_events()
    detectors = Detectors(CONFIG)
    direct, batched = JsonTable(), JsonTable()
    for event in events:
        detectors.observe(direct, event, now=event.timestamp)
    for start in range(0, len(events), batch_size):
        batch = WriteBack(batched)
        for event in events[start : start + batch_size]:
            detectors.observe(batch, event, now=event.timestamp)
        batch.flush()
    assert batched.data == direct.data
    assert detectors.tick(batched, sc.end) == detectors.tick(direct, sc.end)
    if batch_size > 1:
        assert batched.writes < direct.writes


def test_reads_see_pending_writes_and_deletes() -> None:
    table = JsonTable()
    table["a"] = {"n": 1}
    wb = WriteBack(table)
    wb["b"] = {"n": 2}
    del wb["a"]
    assert "a" not in wb and wb.get("a") is None and wb["b"] == {"n": 2}
    assert sorted(wb) == ["b"] and len(wb) == 1
    assert "a" in table and "b" not in table  # nothing written before flush
    assert wb.flush() == 2
    assert dict(table) == {"b": {"n": 2}}
    with pytest.raises(KeyError):
        del wb["missing"]
