"""Latency quantiles from DDSketch, stored as plain JSON bins so a Faust table can hold them.

The ddsketch package only serializes through protobuf (not installed here), so a bucket
keeps ``{"z": zero_count, "k": {"<bin key>": count}}``: the sketch's own logarithmic
key mapping, sparse. Merging buckets is adding counts, exactly what DDSketch.merge does.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ddsketch import LogarithmicMapping
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.store import DenseStore

SketchBins = dict[str, Any]


@lru_cache(maxsize=8)
def _mapping(relative_accuracy: float) -> Any:
    return LogarithmicMapping(relative_accuracy)


def empty_bins() -> SketchBins:
    return {"z": 0, "k": {}}


def add_value(bins: SketchBins, value: float, relative_accuracy: float) -> None:
    """Count one non-negative value into ``bins`` (in place)."""
    mapping = _mapping(relative_accuracy)
    if value <= mapping.min_possible:
        bins["z"] = int(bins.get("z", 0)) + 1
        return
    key = str(mapping.key(value))
    keys: dict[str, int] = bins.setdefault("k", {})
    keys[key] = keys.get(key, 0) + 1


def count(bins: SketchBins) -> int:
    return int(bins.get("z", 0)) + sum(int(c) for c in bins.get("k", {}).values())


def to_sketch(parts: Iterable[SketchBins], relative_accuracy: float) -> Any:
    """Merge stored buckets into one DDSketch (its quantile search does the rest)."""
    store = DenseStore()
    zero = 0
    for bins in parts:
        zero += int(bins.get("z", 0))
        for key, n in bins.get("k", {}).items():
            store.add(int(key), float(n))
    return BaseDDSketch(_mapping(relative_accuracy), store, DenseStore(), float(zero))


def quantile(parts: Iterable[SketchBins], q: float, relative_accuracy: float) -> float | None:
    """The q-quantile over all ``parts``, within ``relative_accuracy``; None when empty."""
    value = to_sketch(parts, relative_accuracy).get_quantile_value(q)
    return None if value is None else float(value)
