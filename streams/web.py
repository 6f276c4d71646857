"""HTTP endpoints on the worker's Faust web server: Prometheus metrics, chargeback, forget.

Endpoints that return or change data need ``Authorization: Bearer <token>``
(streams.protection.auth); /metrics stays open for scrapers.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.stage import StageContext

log = logging.getLogger(__name__)


def register(ctx: StageContext) -> None:
    from faust.web import View

    from streams.protection.auth import bearer_ok, worker_token

    app = ctx.app
    token = worker_token(ctx.settings)

    def refused(web: Any, request: Any, route: str) -> Any | None:
        """A 401 response unless the request carries the token; logged without its contents."""
        if bearer_ok(request.headers.get("Authorization"), token):
            return None
        log.warning("refused an unauthenticated request", extra={"reason": route})
        return web.json({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/chargeback")
    async def chargeback(web: Any, request: Any) -> Any:
        """Per-tenant totals of this worker's partitions: ?period=2026-11[&user=ID]."""
        from streams.cost.chargeback import report_from_states
        from streams.errors import StreamsError

        if (denied := refused(web, request, "chargeback")) is not None:
            return denied
        if "cost-state" not in ctx.tables:
            return web.json({"error": "the cost stage does not run in this worker"}, status=404)
        if not app.tables.recovery.completed.is_set():
            # Before recovery the table is partial: an answer now would under-report spend.
            return web.json({"error": "cost tables are still recovering from Kafka; retry"}, status=503)
        period = request.query.get("period", "")
        try:
            states = ctx.owned_cost_states() or {}  # never rows of partitions another worker now owns
            rows = report_from_states(states, period, request.query.get("user") or None)
        except (StreamsError, ValueError) as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.json({"period": period, "tenants": [r.as_json() for r in rows]})

    @app.page("/forget/{user_id}")
    class Forget(View):  # faust's View is untyped (Any); mypy's override allows it here
        """POST: publish a right-to-delete request (?requested_by=WHO); 202 with its id."""

        async def post(self, request: Any, user_id: str) -> Any:
            from streams.errors import PermanentError
            from streams.protection.forget import encode_command, forget_request

            if (denied := refused(self, request, "forget")) is not None:
                return denied
            try:
                command = forget_request(user_id, request.query.get("requested_by") or "api")
            except PermanentError as exc:
                return self.json({"error": str(exc)}, status=400)
            ack = await ctx.topic("deletion_requests").send(key=command.user_id.encode(), value=encode_command(command))
            await ack  # accepted means on the broker
            return self.json({"request_id": command.request_id, "deletion_id": f"del-{command.request_id}"}, status=202)
