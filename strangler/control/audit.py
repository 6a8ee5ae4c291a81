"""The audit log: who changed which route's override, when, and from what.

Every change is written twice: a structured log line (logger ``strangler.audit``,
one JSON object per line, always written) and an entry in the state store's
capped list (the newest ``admin.audit_entries``), which ``GET /api/audit``
shows. A store that is down loses the stored copy, never the log line, and
never fails the change that was already made.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from strangler.control.state import AUDIT_KEY, StateStore
from strangler.errors import StateStoreError
from strangler.override import Override

log = logging.getLogger("strangler.audit")


@dataclass(frozen=True)
class AuditEntry:
    action: str
    """``override.set``, ``override.clear`` or ``auto-rollback``."""
    route: str
    who: str
    """``token:<fingerprint>`` for a person, ``auto-rollback`` for the monitor."""
    previous: dict[str, Any] | None
    current: dict[str, Any] | None
    reason: str | None = None
    at: float = field(default_factory=time.time)

    @classmethod
    def of(
        cls,
        action: str,
        route: str,
        who: str,
        previous: Override | None,
        current: Override | None,
        reason: str | None = None,
    ) -> AuditEntry:
        return cls(
            action=action,
            route=route,
            who=who,
            previous=previous.to_dict() if previous else None,
            current=current.to_dict() if current else None,
            reason=reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    def __init__(self, store: StateStore, keep: int = 200) -> None:
        self._store = store
        self._keep = keep

    async def record(self, entry: AuditEntry) -> None:
        line = json.dumps(entry.to_dict(), separators=(",", ":"), sort_keys=True)
        log.info("%s", line)
        try:
            await self._store.push(AUDIT_KEY, line, self._keep)
        except StateStoreError as exc:
            log.warning("audit entry not stored (%s); it is in this log only", exc)

    async def latest(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first. Raises StateStoreError when the store is unreachable."""
        lines = await self._store.latest(AUDIT_KEY, min(limit or self._keep, self._keep))
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries
