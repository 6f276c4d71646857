"""presidio recognizers for the pattern catalogue (imports presidio: load lazily).

Each spec becomes a ``PatternRecognizer`` whose ``analyze`` uses a stdlib regex compiled once,
reports only the entity's capture group and applies the spec's refiner. ``find`` is the same
without presidio's result objects, for the hot path. presidio's predefined recognizers are
not loaded: they over-match identifiers (epochs as phones, UK_NHS on 10 digits, model names as
driver licences) and the URL/e-mail ones would make tldextract fetch the suffix list.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry, RecognizerResult

from streams.sanitize.patterns import SPECS, PatternSpec


class Hit(NamedTuple):
    start: int
    end: int
    entity: str
    score: float


class ScreenedPatternRecognizer(PatternRecognizer):
    def __init__(self, spec: PatternSpec) -> None:
        super().__init__(
            supported_entity=spec.entity,
            name=spec.name,
            patterns=[Pattern(name=spec.name, regex=spec.regex, score=spec.score)],
            supported_language="en",
        )
        self.spec = spec
        self._rx = re.compile(spec.regex, spec.flags | re.ASCII)

    def find(self, text: str) -> list[Hit]:
        spec = self.spec
        hits: list[Hit] = []
        for match in self._rx.finditer(text):
            start, end = match.span(spec.group)
            if start >= end:
                continue
            if spec.refine is not None:
                span = spec.refine(text, start, end)
                if span is None:
                    continue
                start, end = span
            hits.append(Hit(start, end, spec.entity, spec.score))
        return hits

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        if entities and self.spec.entity not in entities:
            return []
        return [RecognizerResult(h.entity, h.start, h.end, h.score) for h in self.find(text)]


def build_recognizers() -> list[ScreenedPatternRecognizer]:
    return [ScreenedPatternRecognizer(spec) for spec in SPECS]


def build_analyzer(nlp: Any = None) -> AnalyzerEngine:
    """A presidio ``AnalyzerEngine`` with only our recognizers, for ad-hoc use and comparison.

    ``nlp`` is a loaded spaCy pipeline (its NER adds PERSON through presidio's SpacyRecognizer);
    without it a blank English pipeline is used and nothing is downloaded.
    """
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    pipeline = nlp if nlp is not None else spacy.blank("en")

    class _LoadedEngine(SpacyNlpEngine):
        def load(self) -> None:
            # Never spacy.cli.download: hand presidio the pipeline already in memory.
            self.nlp = {"en": pipeline}  # type: ignore[assignment]  # presidio types nlp as None before load

    engine = _LoadedEngine(models=[{"lang_code": "en", "model_name": "preloaded"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in build_recognizers():
        registry.add_recognizer(recognizer)
    if nlp is not None:
        registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON"]))
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
