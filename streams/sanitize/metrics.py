"""Prometheus metrics of the sanitizer. Labels come only from ``entities.ENTITY_TYPES``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ENTITIES_FOUND = Counter(
    "streams_sanitize_entities_total", "Entities replaced by the sanitizer, by type.", ["entity_type"]
)
EVENTS_SANITIZED = Counter("streams_sanitize_events_total", "Events passed through the sanitizer.")
STRINGS_NER = Counter("streams_sanitize_ner_strings_total", "Strings sent to the NER model.")
EVENT_SECONDS = Histogram(
    "streams_sanitize_event_seconds",
    "Sanitizer time per event (a batch's time spread evenly over its events).",
    buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1),
)
