"""A replica's side of a cutover: close the context's write gate, acknowledge, watch.

When the state store says a cutover holds a context, :meth:`ReplicaHolds.follow`
(called by the control plane after each table swap) closes that context's gate
in this process (:mod:`strangler.proxy.hold`); once no write that passed it is
still in flight, the replica acknowledges under ``hold:<context>:<cutover>`` —
the cutover waits for every live replica (each beats into the store every
second). When the stored value is steady again, the gate opens: the table was
swapped first, so the held writes go to whoever owns the context now.

If the process running the cutover dies, nobody would ever end the hold: a
replica still held ``hold_timeout`` + :data:`WATCHDOG_GRACE` after its
acknowledgement aborts the cutover itself, with the same compare-and-set as the
runner's flip or abort, so exactly one of them wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from typing import Protocol

from strangler.control.audit import AuditEntry, AuditLog
from strangler.control.ownership import Ownership
from strangler.control.state import StateStore
from strangler.errors import StateStoreError
from strangler.proxy.hold import WriteHold
from strangler.routing.router import Router

log = logging.getLogger(__name__)

BEAT_EVERY = 1.0
"""Seconds between a replica's "I am alive" beats; a cutover waits for live replicas."""
BEAT_TTL = 3.0
WATCHDOG_GRACE = 5.0
"""A replica releases a hold whose cutover is this long past its hold_timeout (the process
running it died): the same compare-and-set as an abort, so it cannot race a flip."""


def hold_key(context: str, cutover: str) -> str:
    """Where replicas acknowledge that they hold a context's writes with none in flight."""
    return f"hold:{context}:{cutover}"


class HoldingPlane(Protocol):
    """What a replica's holds need from the control plane (``ControlPlane`` is one)."""

    router: Router
    hold: WriteHold
    store: StateStore
    audit: AuditLog

    async def refresh(self) -> None: ...


class ReplicaHolds:
    def __init__(self, plane: HoldingPlane) -> None:
        self.plane = plane
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        """This process's name among the replicas that acknowledge a hold."""
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {}

    def follow(self, ownerships: Mapping[str, Ownership]) -> None:
        """Close the gate of every context a cutover holds; open the others."""
        plane = self.plane
        for context, config in plane.router.config.contexts.items():
            gate = plane.hold.gate(context, config.max_held)
            owned = ownerships.get(context)
            if owned is not None and not owned.steady and owned.cutover:
                if gate.cutover != owned.cutover:
                    gate.close(owned.cutover)
                    self._start(owned, config.hold_timeout)
            elif gate.closed:
                gate.open()
                task = self._tasks.pop(context, None)
                if task is not None:
                    task.cancel()

    def _start(self, owned: Ownership, hold_timeout: float) -> None:
        previous = self._tasks.pop(owned.context, None)
        if previous is not None:
            previous.cancel()
        self._tasks[owned.context] = asyncio.create_task(
            self._hold(owned, hold_timeout), name=f"strangler-hold-{owned.context}"
        )

    async def _hold(self, owned: Ownership, hold_timeout: float) -> None:
        """Acknowledge the hold once no write is in flight here; then watch for a cutover
        whose runner died (release it as an abort after hold_timeout + grace)."""
        store = self.plane.store
        gate = self.plane.hold.gate(owned.context)
        await gate.quiet()
        key = hold_key(owned.context, owned.cutover)
        for _ in range(20):
            try:
                await store.add(key, {self.replica: 1}, 60.0)
                break
            except StateStoreError as exc:
                log.warning("cannot acknowledge the hold of %r: %s", owned.context, exc)
                await asyncio.sleep(0.1)
        await asyncio.sleep(hold_timeout + WATCHDOG_GRACE)
        while gate.cutover == owned.cutover:
            try:
                await self._release_abandoned(owned)
                await self.plane.refresh()
            except StateStoreError as exc:
                log.warning("hold of %r: %s; writes stay held until it answers", owned.context, exc)
            await asyncio.sleep(1.0)

    async def _release_abandoned(self, owned: Ownership) -> None:
        """Abort the cutover ``owned`` if it still holds the context (compare and set)."""
        store = self.plane.store
        current = (await store.snapshot()).ownerships.get(owned.context)
        if current is None or current.cutover != owned.cutover:
            return
        kept = current.kept("watchdog")
        if not await store.set_ownership(kept, expect=current):
            return  # the cutover (or another replica) got there first
        log.warning(
            "cutover %s of %r never finished; writes released to %s",
            owned.cutover,
            owned.context,
            current.owner,
        )
        await self.plane.audit.record(
            AuditEntry(
                "cutover.aborted",
                owned.context,
                "watchdog",
                current.audited(),
                kept.audited(),
                "the process running the cutover stopped answering",
            )
        )

    async def beat(self) -> None:
        """Say "alive" into the store every second, for as long as the process runs."""
        while True:
            with contextlib.suppress(StateStoreError):
                await self.plane.store.beat(self.replica, BEAT_TTL)
            await asyncio.sleep(BEAT_EVERY)
