"""One process's counts as plain dicts, and the per-worker spool that shares them.

With several workers each process spools its counters to
``<spool_dir>/metrics-<pid>.json`` every second (and when it stops); the process
that serves ``/metrics`` adds every other process's latest spool to its own live
counts (:mod:`strangler.metrics`), so the numbers add up across workers and
survive a worker that exits.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RELOAD_RESULTS = ("accepted", "rejected")


class Counts:
    """Everything counted, as plain dicts keyed by label tuples (one process's view)."""

    __slots__ = (
        "cutover_hold",
        "cutovers",
        "durations",
        "fallbacks",
        "reloads",
        "requests",
        "rollbacks",
        "shadow",
        "sync_events",
        "sync_lag",
    )

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        # (route, upstream) -> [count per bucket ..., count above the last, sum]
        self.durations: dict[tuple[str, str], list[float]] = {}
        self.fallbacks: dict[str, int] = {}
        self.shadow: dict[tuple[str, str], int] = {}
        self.rollbacks: dict[tuple[str, str], int] = {}
        self.reloads: dict[str, int] = dict.fromkeys(RELOAD_RESULTS, 0)
        self.sync_events: dict[tuple[str, str, str], int] = {}
        self.sync_lag: dict[str, float] = {}
        self.cutovers: dict[tuple[str, str, str], int] = {}
        # context -> [count per HOLD_BUCKETS bucket ..., count above the last, sum]
        self.cutover_hold: dict[str, list[float]] = {}

    def to_json(self) -> dict[str, Any]:
        return {
            name: [[*label_tuple(k), v] for k, v in getattr(self, name).items()]
            for name in self.__slots__
        }

    def add(self, data: dict[str, Any]) -> None:
        """Add another process's spooled counts into this one (gauges: theirs if unset here)."""
        for name in self.__slots__:
            mine: dict[Any, Any] = getattr(self, name)
            for row in data.get(name, ()):
                *labels, value = row
                key = tuple(labels) if len(labels) > 1 else labels[0]
                if name == "sync_lag":
                    mine.setdefault(key, value)
                elif name in ("durations", "cutover_hold"):
                    have = mine.get(key)
                    mine[key] = (
                        value if have is None else [a + b for a, b in zip(have, value, strict=True)]
                    )
                else:
                    mine[key] = mine.get(key, 0) + value

    def copy(self) -> Counts:
        """A copy; safe from another thread (the admin listener's) while the loop counts:
        ``dict(...)`` and ``list(...)`` of a dict are single steps under the GIL."""
        out = Counts()
        for name in self.__slots__:
            table = getattr(self, name)
            if name in ("durations", "cutover_hold"):
                setattr(out, name, {k: list(v) for k, v in list(table.items())})
            else:
                setattr(out, name, dict(table))
        return out


def label_tuple(key: Any) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


def write_spool(spool_dir: Path, counts: Counts) -> None:
    """Write ``counts`` as this process's spool (atomically)."""
    final = spool_dir / f"metrics-{os.getpid()}.json"
    tmp = final.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(counts.to_json()), encoding="utf-8")
        os.replace(tmp, final)
    except OSError:
        log.warning("cannot write metrics spool %s", final, exc_info=True)


def add_spools(spool_dir: Path, total: Counts) -> None:
    """Add every other process's latest spool into ``total``."""
    own = f"metrics-{os.getpid()}.json"
    for path in sorted(spool_dir.glob("metrics-*.json")):
        if path.name == own:
            continue
        try:
            total.add(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            log.warning("skipping unreadable metrics spool %s", path)
