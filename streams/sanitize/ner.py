"""Person names through spaCy NER: loaded once, lazily, offline; run batched and only where a
name can be.

A string goes to the model only if it has a Title-case word that is not merely the first word
of a sentence, or two Title-case words in a row. Identifier-only strings (no whitespace) and
lower-case log lines never pay for the model, and neither do texts made of keywords at
sentence starts ("Error ...", "Login from ...").
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

from streams.sanitize import entities as E
from streams.sanitize.recognizers import Hit
from streams.sanitize.validators import ORG_WORDS as _ORG_WORDS

log = logging.getLogger(__name__)

NER_SCORE = 0.85
_TITLE = re.compile(r"(?<![\w'-])[A-Z][a-z]+(?:['-][A-Za-z][a-z]+)?(?![\w-])")
_SENTENCE_END = ".!?\n"
# A PERSON span from the model must read like a name: no digits, no identifier punctuation.
_NAME_SHAPE = re.compile(r"^[A-Z][A-Za-z'.-]*(?:\s+[A-Za-z][A-Za-z'.-]*){0,4}$")
# The small model often labels an unfamiliar "First Last" as ORG, EVENT or WORK_OF_ART; accept
# those labels only for a span shaped exactly like a personal name and not ending like an org.
_FALLBACK_LABELS = frozenset({"ORG", "WORK_OF_ART", "EVENT", "FAC"})
_PERSON_SHAPE = re.compile(r"^[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?(?: [A-Z][a-z]+(?:[-'][A-Z][a-z]+)?){1,2}$")
_CHUNK = 20_000  # spaCy cost grows with length; long texts are cut at whitespace
_warned: set[str] = set()
_warn_lock = threading.Lock()


def needs_ner(text: str) -> bool:
    if " " not in text:
        return False
    prev_end = -2
    for match in _TITLE.finditer(text):
        start = match.start()
        # Two Title-case words separated by one space: "Chloe Sanford".
        if start == prev_end + 1:
            return True
        prev_end = match.end()
        j = start - 1
        while j >= 0 and text[j] in " \t\"'([{":
            j -= 1
        if j >= 0 and text[j] not in _SENTENCE_END:
            return True
    return False


def _person_ok(span: str) -> bool:
    return 2 <= len(span) <= 80 and _NAME_SHAPE.match(span) is not None


def load_ner(model: str) -> Any | None:
    """The spaCy pipeline with only what NER needs, or None (warned once per model name)."""
    if not model:
        _warn_once(model, "no NER model configured (STREAMS_NER_MODEL is empty): pattern-only, no PERSON names")
        return None
    try:
        import spacy

        nlp = spacy.load(model, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
    except (OSError, ImportError, ValueError) as exc:  # E050 (not installed) is an OSError; never downloads
        _warn_once(model, f"NER model {model!r} cannot be loaded ({type(exc).__name__}): pattern-only")
        return None
    if "ner" not in nlp.pipe_names:
        _warn_once(model, f"spaCy pipeline {model!r} has no 'ner' component: pattern-only")
        return None
    # Keep tok2vec only if NER listens to it (en_core_web_sm's NER has its own embedding layer).
    if "tok2vec" in nlp.pipe_names:
        listeners = getattr(nlp.get_pipe("tok2vec"), "listening_components", [])
        if "ner" not in listeners:
            nlp.disable_pipe("tok2vec")
    return nlp


def _warn_once(model: str, message: str) -> None:
    with _warn_lock:
        if model in _warned:
            return
        _warned.add(model)
    log.warning(message)


def _chunks(text: str) -> list[tuple[int, str]]:
    if len(text) <= _CHUNK:
        return [(0, text)]
    out: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(start + _CHUNK, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + _CHUNK // 2, end)
            end = cut if cut > start else end
        out.append((start, text[start:end]))
        start = end
    return out


def find_persons(nlp: Any, texts: Sequence[str], batch_size: int = 128) -> list[list[Hit]]:
    """PERSON hits per text, one nlp.pipe pass over all of them."""
    pieces: list[tuple[int, int, str]] = []  # (text index, offset, chunk)
    for i, text in enumerate(texts):
        pieces.extend((i, offset, chunk) for offset, chunk in _chunks(text))
    results: list[list[Hit]] = [[] for _ in texts]
    docs = nlp.pipe((chunk for _, _, chunk in pieces), batch_size=batch_size)
    for (i, offset, _), doc in zip(pieces, docs, strict=True):
        for ent in doc.ents:
            span = ent.text
            if ent.label_ != "PERSON" and not (
                ent.label_ in _FALLBACK_LABELS
                and _PERSON_SHAPE.match(span)
                and span.rsplit(" ", 1)[-1].lower() not in _ORG_WORDS
            ):
                continue
            # Drop a possessive the model includes ("Maria's").
            trimmed = span[:-2] if span.endswith(("'s", "’s")) else span
            if _person_ok(trimmed):
                start = offset + ent.start_char
                results[i].append(Hit(start, start + len(trimmed), E.PERSON, NER_SCORE))
    return results
