"""The circuit breaker's states, driven by an injected clock."""

from __future__ import annotations

from gateway.breaker import BreakerState, CircuitBreaker
from gateway.settings import BreakerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(b: CircuitBreaker) -> BreakerState:
    return b.state  # read afresh each time: it moves with the clock


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(BreakerSettings(failures=3, window_seconds=10, cooldown_seconds=30), clock)


def opened(clock: Clock) -> CircuitBreaker:
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    assert state(b) is BreakerState.OPEN
    return b


def test_opens_after_the_configured_failures_within_the_window() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        b.record_failure()
    assert state(b) is BreakerState.CLOSED and b.allow()
    b.record_failure()
    assert state(b) is BreakerState.OPEN and not b.allow()
    assert b.retry_after() == 30


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    clock.now += 11
    b.record_failure()
    assert state(b) is BreakerState.CLOSED


def test_one_probe_after_cooldown_closes_it_on_success() -> None:
    clock = Clock()
    b = opened(clock)
    clock.now += 29.9
    assert not b.allow()
    clock.now += 0.1
    assert state(b) is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # everyone else still fails fast
    b.record_success()
    assert state(b) is BreakerState.CLOSED and b.allow()


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    clock = Clock()
    b = opened(clock)
    clock.now += 30
    assert b.allow()
    b.record_failure()
    assert state(b) is BreakerState.OPEN
    clock.now += 29
    assert not b.allow()
    clock.now += 1
    assert b.allow()


def test_a_probe_that_ends_without_an_answer_frees_the_next_probe() -> None:
    clock = Clock()
    b = opened(clock)
    clock.now += 30
    assert b.allow()
    b.release_probe()
    assert b.allow()
