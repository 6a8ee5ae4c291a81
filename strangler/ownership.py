"""Who owns a bounded context's writes and data: an immutable value held by the state store.

A context absent from the store is owned by ``legacy`` at epoch 0. Every completed
cutover writes a new :class:`Ownership` with ``epoch + 1``; while one runs, the
stored value says ``state: holding`` (or ``draining``) with the ``cutover`` id and
the side it moves ``to``, and every proxy replica holds the context's writes
until the value is ``steady`` again. The sync worker reads the same value to
decide which side's changes it applies (see ``strangler.sync``). The value also
keeps the latest cutovers' outcomes (``history``): a sync stream that reaches a
cutover's watermark late, after later cutovers, takes the outcome of *that*
cutover, not the latest one (``strangler.sync.direction``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Owner = Literal["legacy", "service"]
OWNERS: tuple[Owner, ...] = ("legacy", "service")
STEADY, HOLDING, DRAINING = "steady", "holding", "draining"
HISTORY = 32
"""How many cutover outcomes an ownership keeps (a stream further behind than that
many cutovers takes the stored owner once steady)."""

Outcome = tuple[str, Owner, int]
"""A finished cutover: (its id, the owner after it, the epoch after it)."""


@dataclass(frozen=True)
class Ownership:
    context: str
    owner: Owner = "legacy"
    """Who takes the context's writes and whose database is the source of truth."""
    epoch: int = 0
    """+1 at every completed cutover."""
    state: str = STEADY
    """``steady``, or ``holding`` / ``draining`` while a cutover runs."""
    changed_at: float = field(default_factory=time.time)
    by: str = ""
    """Who or what ran the last change (a token fingerprint, ``watchdog``)."""
    cutover: str = ""
    """The running cutover's id (empty when steady): replicas acknowledge it."""
    to: Owner | None = None
    """The side a running cutover moves the context to."""
    history: tuple[Outcome, ...] = ()
    """The latest finished cutovers, newest first (at most ``HISTORY``)."""

    @property
    def steady(self) -> bool:
        return self.state == STEADY

    def holding(self, to: Owner, cutover: str, by: str) -> Ownership:
        return replace(self, state=HOLDING, cutover=cutover, to=to, by=by, changed_at=time.time())

    def draining(self) -> Ownership:
        return replace(self, state=DRAINING, changed_at=time.time())

    def moved(self, by: str) -> Ownership:
        """The cutover completed: the new owner, the next epoch."""
        assert self.to is not None
        history = self._ended(self.to, self.epoch + 1)
        return Ownership(
            self.context, self.to, self.epoch + 1, STEADY, time.time(), by, history=history
        )

    def kept(self, by: str) -> Ownership:
        """The cutover aborted: the old owner, the same epoch."""
        history = self._ended(self.owner, self.epoch)
        return Ownership(
            self.context, self.owner, self.epoch, STEADY, time.time(), by, history=history
        )

    def _ended(self, owner: Owner, epoch: int) -> tuple[Outcome, ...]:
        if not self.cutover:
            return self.history
        return ((self.cutover, owner, epoch), *self.history)[:HISTORY]

    def outcome(self, cutover: str) -> Outcome | None:
        """How cutover ``cutover`` ended, if it is among the latest ones."""
        return next((o for o in self.history if o[0] == cutover), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def audited(self) -> dict[str, Any]:
        """``to_dict`` without the history, for the audit log (one entry per change)."""
        found = self.to_dict()
        del found["history"]
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ownership:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if values.get("owner") not in OWNERS:
            raise ValueError(f"owner {values.get('owner')!r} is not legacy or service")
        values["history"] = tuple(
            (str(c), o, int(e)) for c, o, e in values.get("history") or () if o in OWNERS
        )
        return cls(**values)


def unowned(context: str) -> Ownership:
    """A context the store has never seen: legacy owns it, epoch 0."""
    return Ownership(context, "legacy", 0, STEADY, 0.0, "")


def dump_ownership(ownership: Ownership) -> str:
    return json.dumps(ownership.to_dict(), separators=(",", ":"), sort_keys=True)


def load_ownership(text: str) -> Ownership:
    data: dict[str, Any] = json.loads(text)
    return Ownership.from_dict(data)
