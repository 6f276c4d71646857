"""HTTP endpoints on the worker's Faust web server: Prometheus metrics and chargeback."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.stage import StageContext


def register(ctx: StageContext) -> None:
    app = ctx.app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/chargeback")
    async def chargeback(web: Any, request: Any) -> Any:
        """Per-tenant totals of this worker's partitions: ?period=2026-11[&user=ID]."""
        from streams.cost.chargeback import report_from_states
        from streams.errors import StreamsError

        states = ctx.tables.get("cost-state")
        if states is None:
            return web.json({"error": "the cost stage does not run in this worker"}, status=404)
        if not app.tables.recovery.completed.is_set():
            # Before recovery the table is partial: an answer now would under-report spend.
            return web.json({"error": "cost tables are still recovering from Kafka; retry"}, status=503)
        period = request.query.get("period", "")
        try:
            rows = report_from_states(dict(states.items()), period, request.query.get("user") or None)
        except (StreamsError, ValueError) as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.json({"period": period, "tenants": [r.as_json() for r in rows]})
