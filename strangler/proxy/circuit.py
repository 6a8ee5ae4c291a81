"""Per-upstream circuit breaker: stop sending traffic to an upstream that keeps failing.

``failures`` consecutive failures (connect error, timeout, 5xx) open the
circuit for ``cooldown`` seconds, during which :meth:`CircuitBreaker.allow`
says no and the data plane answers at once (502, or legacy with fallback).
After the cooldown one request is let through as a probe (half-open): success
closes the circuit, failure opens it for another cooldown.

One breaker lives in each upstream pool, inside one worker process; it is
plain state touched only from the event loop, never a lock, never I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from strangler.config import CircuitConfig

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreaker:
    __slots__ = ("_clock", "_cooldown", "_limit", "failures", "opened_at", "probing", "state")

    def __init__(self, config: CircuitConfig, clock: Callable[[], float]) -> None:
        self._limit = config.failures
        self._cooldown = config.cooldown
        self._clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False

    def allow(self) -> bool:
        """May a request be sent now? In half-open, only the single probe may."""
        if self.state is CLOSED:
            return True
        if self.state is OPEN:
            if self._clock() - self.opened_at < self._cooldown:
                return False
            self.state = HALF_OPEN
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def refusing(self) -> bool:
        """Would :meth:`allow` say no now? Asks without taking the half-open probe."""
        if self.state is CLOSED:
            return False
        if self.state is OPEN:
            return self._clock() - self.opened_at < self._cooldown
        return self.probing

    def success(self) -> None:
        if self.state is not CLOSED or self.failures:
            self.state = CLOSED
            self.failures = 0
            self.probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.state is HALF_OPEN or self.failures >= self._limit:
            self.state = OPEN
            self.opened_at = self._clock()
            self.probing = False

    def release_probe(self) -> None:
        """The probe ended without a verdict (e.g. the client went away): allow another."""
        self.probing = False
