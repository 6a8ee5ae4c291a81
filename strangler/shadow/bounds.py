"""How many mirrors may be on their way: :class:`InFlight`.

A mirror is in flight from the moment the sink takes its copy until its
result is recorded. Two bounds hold at once: ``max_in_flight`` for the whole
process and ``shadow.max_in_flight`` per route (one counter per route name, so
a reload's new plans share it with the old ones still answering). A mirror
that would go over either is ``dropped``, never queued. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Protocol


class RouteLoad:
    """Mirrors of one route on their way."""

    def __init__(self) -> None:
        self.count = 0


class Bounded(Protocol):
    """What :class:`InFlight` reads from a plan."""

    @property
    def load(self) -> RouteLoad: ...
    @property
    def bound(self) -> int:
        """The route's ``shadow.max_in_flight``."""


class InFlight:
    """The process's mirrors on their way, in total and per route."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._routes: dict[str, RouteLoad] = {}

    def load(self, route: str) -> RouteLoad:
        """The one counter of ``route``'s mirrors (shared by all its plans)."""
        load = self._routes.get(route)
        if load is None:
            load = self._routes[route] = RouteLoad()
        return load

    def full(self, plan: Bounded) -> bool:
        """One more mirror of ``plan`` would go over a bound."""
        return self.total >= self.limit or plan.load.count >= plan.bound

    def admit(self, plan: Bounded) -> bool:
        """Count one more mirror of ``plan`` in flight; False (not counted) when it
        would go over a bound."""
        load = plan.load
        if self.total >= self.limit or load.count >= plan.bound:
            return False
        self.total += 1
        load.count += 1
        return True

    def release(self, plan: Bounded) -> None:
        self.total -= 1
        plan.load.count -= 1
