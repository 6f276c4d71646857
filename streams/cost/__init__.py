"""Exact per-tenant cost accounting, budgets and chargeback: the pure core.

- ``periods``: period keys and ``[start, end)`` bounds in a tenant's time zone.
- ``budgets``: ``budgets.yaml`` models, loader and the hot-reloading ``BudgetBook``.
- ``spend``: one tenant's JSON state and ``apply(state, event, config, now)``.
- ``chargeback``: per-tenant totals for a month or day, ``Replay`` and report formats.

Nothing here imports Faust or Kafka; ``agents.py`` wires these into tables and topics.
"""
