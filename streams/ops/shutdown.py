"""A Faust worker that stops taking records the moment SIGTERM (or SIGINT) arrives and exits
within ``shutdown_grace`` seconds even if a stop step hangs.

Faust's own stop commits, flushes the producer and leaves the group, with per-service
timeouts of up to a minute each; Kubernetes SIGKILLs after terminationGracePeriodSeconds.
So on the signal we (1) suspend flow control and pause every assigned partition, exactly
what Faust does when partitions are revoked, so no new record reaches an agent and the
buffered ones are skipped uncommitted (they are redelivered to the next owner), then (2)
let Faust stop as usual, and (3) arm a watchdog thread that exits the process at the grace.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, NoReturn, Protocol

log = logging.getLogger(__name__)

# The exit status when the watchdog had to cut the shutdown short (EX_SOFTWARE).
EXIT_GRACE_EXPIRED = 70


def stop_intake(app: Any) -> None:
    """Stop delivering records to agents at once. Never raises: the stop must go on."""
    try:
        consumer = app.consumer
        assignment = consumer.assignment()
        consumer.stop_flow()
        app.flow_control.suspend()
        if assignment:
            consumer.pause_partitions(assignment)
        app.flow_control.clear()  # drop what is buffered; uncommitted, so it is redelivered
    except Exception:  # the consumer may not have started yet (signal during boot)
        log.debug("could not pause the consumer", exc_info=True)


def arm_watchdog(grace: float, exit_code: int = EXIT_GRACE_EXPIRED) -> threading.Timer:
    """Exit the process after ``grace`` seconds, from a thread: it works even if the loop is stuck."""

    def expire() -> None:
        log.error("shutdown took longer than the %.0f s grace; exiting now", grace)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(exit_code)  # sys.exit from a thread would only end the thread

    timer = threading.Timer(grace, expire)
    timer.daemon = True
    timer.start()
    return timer


class RunnableWorker(Protocol):
    def execute_from_commandline(self) -> NoReturn: ...


def graceful_worker(app: Any, grace: float, **options: Any) -> RunnableWorker:
    """A ``faust.worker.Worker`` whose SIGTERM/SIGINT handler pauses intake and arms the watchdog."""
    from faust.worker import Worker

    class GracefulWorker(Worker):
        _watchdog: threading.Timer | None = None

        def _begin_stop(self, signame: str) -> None:
            if self._watchdog is None:
                log.info("%s received: pausing intake, stopping within %.0f s", signame, grace)
                stop_intake(self.app)
                self._watchdog = arm_watchdog(grace)

        def _on_sigterm(self) -> None:
            self._begin_stop("SIGTERM")
            super()._on_sigterm()

        def _on_sigint(self) -> None:
            self._begin_stop("SIGINT")
            super()._on_sigint()

    worker: RunnableWorker = GracefulWorker(app, **options)
    return worker
