"""The circuit breaker in front of the vendor: fail fast while it is degraded, probe to recover.

Without one, a vendor P99 above 30 s for 2.5 hours became 94 minutes of 502s.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from gateway.settings import BreakerSettings


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failures` timeouts or 5xx within `window_seconds`; after `cooldown_seconds` one
    probe request is let through, and its outcome closes the breaker or opens it again."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.settings.cooldown_seconds:
            self._state = BreakerState.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """Whether a request may go to the vendor now (in half-open, only the one probe)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        if self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._failures.clear()
        self._probe_in_flight = False

    def record_failure(self) -> None:
        now = self._clock()
        if self._state is BreakerState.HALF_OPEN or self._probe_in_flight:
            self._open(now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.settings.window_seconds:
            self._failures.popleft()
        if len(self._failures) >= self.settings.failures:
            self._open(now)

    def release_probe(self) -> None:
        """The probe ended without telling us anything (e.g. the client went away)."""
        self._probe_in_flight = False

    def retry_after(self) -> int:
        remaining = self.settings.cooldown_seconds - (self._clock() - self._opened_at)
        return max(1, int(remaining + 0.999))

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures.clear()
        self._probe_in_flight = False
