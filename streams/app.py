"""The Faust app: ``create_app(settings, stages)``; nothing connects until a worker starts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from streams.settings import Settings
from streams.stage import StageContext
from streams.topology import load_topology

log = logging.getLogger(__name__)

STAGES = ("sanitize", "cost", "incidents", "audit")


def _registrars() -> dict[str, Callable[[StageContext], None]]:
    from streams.cost.agents import register as cost
    from streams.incidents.agents import register as incidents
    from streams.protection.agents import register_audit, register_forget
    from streams.sanitize.agents import register as sanitize_only

    def sanitize(ctx: StageContext) -> None:
        sanitize_only(ctx)
        register_forget(ctx)  # forget writes the vault-keys table, so it runs where that table lives

    return {"sanitize": sanitize, "cost": cost, "incidents": incidents, "audit": register_audit}


def faust_broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def create_app(settings: Settings, stages: Sequence[str] | None = None) -> tuple[Any, StageContext]:
    import faust

    # Each stage set is its own consumer group: `--only cost` in one process and `--only
    # sanitize` in another must not share a group. Table changelogs are topics.yaml's `state.*`
    # topics, the same for every stage set, so a stage's state survives a change of layout.
    selected = tuple(s for s in STAGES if s in (stages or STAGES))
    app_id = settings.app_id if selected == STAGES else f"{settings.app_id}-{'-'.join(selected)}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its worker state here
    topology = load_topology(settings.topics_file, settings.schemas_dir)
    app = faust.App(
        app_id,
        broker=faust_broker_url(settings.bootstrap_servers),
        store=settings.store,
        datadir=str(settings.data_dir),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        # Faust's own topics (the assignor's leader topic) get the pipeline's replication.
        topic_replication_factor=topology["raw"].replication_factor,
        topic_partitions=6,
        # Offsets: a new group starts from the beginning so nothing published before the
        # first worker is lost; afterwards committed offsets rule.
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=500,
        broker_commit_interval=1.0,
        web_enabled=True,
        web_host=settings.web_host,
        web_bind=settings.web_host,  # Faust binds 0.0.0.0 unless told; loopback unless configured
        web_port=settings.web_port,
        web_in_thread=False,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
    )
    from streams.ops import consumer

    consumer.install(app)  # offsets stay contiguous across rebalances (faust-streaming#216, #221)
    ctx = StageContext(app=app, settings=settings, topology=topology)
    registrars = _registrars()
    for name in selected:
        registrars[name](ctx)
    from streams import web

    web.register(ctx)
    from streams.ops import web as ops_web

    ops_web.register(ctx)  # /health, /ready, consumer lag
    return app, ctx


def run_worker(settings: Settings, stages: Sequence[str] | None = None, loglevel: str = "INFO") -> NoReturn:
    """Run until stopped; mode's worker exits the process (SIGTERM/SIGINT stop it cleanly)."""
    from streams import logs
    from streams.ops.shutdown import graceful_worker

    app, _ = create_app(settings, stages)
    # JSON lines on stdout; SIGTERM pauses intake at once and the process exits within the grace.
    worker = graceful_worker(
        app,
        settings.shutdown_grace,
        loglevel=loglevel.lower(),
        quiet=True,
        redirect_stdouts=False,
        logging_config=logs.worker_logging_config(loglevel),
    )
    worker.execute_from_commandline()
