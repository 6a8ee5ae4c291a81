"""Which way data flows: each change is judged by its context's owner when it was written.

The worker runs both directions at once. A source capturing the monolith carries
changes made on the ``legacy`` side; a source named as some table's
``reverse.source`` carries changes made on the ``service`` side. A change applies
when its side owns the table's context (``contexts:`` in routes.yaml; a table in no
context is owned by ``legacy``). A change from the other side was *written by the
non-owner*: it is dead-lettered with that reason, counted, and never applied.

"Owner when it was written", not "owner when the worker reads it": every captured
stream keeps the owner it judges by, and changes it only at a drain's watermark
(``watermark.py``), once the cutover has finished or aborted (the state store says
``steady``). The drain writes its watermark into both databases before the flip,
so everything before it on a stream was written under the old owner and everything
after it under the outcome. That is the only place a stream changes owner: a
capture that is idle says nothing about what is committed but not delivered yet
(Debezium, Kafka, a SQLite poll asleep), so a stream never takes the stored owner
because it is caught up. A stream starts with the owner the store gave when the
worker started (not when the stream first meets the context's table), once the
store has answered (a worker started while it is down waits; it does not guess).
An ownership written into the store by hand, without ``strangler cutover``, has no
watermark: running streams keep judging by the owner they had, and report the new
owner's writes as the non-owner's, until the next cutover's watermark. Ownership is
read from the state store the proxy uses (the same ``state:``).

A stream's owner is stored with its offsets, in the transaction that commits them
(``owner:CONTEXT`` keys beside the positions, see ``stored``): a worker restarted
mid-cutover replays from its last committed position with the owner the stream had
there, so changes before a watermark are judged by the old owner even if the store
has flipped since. The worker never commits a position past a watermark before the
stream has passed it (see ``Worker._process``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from strangler.errors import StranglerError, SyncError
from strangler.sync.adapters import AdapterSet
from strangler.sync.ledger import NON_OWNER
from strangler.sync.watermark import Watermark

log = logging.getLogger("strangler.sync")

MARKER_WAIT = 60.0
"""Longest a stream waits at a watermark for its cutover to finish; past it the
stream takes whatever the store says (a cutover's watchdog should have ended it)."""


class OwnershipView(Protocol):
    """What the worker reads of ``strangler.control.ownership.Ownership``."""

    @property
    def owner(self) -> str: ...

    @property
    def epoch(self) -> int: ...

    @property
    def state(self) -> str: ...


class OwnerReader(Protocol):
    """The state store, as far as the worker needs it."""

    async def ownerships(self) -> Mapping[str, OwnershipView]: ...


@dataclass(frozen=True)
class Owned:
    owner: str
    epoch: int
    steady: bool = True


LEGACY = Owned("legacy", 0)

OWNER_KEY = "owner:"
"""Offsets key prefix of a stream's owner of a context (``owner:orders``)."""


def _encode(owned: Owned) -> int:
    # The epoch grows along a stream, so the least of several targets' values (what
    # ``Worker.resume`` takes) belongs to the least position.
    return owned.epoch * 2 + (1 if owned.owner == "service" else 0)


def _decode(value: int) -> Owned:
    return Owned("service" if value % 2 else "legacy", value // 2)


class Directions:
    """Per context, who owns it; per (stream, context), the owner its changes are judged by."""

    def __init__(
        self,
        adapters: AdapterSet,
        contexts: Mapping[str, Sequence[str]],
        owners: OwnerReader | None = None,
    ) -> None:
        self.adapters = adapters
        self.owners = owners
        self.table_context = {t: name for name, tables in contexts.items() for t in tables}
        self.current: dict[str, Owned] = {}
        self.streams: dict[tuple[str, str], Owned] = {}
        self.loaded = owners is None
        """The store has answered at least once (``current`` is not a guess)."""
        self.initial: dict[str, Owned] = {}
        """The owners the store gave first: every stream starts from these, not from
        whatever the store says when the stream first meets a context's table."""

    def side(self, source: str) -> str:
        return "service" if source in self.adapters.reverse_sources else "legacy"

    async def refresh(self) -> None:
        """Read every context's ownership from the store (absent: legacy, epoch 0)."""
        if self.owners is None:
            return
        stored = await self.owners.ownerships()
        self.current = {
            name: Owned(o.owner, o.epoch, o.state == "steady") for name, o in stored.items()
        }
        if not self.loaded:
            self.initial = dict(self.current)
        self.loaded = True

    async def ready(self, stop: asyncio.Event) -> None:
        """Wait until the store has been read once: before that a stream has no owner
        to judge by. Raises SyncError if ``stop`` is set first (nothing was applied)."""
        delay = 0.2
        while not self.loaded:
            if stop.is_set():
                raise SyncError("stopped before the contexts' owners could be read")
            try:
                await self.refresh()
            except StranglerError as exc:
                log.warning("cannot read context ownership (changes wait for it): %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def stored(self, source: str) -> dict[str, int]:
        """The owner ``source``'s stream judges each context by, as offsets to commit
        with its position (every context, so a restart never falls back to the store)."""
        contexts = set(self.table_context.values())
        return {f"{OWNER_KEY}{c}": _encode(self._stream(source, c)) for c in sorted(contexts)}

    def restore(self, source: str, offsets: Mapping[str, int]) -> None:
        """Take ``source``'s stream owners from its committed offsets (a restart): the
        replay from there is judged by the owners the stream had at that position."""
        contexts = set(self.table_context.values())
        for key, value in offsets.items():
            context = key.removeprefix(OWNER_KEY)
            if key.startswith(OWNER_KEY) and context in contexts:
                self.streams[(source, context)] = _decode(value)

    def _stream(self, source: str, context: str) -> Owned:
        owned = self.streams.get((source, context))
        if owned is None:
            owned = self.streams[(source, context)] = self.initial.get(context, LEGACY)
        return owned

    def judge(self, source: str, table: str) -> str | None:
        """None if a change to ``table`` (its ``sync.tables[].source``) captured by
        ``source`` applies; else why not (a non-owner's write)."""
        context = self.table_context.get(table)
        side = self.side(source)
        owner = "legacy" if context is None else self._stream(source, context).owner
        if side == owner:
            return None
        where = f"context {context}" if context else "a table in no context"
        return f"{NON_OWNER}: {table} changed on the {side} side; {where} is owned by {owner}"

    async def pass_marker(self, mark: Watermark, stop: asyncio.Event) -> None:
        """Hold the stream at a drain's watermark until the cutover is over, then take
        the owner it left behind. A probe's mark (epoch < 0, the lag precondition)
        never holds: a cutover may have begun right after it."""
        if self.owners is None or mark.epoch < 0:
            return
        deadline = time.monotonic() + MARKER_WAIT
        while not stop.is_set():
            await self.refresh()
            owned = self.current.get(mark.context, LEGACY)
            if owned.steady or time.monotonic() > deadline:
                if not owned.steady:
                    log.warning(
                        "context %s: cutover still running after %ss", mark.context, MARKER_WAIT
                    )
                self.streams[(mark.source, mark.context)] = owned
                return
            await asyncio.sleep(0.02)
