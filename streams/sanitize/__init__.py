"""PII and secret sanitization of hook events (presidio + hyperscan screening + spaCy NER).

Importing this package is cheap: presidio, hyperscan and spaCy load on first use.
"""

from __future__ import annotations

from streams.sanitize.engine import Finding, SanitizedEvent, Sanitizer, TextResult, build_engine

__all__ = ["Finding", "SanitizedEvent", "Sanitizer", "TextResult", "build_engine"]
