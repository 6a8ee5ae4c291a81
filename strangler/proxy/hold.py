"""The write hold: a bounded context's writes wait here while its ownership moves.

Every write (not GET/HEAD/OPTIONS) on a route of a context passes through the
context's :class:`Gate` in this process. While the gate is open a write only
bumps the in-flight count; while it is closed (a cutover is holding the
context, on every replica) a write waits — up to ``max_held`` of them, beyond
that it gets 503 — and continues when the gate opens, deciding its upstream
then, from the route table of that moment: the new owner after a completed
cutover, the old one after an abort. The control plane closes and opens the
gates (:mod:`strangler.control.plane`) and waits for :meth:`Gate.quiet` (no
write in flight) before it acknowledges the hold.

The dispatcher (:mod:`strangler.proxy.dispatch`) passes writes through the gates.
Requests of routes outside a context never come here, and reads never do: a
held write costs nobody else anything.
"""

from __future__ import annotations

import asyncio


class Gate:
    """One context's writes in this process: in flight, held, and whether to hold."""

    def __init__(self, max_held: int = 1000) -> None:
        self.max_held = max_held
        self.in_flight = 0
        self.held = 0
        self.cutover = ""
        """The cutover holding this gate ('' when open)."""
        self._opened = asyncio.Event()
        self._opened.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def closed(self) -> bool:
        return not self._opened.is_set()

    def close(self, cutover: str) -> None:
        if not self.closed:
            self._opened = asyncio.Event()
        self.cutover = cutover

    def open(self) -> None:
        """Let the held writes go (the caller swapped the route table first)."""
        self.cutover = ""
        self._opened.set()

    async def enter(self) -> bool:
        """Wait while the gate is closed; False if the hold queue is full (answer 503)."""
        while not self._opened.is_set():
            if self.held >= self.max_held:
                return False
            self.held += 1
            try:
                await self._opened.wait()
            finally:
                self.held -= 1
        self.in_flight += 1
        self._idle.clear()
        return True

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def quiet(self) -> None:
        """Return once no write that passed the gate is still in flight."""
        await self._idle.wait()


class WriteHold:
    """The gates of every context in this process (created on first use)."""

    def __init__(self) -> None:
        self.gates: dict[str, Gate] = {}

    def gate(self, context: str, max_held: int | None = None) -> Gate:
        gate = self.gates.get(context)
        if gate is None:
            gate = self.gates[context] = Gate()
        if max_held is not None:
            gate.max_held = max_held
        return gate
