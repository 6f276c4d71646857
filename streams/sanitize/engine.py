"""The sanitizer: find PII and secrets in a hook event's free text and replace them.

Pure and synchronous: no Kafka, no I/O besides loading the NER model on first use. Only the
string VALUES inside ``payload`` (at any depth) and ``error_message`` change; dict keys and every
structural field (ids, timestamps, model, numbers) pass untouched, so the event keeps its shape.

Per string: one hyperscan scan picks the recognizers that can match; only those run. Strings
that may hold a name are collected across the whole batch and sent to spaCy in one
``nlp.pipe`` call. Overlaps resolve by score, then length.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from streams.models import HookEvent
from streams.sanitize import metrics
from streams.sanitize.placeholders import Placeholders

if TYPE_CHECKING:
    from streams.sanitize.recognizers import Hit, ScreenedPatternRecognizer
    from streams.sanitize.screening import Screen
    from streams.settings import Settings


Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """One replaced value. ``text`` is the original: encrypt it, never log it (hidden in repr)."""

    path: str  # JSONPath of the string, e.g. $.payload.args.email or $.error_message
    entity_type: str
    start: int  # offsets into the ORIGINAL string
    end: int
    text: str = field(repr=False)
    score: float = 1.0
    placeholder: str = ""


@dataclass(frozen=True, slots=True)
class TextResult:
    text: str
    findings: tuple[Finding, ...]


class SanitizedEvent(NamedTuple):
    """Unpacks as ``clean, findings = sanitizer.sanitize_event(event)``."""

    event: HookEvent
    findings: tuple[Finding, ...]

    @property
    def counts(self) -> Counter[str]:
        return Counter(f.entity_type for f in self.findings)


def json_path(path: Path) -> str:
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.isidentifier():
            out.append(f".{part}")
        else:
            out.append("['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']")
    return "".join(out)


def _collect_strings(value: Any, path: Path, out: list[tuple[Path, str]]) -> None:
    if isinstance(value, str):
        out.append((path, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect_strings(item, (*path, key), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _collect_strings(item, (*path, i), out)


def _rebuild(value: Any, replaced: dict[Path, str], path: Path) -> Any:
    """A copy of ``value`` with the replaced strings; untouched branches are shared, not copied."""
    if isinstance(value, str):
        return replaced.get(path, value)
    if isinstance(value, dict):
        return {key: _rebuild(item, replaced, (*path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_rebuild(item, replaced, (*path, i)) for i, item in enumerate(value)]
    return value


def _resolve(hits: list[Hit]) -> list[Hit]:
    """Non-overlapping hits: higher score wins, then the longer span, then the earlier one."""
    if len(hits) <= 1:
        return hits
    chosen: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (-h.score, h.start - h.end, h.start)):
        if all(hit.end <= c.start or hit.start >= c.end for c in chosen):
            chosen.append(hit)
    chosen.sort(key=lambda h: h.start)
    return chosen


class Sanitizer:
    """Thread-compatible, not thread-safe (one hyperscan scratch): one instance per worker.

    ``ner_model``: spaCy package name; None reads ``Settings.ner_model``; "" = pattern-only.
    ``secret``: enables keyed ``<TYPE:digest>`` placeholders per tenant (the event's user_id).
    """

    def __init__(
        self,
        ner_model: str | None = None,
        *,
        secret: bytes | None = None,
        digest_chars: int = 8,
        ner_batch_size: int = 128,
    ) -> None:
        if ner_model is None:
            from streams.settings import get_settings

            ner_model = get_settings().ner_model
        self.ner_model = ner_model
        self.placeholders = Placeholders(secret, digest_chars)
        self._ner_batch_size = ner_batch_size
        self._lock = threading.Lock()
        self._recognizers: list[ScreenedPatternRecognizer] | None = None
        self._screen: Screen | None = None
        self._nlp: Any = None
        self._nlp_loaded = False

    # -- lazy loading: nothing heavy at import or construction --------------------------------

    def _patterns(self) -> tuple[list[ScreenedPatternRecognizer], Screen]:
        if self._recognizers is None or self._screen is None:
            with self._lock:
                if self._recognizers is None or self._screen is None:
                    from streams.sanitize.patterns import SPECS
                    from streams.sanitize.recognizers import build_recognizers
                    from streams.sanitize.screening import Screen

                    self._screen = Screen(SPECS)
                    self._recognizers = build_recognizers()
        return self._recognizers, self._screen

    @property
    def nlp(self) -> Any:
        """The spaCy pipeline, or None when running pattern-only."""
        if not self._nlp_loaded:
            with self._lock:
                if not self._nlp_loaded:
                    from streams.sanitize.ner import load_ner

                    self._nlp = load_ner(self.ner_model)
                    self._nlp_loaded = True
        return self._nlp

    def warm_up(self) -> None:
        """Load everything now (at service start) instead of on the first event."""
        self._patterns()
        _ = self.nlp

    # -- analysis -------------------------------------------------------------------------------

    def analyze_texts(self, texts: Sequence[str]) -> list[list[Hit]]:
        """Resolved, non-overlapping hits per text (offsets into each text)."""
        recognizers, screen = self._patterns()
        nlp = self.nlp
        found: list[list[Hit]] = []
        ner_idx: list[int] = []
        if nlp is not None:
            from streams.sanitize.ner import find_persons, needs_ner
        for i, text in enumerate(texts):
            hits: list[Hit] = []
            for spec_id in screen.hits(text):
                hits.extend(recognizers[spec_id].find(text))
            found.append(hits)
            if nlp is not None and needs_ner(text):
                ner_idx.append(i)
        if ner_idx:
            metrics.STRINGS_NER.inc(len(ner_idx))
            persons = find_persons(nlp, [texts[i] for i in ner_idx], self._ner_batch_size)
            for i, hits in zip(ner_idx, persons, strict=True):
                found[i].extend(hits)
        return [_resolve(hits) for hits in found]

    def _replace(self, text: str, hits: list[Hit], tenant: str, path: str) -> tuple[str, list[Finding]]:
        parts: list[str] = []
        findings: list[Finding] = []
        last = 0
        for hit in hits:
            original = text[hit.start : hit.end]
            token = self.placeholders.token(hit.entity, original, tenant)
            parts.append(text[last : hit.start])
            parts.append(token)
            last = hit.end
            findings.append(Finding(path, hit.entity, hit.start, hit.end, original, hit.score, token))
        parts.append(text[last:])
        return "".join(parts), findings

    def sanitize_texts(self, texts: Sequence[str], tenant: str = "") -> list[TextResult]:
        """Sanitize bare strings (path "$" in findings)."""
        out: list[TextResult] = []
        for text, hits in zip(texts, self.analyze_texts(texts), strict=True):
            if not hits:
                out.append(TextResult(text, ()))
                continue
            new, findings = self._replace(text, hits, tenant, "$")
            out.append(TextResult(new, tuple(findings)))
        return out

    def sanitize_event(self, event: HookEvent, tenant: str | None = None) -> SanitizedEvent:
        return self.sanitize_events([event], tenant)[0]

    def sanitize_events(self, events: Sequence[HookEvent], tenant: str | None = None) -> list[SanitizedEvent]:
        """Sanitize many events in one call (one NER batch). ``tenant`` defaults to each event's user_id."""
        started = time.perf_counter()
        owners: list[int] = []
        strings: list[tuple[Path, str]] = []
        for n, event in enumerate(events):
            before = len(strings)
            _collect_strings(event.payload, ("payload",), strings)
            if event.error_message is not None:
                strings.append((("error_message",), event.error_message))
            owners.extend([n] * (len(strings) - before))
        all_hits = self.analyze_texts([s for _, s in strings])

        replaced: list[dict[Path, str]] = [{} for _ in events]
        findings: list[list[Finding]] = [[] for _ in events]
        for owner, (path, text), hits in zip(owners, strings, all_hits, strict=True):
            if not hits:
                continue
            event_tenant = tenant if tenant is not None else events[owner].user_id
            new, found = self._replace(text, hits, event_tenant, json_path(path))
            replaced[owner][path] = new
            findings[owner].extend(found)

        out: list[SanitizedEvent] = []
        entity_counts: Counter[str] = Counter()
        for event, changes, found in zip(events, replaced, findings, strict=True):
            clean = event
            if changes:
                update: dict[str, Any] = {"payload": _rebuild(event.payload, changes, ("payload",))}
                if ("error_message",) in changes:
                    update["error_message"] = changes[("error_message",)]
                clean = event.model_copy(update=update)
                entity_counts.update(f.entity_type for f in found)
            out.append(SanitizedEvent(clean, tuple(found)))
        self._record(len(events), entity_counts, time.perf_counter() - started)
        return out

    @staticmethod
    def _record(n_events: int, entity_counts: Counter[str], seconds: float) -> None:
        if not n_events:
            return
        for entity, count in entity_counts.items():
            metrics.ENTITIES_FOUND.labels(entity_type=entity).inc(count)
        metrics.EVENTS_SANITIZED.inc(n_events)
        per_event = seconds / n_events
        for _ in range(n_events):
            metrics.EVENT_SECONDS.observe(per_event)


def build_engine(settings: Settings | None = None) -> Sanitizer:
    """The sanitizer a stage uses: NER model from ``settings.ner_model``; keyed placeholders when
    ``settings.sanitize_hash_key`` (STREAMS_SANITIZE_HASH_KEY, 16+ bytes) is set. Loads the models
    now, not on the first event."""
    if settings is None:
        from streams.settings import get_settings

        settings = get_settings()
    key = settings.sanitize_hash_key
    sanitizer = Sanitizer(settings.ner_model, secret=key.get_secret_value().encode() if key else None)
    sanitizer.warm_up()
    return sanitizer
