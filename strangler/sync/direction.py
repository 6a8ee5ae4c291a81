"""Which way data flows: each change is judged by its context's owner when it was written.

The worker runs both directions at once. A source capturing the monolith carries
changes made on the ``legacy`` side; a source named as some table's
``reverse.source`` carries changes made on the ``service`` side. A change applies
when its side owns the table's context (``contexts:`` in routes.yaml; a table in no
context is owned by ``legacy``). A change from the other side was *written by the
non-owner*: it is dead-lettered with that reason, counted, and never applied.

"Owner when it was written", not "owner when the worker reads it": every captured
stream keeps the owner it judges by, and changes it only at a drain's watermark
(``watermark.py``), once the cutover that wrote it has finished or aborted. The
drain writes its watermark into both databases before the flip, so everything
before it on a stream was written under the old owner and everything after it under
that cutover's outcome. The watermark names its cutover and the stored ownership
keeps the latest cutovers' outcomes (``Ownership.history``), so a stream that
reaches an aborted cutover's watermark after a later cutover flipped keeps the owner
(the abort's outcome), and takes the flip only at the later cutover's own watermark.
That is the only place a stream changes owner: a
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
stream has passed it (see ``Worker._process``). The stream's latest flips are stored
with it too (``flip:CONTEXT:COMMIT:SEQ`` = the owner before the watermark at that
position): a source that resumes from its own, older offsets (the ``debezium`` kind
commits them just after the target's) replays events from before a watermark the
stream has passed, and each is judged by the owner in force at its position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from strangler.errors import StranglerError, SyncError
from strangler.sync.adapters import AdapterSet
from strangler.sync.ledger import NON_OWNER
from strangler.sync.model import Position
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

    @property
    def history(self) -> Sequence[tuple[str, str, int]]: ...


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
FLIP_KEY = "flip:"
"""Offsets key prefix of a stream's flip (``flip:orders:COMMIT:SEQ`` = owner before)."""
FLIPS_KEPT = 4
"""Flips per stream and context stored with every commit (a replay from a source's
own offsets reaches back at most a few batches)."""


@dataclass(frozen=True)
class Context:
    """A context as the store gave it last."""

    owned: Owned
    outcomes: Mapping[str, Owned]
    """The latest finished cutovers' outcomes by id."""


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
        self.contexts: dict[str, Context] = {}
        self.streams: dict[tuple[str, str], Owned] = {}
        self.flips: dict[tuple[str, str], list[tuple[Position, Owned]]] = {}
        """Per stream and context, where it changed owner and the owner before (sorted)."""
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
        self.contexts = {
            name: Context(
                self.current[name],
                {c: Owned(owner, epoch) for c, owner, epoch in o.history},
            )
            for name, o in stored.items()
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
        out = {f"{OWNER_KEY}{c}": _encode(self._stream(source, c)) for c in sorted(contexts)}
        for context in sorted(contexts):
            for at, before in self.flips.get((source, context), [])[-FLIPS_KEPT:]:
                out[f"{FLIP_KEY}{context}:{at.commit}:{at.seq}"] = _encode(before)
        return out

    def restore(self, source: str, offsets: Mapping[str, int]) -> None:
        """Take ``source``'s stream owners from its committed offsets (a restart): the
        replay from there is judged by the owners the stream had at that position."""
        contexts = set(self.table_context.values())
        flips: dict[str, list[tuple[Position, Owned]]] = {}
        for key, value in offsets.items():
            context = key.removeprefix(OWNER_KEY)
            if key.startswith(OWNER_KEY) and context in contexts:
                self.streams[(source, context)] = _decode(value)
            elif key.startswith(FLIP_KEY):
                context, _, at = key.removeprefix(FLIP_KEY).rpartition(":")
                context, _, commit = context.rpartition(":")
                if context in contexts and commit.isdigit() and at.isdigit():
                    flip = (Position(int(commit), int(at)), _decode(value))
                    flips.setdefault(context, []).append(flip)
        for context, found in flips.items():
            self.flips[(source, context)] = sorted(found)[-FLIPS_KEPT:]

    def _stream(self, source: str, context: str) -> Owned:
        owned = self.streams.get((source, context))
        if owned is None:
            owned = self.streams[(source, context)] = self.initial.get(context, LEGACY)
        return owned

    def _at(self, source: str, context: str, position: Position | None) -> Owned:
        """The owner ``source``'s stream judges ``context`` by at ``position``: before a
        flip it has passed (a replay), the owner it had there."""
        flips = self.flips.get((source, context))
        if flips and position is not None and position.commit > 0 and position < flips[-1][0]:
            return flips[bisect_right([at for at, _ in flips], position)][1]
        return self._stream(source, context)

    def fixed(self, source: str, table: str) -> bool:
        """Whether ``judge`` says the same of every change to ``table`` in ``source``'s
        stream now, whatever its position (no owner flip to judge a replay by)."""
        context = self.table_context.get(table)
        return context is None or not self.flips.get((source, context))

    def judge(self, source: str, table: str, position: Position | None = None) -> str | None:
        """None if a change to ``table`` (its ``sync.tables[].source``) captured by
        ``source`` at ``position`` applies; else why not (a non-owner's write). A
        snapshot's rows (commit 0) are judged by the stream's owner now."""
        context = self.table_context.get(table)
        side = self.side(source)
        owner = "legacy" if context is None else self._at(source, context, position).owner
        if side == owner:
            return None
        where = f"context {context}" if context else "a table in no context"
        return f"{NON_OWNER}: {table} changed on the {side} side; {where} is owned by {owner}"

    async def pass_marker(self, mark: Watermark, stop: asyncio.Event) -> None:
        """Hold the stream at a drain's watermark until its cutover is over, then take
        the owner that cutover left behind. A probe's mark (epoch < 0, the lag
        precondition) never holds: a cutover may have begun right after it."""
        if self.owners is None or mark.epoch < 0 or self._replayed(mark):
            return
        deadline = time.monotonic() + MARKER_WAIT
        while not stop.is_set():
            await self.refresh()
            owned = self._outcome(mark)
            if owned is None and time.monotonic() > deadline:
                log.warning(
                    "context %s: cutover still running after %ss", mark.context, MARKER_WAIT
                )
                owned = self.current.get(mark.context, LEGACY)
            if owned is not None:
                self._pass(mark, owned)
                return
            await asyncio.sleep(0.02)

    def _outcome(self, mark: Watermark) -> Owned | None:
        """The owner after the cutover that wrote ``mark``; None while it runs. A mark
        whose cutover the store no longer lists (or that names none) takes the stored
        owner once no cutover runs."""
        context = self.contexts.get(mark.context)
        if context is None:
            return self.current.get(mark.context, LEGACY)
        outcome = context.outcomes.get(mark.cutover) if mark.cutover else None
        if outcome is not None:
            return outcome
        return context.owned if context.owned.steady else None

    def _replayed(self, mark: Watermark) -> bool:
        """The stream passed ``mark`` before (a replay): its flips judge the replay."""
        flips = self.flips.get((mark.source, mark.context))
        return flips is not None and bool(flips) and mark.at is not None and mark.at <= flips[-1][0]

    def _pass(self, mark: Watermark, owned: Owned) -> None:
        key = (mark.source, mark.context)
        flips = self.flips.setdefault(key, [])
        before = self._stream(mark.source, mark.context)
        if mark.at is not None and mark.at.commit > 0 and before.owner != owned.owner:
            flips.append((mark.at, before))
            del flips[:-FLIPS_KEPT]
        self.streams[key] = owned
