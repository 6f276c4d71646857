"""The pattern catalogue: one entry per recognizer, with its screening expression.

``regex`` (stdlib ``re``) finds the exact span; ``screen`` (hyperscan) is a cheaper SUPERSET of
it, so a text without a screen hit can skip the recognizer. Both are ASCII: a screen must
never miss what its regex would match (tests/unit/test_sanitize_patterns.py checks it).

Boundaries use lookarounds on ``[\\w-]`` so that a value inside an identifier (a card-like run
of digits in a UUID, an SSN shape inside ORD-2020-695699) is not a candidate at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.sanitize import entities as E
from streams.sanitize import validators as V


@dataclass(frozen=True, slots=True)
class PatternSpec:
    name: str
    entity: str
    regex: str
    screen: str
    score: float
    group: int = 0  # the capture group that is the entity (0 = whole match)
    refine: V.Refiner | None = None
    flags: int = 0


_SEP = r"[\"']?\s*(?:[:=]|=>)\s*[\"']?"
# A value runs to whitespace, a quote or a delimiter of the surrounding syntax.
_VALUE = r"([^\s\"'`,;&}\])]+)"
_NAME = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
_PERSON_KEYS = (
    r"(?:full|first|last|given|family|customer|client|user|contact|display|legal)?_?name|customer|client|owner"
    r"|assignee|reporter|author|contact|patient|employee|recipient|sender|requester|requested_by|assigned_to|cc"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

SPECS: tuple[PatternSpec, ...] = (
    PatternSpec(
        "email",
        E.EMAIL_ADDRESS,
        r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])",
        r"[A-Za-z0-9]@[A-Za-z0-9-]+\.",
        0.95,
    ),
    PatternSpec(
        "phone_nanp",
        E.PHONE_NUMBER,
        r"(?<![\w+.-])(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|\.\d)",
        r"\d{3}\)?[ .-]?\d{3}[ .-]\d{4}",
        0.8,
        refine=V.refine_phone,
    ),
    PatternSpec(
        "phone_intl",
        E.PHONE_NUMBER,
        r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,8}){1,6}(?![\w-]|\.\d)",
        r"\+\d{1,3}[ .(-]?\(?\d",
        0.75,
        refine=V.refine_phone,
    ),
    PatternSpec(
        "phone_context",
        E.PHONE_NUMBER,
        r"(?<![A-Za-z])(?i:phone|tel|mobile|cell|sms|fax|whatsapp)(?:[_ -]?(?i:no|num|number))?(?![A-Za-z])"
        r"[^\d\n]{0,20}?(?<![\w.-])(\+?\d{10,12})(?![\w.-])",
        r"(?i:phone|tel|mobile|cell|sms|fax|whatsapp)[^\n]{0,40}\d{10}",
        0.7,
        group=1,
    ),
    PatternSpec(
        "us_ssn",
        E.US_SSN,
        r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])",
        r"\d{3}[- ]\d{2}[- ]\d{4}",
        0.85,
        refine=V.refine_ssn,
    ),
    PatternSpec(
        "us_ssn_context",
        E.US_SSN,
        r"(?<![A-Za-z])(?i:ssn|social security(?: number| no\.?)?|ss#)(?![A-Za-z])"
        r"[^\d\n]{0,20}?(?<![\w.-])(\d{9})(?![\w.-])",
        r"(?i:ssn|social security|ss#)[^\n]{0,40}\d{9}",
        0.8,
        group=1,
        refine=V.refine_ssn,
    ),
    PatternSpec(
        "credit_card",
        E.CREDIT_CARD,
        r"(?<![\w-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-])",
        r"[2-6]\d{3}(?:[ -]?\d){9,15}",
        1.0,
        refine=V.refine_card,
    ),
    PatternSpec(
        "ipv4",
        E.IP_ADDRESS,
        rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)",
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
        0.95,
        refine=V.refine_ipv4,
    ),
    PatternSpec(
        "ipv6",
        E.IP_ADDRESS,
        r"(?<![\w:.])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?:\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)",
        r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
        0.95,
        refine=V.refine_ipv6,
    ),
    PatternSpec(
        "iban",
        E.IBAN_CODE,
        r"(?<!\w)[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?!\w)",
        r"\b[A-Za-z]{2}\d{2} ?[A-Za-z0-9]{4} ?[A-Za-z0-9]{4}",
        1.0,
        refine=V.refine_iban,
    ),
    # Secrets: provider formats as published by secret scanners (gitleaks, GitHub push protection).
    PatternSpec("anthropic_key", E.ANTHROPIC_API_KEY, r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}", r"sk-ant-", 1.0),
    PatternSpec(
        "openai_key",
        E.OPENAI_API_KEY,
        r"(?<![\w-])sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}",
        r"sk-[A-Za-z0-9_-]{20}",
        0.95,
        refine=V.refine_token,
    ),
    PatternSpec(
        "aws_access_key",
        E.AWS_ACCESS_KEY,
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}",
        1.0,
    ),
    PatternSpec(
        "aws_secret_key",
        E.AWS_SECRET_KEY,
        r"(?i:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)"
        + _SEP
        + r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        r"(?i:secret_?access_?key|aws_?secret)",
        1.0,
        group=1,
    ),
    PatternSpec(
        "github_token",
        E.GITHUB_TOKEN,
        r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})",
        r"gh[pousr]_[A-Za-z0-9]{30}|github_pat_",
        1.0,
    ),
    PatternSpec(
        "slack_token",
        E.SLACK_TOKEN,
        r"(?<![\w-])xox[abposr]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
        r"xox[abposr]-|hooks\.slack\.com/services/",
        1.0,
    ),
    PatternSpec(
        "stripe_key",
        E.STRIPE_KEY,
        r"(?<![\w-])(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})",
        r"(?:sk|rk|pk)_(?:live|test)_|whsec_",
        1.0,
    ),
    PatternSpec("google_api_key", E.GOOGLE_API_KEY, r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])", r"AIza", 1.0),
    PatternSpec(
        "jwt",
        E.JWT,
        r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        r"eyJ[A-Za-z0-9_-]{5}[A-Za-z0-9_-]*\.eyJ",
        1.0,
    ),
    PatternSpec(
        "bearer_token",
        E.BEARER_TOKEN,
        r"(?<![A-Za-z])(?i:bearer|basic|token)\s+([A-Za-z0-9._~+/-]{16,}=*)",
        r"(?i:bearer|basic|token)\s+[A-Za-z0-9._~+/-]{16}",
        0.9,
        group=1,
        refine=V.refine_token,
    ),
    PatternSpec(
        "url_password",
        E.URL_PASSWORD,
        r"(?i:[a-z][a-z0-9+.-]*)://[^\s/:@\"']*:([^\s/@\"']+)@(?=[\w\[])",
        r"://[^\s/@]*:[^\s/@]+@",
        1.0,
        group=1,
    ),
    PatternSpec(
        "private_key",
        E.PRIVATE_KEY,
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----",
        1.0,
        flags=re.DOTALL,
    ),
    PatternSpec(
        "password_assignment",
        E.SECRET,
        # The key may be compound (db_password, ANTHROPIC_API_KEY): match from the keyword on.
        r"(?i:password|passwd|passphrase)[\w.-]*" + _SEP + _VALUE,
        r"(?i:password|passwd|passphrase)",
        0.7,
        group=1,
        refine=V.refine_password_value,
    ),
    PatternSpec(
        "secret_assignment",
        E.SECRET,
        r"(?i:secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|token|credential)"
        r"[\w.-]*" + _SEP + _VALUE,
        r"(?i:secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|token|credential)",
        0.65,
        group=1,
        refine=V.refine_secret_value,
    ),
    PatternSpec(
        "secret_flag",
        E.SECRET,
        r"(?<![\w-])--?(?i:password|passwd|token|api-key|secret)[ =]([^\s\"']+)",
        r"-(?i:password|passwd|token|api-key|secret)[ =]",
        0.7,
        group=1,
        refine=V.refine_password_value,
    ),
    # Names after a strong cue; NER finds the rest when the model is installed.
    PatternSpec(
        "person_cue",
        E.PERSON,
        r"(?:(?<![A-Za-z])"
        r"(?:(?i:my name is|my name's|name is|i am|i'm|signed|regards|sincerely|dear|mrs?\.?|ms\.?|dr\.?)[,:]?\s+"
        r"|(?i:thanks|thank you|cheers|best|hi|hello|hey),\s+"
        # A person-ish key in JSON, YAML or key=value: "customer": "Wesley Jones".
        r"|\"?(?i:" + _PERSON_KEYS + r")\"?\s*[:=]\s*\"?))"
        rf"({_NAME}(?:\s+{_NAME}){{0,2}})(?!\w)",
        r"(?i:name|i am|i'm|signed|regards|sincerely|dear|mr|mrs|ms|dr|thanks|thank you|cheers|best|hi|hello|hey|"
        + _PERSON_KEYS
        + r")[^\n]{0,12}[A-Z][a-z]",
        0.6,
        group=1,
    ),
    # "Call Arjun Patel back", "email Maria Garcia": a contact verb or role, then a full
    # name (two capitalised words, so "Contact Support" alone is not taken for a person).
    # The small spaCy model often misses names right after a sentence-initial verb.
    PatternSpec(
        "person_contact",
        E.PERSON,
        r"(?<![A-Za-z])(?i:call|phone|contact|e-?mail|text|ping|message|ask|tell|remind|notify|"
        r"customer|client|patient|caller|applicant|tenant contact)\s+"
        rf"({_NAME}\s+{_NAME})(?![\w-])",
        r"(?i:call|phone|contact|mail|text|ping|message|ask|tell|remind|notify|customer|client|patient|caller|"
        r"applicant)\s+[A-Z][a-z]+\s+[A-Z][a-z]",
        0.5,
        group=1,
        refine=V.refine_person_name,
    ),
)
