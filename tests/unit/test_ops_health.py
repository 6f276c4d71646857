"""The liveness/readiness state machine (streams.ops.health) on a fake clock."""

from __future__ import annotations

from streams.ops.health import Health, Tick

OK = Tick(consumer_alive=True, broker_ok=True)
BROKER_DOWN = Tick(consumer_alive=True, broker_ok=False, error="KafkaConnectionError")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ready(health: Health, **overrides: bool) -> bool:
    args = {"stages_started": True, "tables_recovered": True, "rebalancing": False, **overrides}
    return health.readiness(**args).ok


def test_live_at_start_but_not_ready_before_the_first_tick() -> None:
    health = Health(clock=Clock())
    assert health.liveness().ok
    verdict = health.readiness(stages_started=True, tables_recovered=True, rebalancing=False)
    assert not verdict.ok and "no health tick yet" in verdict.reasons


def test_liveness_fails_only_after_three_consecutive_failed_ticks() -> None:
    health = Health(clock=Clock())
    health.record(BROKER_DOWN)
    health.record(BROKER_DOWN)
    assert health.liveness().ok
    health.record(BROKER_DOWN)
    verdict = health.liveness()
    assert not verdict.ok
    assert "3 consecutive failed health ticks" in verdict.reasons
    assert any("KafkaConnectionError" in r for r in verdict.reasons)


def test_a_good_tick_resets_the_failure_count() -> None:
    health = Health(clock=Clock())
    for tick in (BROKER_DOWN, BROKER_DOWN, OK, BROKER_DOWN, BROKER_DOWN):
        health.record(tick)
    assert health.liveness().ok
    assert health.consecutive_failures == 2


def test_a_dead_consumer_is_a_failed_tick() -> None:
    health = Health(clock=Clock())
    for _ in range(3):
        health.record(Tick(consumer_alive=False, broker_ok=True))
    assert health.liveness().reasons[-1] == "consumer is not running"


def test_liveness_fails_when_the_last_completed_tick_is_older_than_60_s() -> None:
    clock = Clock()
    health = Health(clock=clock)
    health.record(OK)
    clock.now += 60.0
    assert health.liveness().ok
    clock.now += 1.0
    verdict = health.liveness()
    assert not verdict.ok and verdict.reasons[0].startswith("no health tick completed for 61 s")
    health.record(OK)  # the loop came back
    assert health.liveness().ok


def test_a_worker_that_never_ticks_goes_stale_60_s_after_start() -> None:
    clock = Clock()
    health = Health(clock=clock)
    clock.now += 61.0
    assert not health.liveness().ok


def test_readiness_needs_broker_topics_stages_recovery_and_no_rebalance() -> None:
    health = Health(clock=Clock())
    health.record(OK)
    assert ready(health)
    assert not ready(health, stages_started=False)
    assert not ready(health, tables_recovered=False)
    assert not ready(health, rebalancing=True)
    health.record(BROKER_DOWN)  # one failed tick: still live, but not ready
    assert health.liveness().ok and not ready(health)
    health.record(Tick(consumer_alive=True, broker_ok=True, missing_topics=("hook.events.raw",)))
    verdict = health.readiness(stages_started=True, tables_recovered=True, rebalancing=False)
    assert verdict.reasons == ("missing topics: hook.events.raw",)
    health.record(OK)
    assert ready(health)


def test_verdict_json() -> None:
    health = Health(clock=Clock())
    assert health.liveness().as_json() == {"status": "ok", "reasons": []}
    assert health.readiness(stages_started=False, tables_recovered=True, rebalancing=False).as_json() == {
        "status": "failing",
        "reasons": ["no health tick yet", "not every stage has started"],
    }
