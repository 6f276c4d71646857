"""Data protection: right to delete, API auth, the hash-chained audit trail, per-tenant
retention and master-key rotation without a restart.

* :mod:`streams.protection.forget` - deletion requests and the forget itself (pure, no Kafka).
* :mod:`streams.protection.audit` - audit records and the per-partition hash chain.
* :mod:`streams.protection.retention` - ``retention.yaml``: days per tenant.
* :mod:`streams.protection.auth` - the bearer token of the worker's data endpoints.
* :mod:`streams.protection.agents` - the Faust wiring (the forget agent runs in the sanitize
  stage, beside the vault-keys table it writes; the audit agent is the ``audit`` stage).

Importing this package has no side effects.
"""
