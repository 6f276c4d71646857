"""Incident detection and escalation.

Pure core: ``detectors`` (bucketed counters and DDSketch bins in JSON state),
``tracker`` (one incident per fingerprint, repeat, hold-down resolve), ``runbooks``.
Delivery: ``escalation`` (escalations.yaml, secrets, Notification), ``adapters``
(Slack, PagerDuty, e-mail), ``dispatch`` (ledger-idempotent Dispatcher). The Faust
wiring lives in ``agents``; nothing here connects or registers anything at import.
"""
