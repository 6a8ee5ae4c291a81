"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

from strangler.config import CircuitConfig
from strangler.proxy.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_refusing_answers_like_allow_without_taking_the_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitConfig(failures=2, cooldown=5.0), clock)
    assert not breaker.refusing() and breaker.allow()
    breaker.failure()
    breaker.failure()
    assert breaker.state is OPEN
    assert breaker.refusing() and not breaker.allow()

    clock.now += 5.0  # the cooldown is over: one probe may go
    assert not breaker.refusing()
    assert not breaker.refusing()  # asking twice does not spend the probe
    assert breaker.allow()  # the probe
    assert breaker.state is HALF_OPEN
    assert breaker.refusing() and not breaker.allow()  # only one probe at a time

    breaker.success()
    assert breaker.state is CLOSED and not breaker.refusing()
