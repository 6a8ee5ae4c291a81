"""Forwarding policy: the task path from an exchange to one upstream answer.

Around each upstream try (:meth:`Forwarder.attempt`) sit the resilience rules:

* the upstream's circuit breaker is asked first (open -> not tried);
* retries happen only on connect errors (or a pooled connection that turned
  out to be dead before answering), only for idempotent methods, and only when
  the whole body is in memory and at most ``limits.max_buffered_retry_body``;
* with ``decision.fallback`` (route ``fallback: true``, a safe method, ``to``
  chosen) a connect error, timeout, 5xx or open circuit on ``to`` is answered by
  legacy instead — never for POST, and never once bytes reached the client.

:meth:`Forwarder.plain` streams a request this way; :meth:`Forwarder.recover`
picks up where the fast path's try failed; the adapter path and the tunnel use
:meth:`Forwarder.attempt` and :meth:`Forwarder.fail`. :meth:`Forwarder.run`
awaits a strategy and finishes its exchange (a client that left is a 499).
Nothing here parses HTTP or touches sockets directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from strangler.errors import CircuitOpen, ClientGone
from strangler.proxy.attempt import Attempt
from strangler.proxy.exchange import Exchange
from strangler.proxy.headers import strangler_tags
from strangler.proxy.outcome import BREAKER_FAILURES, Answer, Failure
from strangler.proxy.registry import Upstreams
from strangler.proxy.responses import error_response
from strangler.proxy.roundtrip import request_head, round_trip

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True, slots=True)
class Try:
    """How to try one upstream for an exchange."""

    upstream: str
    inline: bytes | None
    """The body when it is whole in memory (else it streams from the client)."""
    hold_5xx: bool = False
    """Keep a 5xx from the client (legacy may answer instead)."""
    replayable: bool = False
    """The body can be sent again (a retry, a fallback)."""
    head: bytes | None = None
    """A head built already (an adapter's rewritten request)."""
    buffer: bool = False
    """Collect the answer instead of streaming it (an adapter reshapes it)."""


class Forwarder:
    """The upstream pools and the retry / fallback / breaker rules around them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.upstreams = Upstreams(loop)
        self._tags: dict[tuple[str, str], bytes] = {}

    def tags(self, route: str, upstream: str) -> bytes:
        """The ``X-Strangler-*`` response headers for (route, upstream), cached."""
        key = (route, upstream)
        tags = self._tags.get(key)
        if tags is None:
            if len(self._tags) > 4096:
                self._tags.clear()
            tags = self._tags[key] = strangler_tags(route, upstream)
        return tags

    async def run(self, ex: Exchange, work: Coroutine[Any, Any, Answer]) -> None:
        """Run a strategy, then finish the exchange with its answer: a client that went
        away is a 499, whichever step it left in."""
        try:
            answer = await work
        except ClientGone:
            ex.client.abort()
            ex.gone()
            return
        except asyncio.CancelledError:
            ex.gone()
            raise
        ex.finish(answer)

    # ------------------------------------------------------------- the task path

    async def plain(self, ex: Exchange) -> Answer:
        """Stream the request to ``decision.upstream``; legacy answers if that fails and may."""
        if ex.inline is None:
            ex.inline = ex.request.body.buffered
        first = self.first_try(ex)
        return await self.conclude(ex, first, await self.attempt(ex, first))

    async def recover(self, ex: Exchange, failed: Attempt, stale: bool) -> Answer:
        """The fast path's try failed before answering: retry / fall back / fail here.
        ``stale``: it failed only because the pooled connection had been closed."""
        first = self.first_try(ex)
        attempt = failed
        if stale and first.replayable and ex.request.method in IDEMPOTENT:
            # A pooled connection the upstream had closed: not a failure, try afresh.
            attempt = await self.attempt(ex, first)
        elif failed.failure in BREAKER_FAILURES:
            self.upstreams.pool(ex.config, failed.upstream).circuit.failure()
        return await self.conclude(ex, first, attempt)

    def first_try(self, ex: Exchange) -> Try:
        inline = ex.inline
        replayable = inline is not None and len(inline) <= ex.config.limits.max_buffered_retry_body
        decision = ex.decision
        return Try(decision.upstream, inline, decision.fallback and replayable, replayable)

    async def conclude(self, ex: Exchange, first: Try, attempt: Attempt) -> Answer:
        """After the chosen upstream's try: the answer, or legacy's (fallback), or an error."""
        decision = ex.decision
        failure = attempt.failure
        if failure is None and attempt.status >= 500:
            blamed = ex.blame(Failure.STATUS)
        else:
            blamed = ex.blame(failure)
        if failure is None:
            return Answer(attempt.upstream, attempt.status, blamed, headers=attempt.headers)
        if attempt.committed:
            ex.client.abort()  # the head is out; a cut connection is the only honest signal left
            return Answer(attempt.upstream, attempt.status, blamed)
        if first.hold_5xx and attempt.upstream != decision.legacy:
            return await self.fall_back(ex, first.inline, blamed)
        return self.fail(ex, attempt, blamed)

    async def fall_back(self, ex: Exchange, inline: bytes | None, blamed: Failure | None) -> Answer:
        """Legacy answers, with the original request, after the new upstream failed."""
        attempt = await self.attempt(ex, Try(ex.decision.legacy, inline, replayable=True))
        if attempt.failure is None:
            return Answer(
                attempt.upstream, attempt.status, blamed, fallback=True, headers=attempt.headers
            )
        if attempt.committed:
            ex.client.abort()
            return Answer(attempt.upstream, attempt.status, blamed, fallback=True)
        return self.fail(ex, attempt, blamed)

    def fail(self, ex: Exchange, attempt: Attempt, blamed: Failure | None) -> Answer:
        """Answer a failed, uncommitted attempt with a JSON error naming route and upstream."""
        failure = attempt.failure
        assert failure is not None
        upstream = attempt.upstream
        if failure is Failure.BODY_TOO_LARGE:
            message = "request body is larger than limits.max_body"
        elif failure is Failure.BAD_REQUEST:
            message = "malformed request body (bad chunk framing)"
        elif failure is Failure.TOO_LARGE:
            message = f"upstream {upstream!r}: response larger than limits.max_body"
        elif failure is Failure.STATUS:
            message = f"upstream {upstream!r} answered {attempt.status}"
        elif attempt.error is not None:
            message = str(attempt.error)
        else:
            message = f"upstream {upstream!r}: {failure}"
        client = ex.client
        client.write(
            error_response(
                failure.status,
                message,
                ex.decision.route_name,
                upstream,
                close=client.must_close(),
                head_only=client.head_only,
                request_id=ex.request.request_id,
            )
        )
        return Answer(upstream, failure.status, blamed)

    async def attempt(self, ex: Exchange, how: Try) -> Attempt:
        """Try one upstream (with the allowed retries); the circuit breaker sees the result."""
        upstream = how.upstream
        pool = self.upstreams.pool(ex.config, upstream)
        tags = self.tags(ex.decision.route_name, upstream)
        circuit = pool.circuit
        if not circuit.allow():
            attempt = Attempt(ex, upstream, tags)
            attempt.fail(Failure.CIRCUIT, CircuitOpen(upstream, "circuit open after failures"))
            return attempt
        head = how.head if how.head is not None else request_head(ex, pool, how.inline)
        replay = how.replayable and ex.request.method in IDEMPOTENT
        tries = 1 + pool.config.retries if replay else 1
        try:
            for i in range(tries):
                attempt = Attempt(ex, upstream, tags, how.hold_5xx, how.buffer)
                if ex.tap is not None:
                    ex.tap.restart_response()  # a retry or fallback answers afresh
                failure = await round_trip(attempt, pool, head, how.inline)
                if failure is not Failure.CONNECT or attempt.committed or i + 1 == tries:
                    # Never again once the head is out: the client has part of an answer.
                    break
        except BaseException:
            circuit.release_probe()
            raise
        if failure is None and attempt.status < 500:
            circuit.success()
        elif failure in BREAKER_FAILURES or attempt.status >= 500:
            circuit.failure()
        else:
            circuit.release_probe()
        return attempt
