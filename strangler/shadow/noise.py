"""Noise: fields that differ between two answers of legacy to one request.

With ``shadow.noise_percent`` a sampled request also goes to legacy a second
time; a field that differs between legacy's two answers (a request id, a
timestamp) is noise, and differences there never make a mismatch.
:class:`NoiseBook` learns such fields and knows a route's noise: what this
process learned, plus what every process stored, re-read at most every
``ttl`` seconds. Noise only grows. It never raises: a store that fails means
the noise known so far.
"""

from __future__ import annotations

import logging
import time

from strangler.shadow.compare import Comparator
from strangler.shadow.observation import Observation
from strangler.shadow.recorder import Recorder

log = logging.getLogger(__name__)

TTL = 2.0
"""Seconds a route's noise is used before the store is read again."""


class NoiseBook:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._known: dict[str, tuple[float, frozenset[str]]] = {}
        """Route -> (when the store was read, the noisy fields)."""

    def learn(
        self, route: str, comparator: Comparator, legacy: Observation, again: Observation
    ) -> None:
        """The fields that differ between two legacy answers to one request are noise."""
        if legacy.failed or again.failed:
            return
        fields = {d.field for d in comparator.compare(legacy, again).differences}
        if fields:
            self._recorder.noise(route, fields)
            _, known = self._known.get(route, (0.0, frozenset()))
            self._known[route] = (time.monotonic(), known | fields)

    async def of(self, route: str) -> frozenset[str]:
        at, known = self._known.get(route, (0.0, frozenset()))
        if time.monotonic() - at > TTL:
            try:
                # What this process learned and has not flushed yet stays.
                known = known | await self._recorder.store.noise(route)
            except Exception:
                log.warning("shadow store unavailable; using cached noise for %r", route)
            self._known[route] = (time.monotonic(), known)
        return known
