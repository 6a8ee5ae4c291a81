"""Recent traffic per route for people: requests, error rate and fallbacks in the last minute.

The metrics keep totals since start (summed over workers); this module keeps a
few timestamped snapshots of them (one every ``every`` seconds, plus one per
read) and reports the difference between now and the oldest snapshot inside
the window. Reading it costs one metrics snapshot; nothing here is on the
request path.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from strangler.metrics import RouteCounts

Snapshot = Mapping[str, RouteCounts]


@dataclass(frozen=True)
class Traffic:
    """One route's traffic over the last ``window`` seconds (less just after start)."""

    requests: int
    errors: int
    fallbacks: int
    window: float

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "requests_per_min": self.requests,
            "error_rate": self.error_rate,
            "fallbacks": self.fallbacks,
            "window_seconds": round(self.window, 1),
        }


_EMPTY = RouteCounts()


class TrafficWindow:
    def __init__(
        self, snapshot: Callable[[], Snapshot], *, window: float = 60.0, every: float = 5.0
    ) -> None:
        self._snapshot = snapshot
        self._window = window
        self._every = every
        self._samples: deque[tuple[float, Snapshot]] = deque()
        self.sample()

    def sample(self) -> tuple[float, Snapshot]:
        """Take a snapshot now and forget the ones no longer needed."""
        now = time.monotonic()
        current = self._snapshot()
        self._samples.append((now, current))
        # Keep the newest sample at least a window old: it is the baseline.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()
        return now, current

    def due(self) -> bool:
        return not self._samples or self._samples[-1][0] <= time.monotonic() - self._every

    def recent(self) -> dict[str, Traffic]:
        """Every route's traffic in the last window."""
        now, current = self.sample()
        since, base = next(
            ((t, s) for t, s in self._samples if t >= now - self._window), self._samples[0]
        )
        out = {}
        for name, totals in current.items():
            before = base.get(name, _EMPTY)
            out[name] = Traffic(
                requests=totals.requests - before.requests,
                errors=totals.errors - before.errors,
                fallbacks=totals.fallbacks - before.fallbacks,
                window=now - since,
            )
        return out
