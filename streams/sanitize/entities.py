"""The closed set of entity types the sanitizer emits.

Metric labels and placeholders only ever use these names, so a label can never carry text.
"""

from __future__ import annotations

from typing import Final

EMAIL_ADDRESS: Final = "EMAIL_ADDRESS"
PHONE_NUMBER: Final = "PHONE_NUMBER"
CREDIT_CARD: Final = "CREDIT_CARD"
US_SSN: Final = "US_SSN"
IP_ADDRESS: Final = "IP_ADDRESS"
IBAN_CODE: Final = "IBAN_CODE"
PERSON: Final = "PERSON"

# Secrets, one type per provider so a vault reader knows what to rotate.
ANTHROPIC_API_KEY: Final = "ANTHROPIC_API_KEY"
OPENAI_API_KEY: Final = "OPENAI_API_KEY"
AWS_ACCESS_KEY: Final = "AWS_ACCESS_KEY"
AWS_SECRET_KEY: Final = "AWS_SECRET_KEY"  # noqa: S105  # an entity type name, not a secret
GITHUB_TOKEN: Final = "GITHUB_TOKEN"  # noqa: S105  # an entity type name, not a secret
SLACK_TOKEN: Final = "SLACK_TOKEN"  # noqa: S105  # an entity type name, not a secret
STRIPE_KEY: Final = "STRIPE_KEY"
GOOGLE_API_KEY: Final = "GOOGLE_API_KEY"
JWT: Final = "JWT"
BEARER_TOKEN: Final = "BEARER_TOKEN"  # noqa: S105  # an entity type name, not a secret
URL_PASSWORD: Final = "URL_PASSWORD"  # noqa: S105  # an entity type name, not a secret
PRIVATE_KEY: Final = "PRIVATE_KEY"
# A value assigned to a key named like a secret (password=..., api_key: ...).
SECRET: Final = "SECRET"  # noqa: S105  # an entity type name, not a secret

PATTERN_PII: Final = frozenset({EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE})
SECRETS: Final = frozenset(
    {
        ANTHROPIC_API_KEY,
        OPENAI_API_KEY,
        AWS_ACCESS_KEY,
        AWS_SECRET_KEY,
        GITHUB_TOKEN,
        SLACK_TOKEN,
        STRIPE_KEY,
        GOOGLE_API_KEY,
        JWT,
        BEARER_TOKEN,
        URL_PASSWORD,
        PRIVATE_KEY,
        SECRET,
    }
)
ENTITY_TYPES: Final = PATTERN_PII | SECRETS | {PERSON}
