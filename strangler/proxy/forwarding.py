"""Forwarding policy: one client request -> decision -> upstream(s) -> one answer.

``Forwarder.handle`` reads the route table once, asks ``decide()`` who answers,
and then either tunnels (``Upgrade``), runs the adapter path
(:mod:`strangler.proxy.adapting`), or streams the request to the chosen
upstream. Around each upstream try sit the resilience rules:

* the upstream's circuit breaker is asked first (open -> not tried);
* retries happen only on connect errors (or a pooled connection that turned
  out to be dead before answering), only for idempotent methods, and only when
  the whole body is in memory and at most ``limits.max_buffered_retry_body``;
* with ``decision.fallback`` (route ``fallback: true``, a safe method, ``to``
  chosen) a connect error, timeout, 5xx or open circuit on ``to`` is answered by
  legacy instead — never for POST, and never once bytes reached the client.

Every request ends in exactly one ``runtime.record(RequestRecord)`` and, when
sampled, one ``runtime.shadow.submit`` (or ``skipped``). Nothing here parses
HTTP or touches sockets directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from time import monotonic
from typing import TYPE_CHECKING, Any

from strangler.config import SAFE_METHODS, Config
from strangler.errors import CircuitOpen
from strangler.message import HttpResponse
from strangler.proxy.attempt import Attempt
from strangler.proxy.exchange import exchange, request_head
from strangler.proxy.fastpath import try_fast
from strangler.proxy.headers import (
    HeaderView,
    RawHeaders,
    strangler_tags,
)
from strangler.proxy.hold import held
from strangler.proxy.registry import Upstreams
from strangler.proxy.request import ClientGone, ProxyRequest
from strangler.proxy.responses import error_response
from strangler.proxy.shadowing import ShadowCopy, open_tap, submit
from strangler.routing.decision import Decision, decide
from strangler.routing.paths import BadPath
from strangler.runtime import RequestRecord, Runtime

if TYPE_CHECKING:
    from strangler.proxy.connection import ClientConnection

log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class Outcome:
    """What the client got: who answered, the status, and what went wrong on the way."""

    __slots__ = ("error", "fallback", "headers", "response", "status", "upstream")

    def __init__(
        self,
        upstream: str,
        status: int,
        error: str | None = None,
        fallback: bool = False,
        response: HttpResponse | None = None,
        headers: RawHeaders | None = None,
    ) -> None:
        self.upstream = upstream
        self.status = status
        self.error = error
        self.fallback = fallback
        self.headers = headers
        """The streamed answer's raw headers (for shadow)."""
        self.response = response
        """The answer as a value, when it was buffered (adapter path) — for shadow."""


class Forwarder:
    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.router = runtime.router
        self.loop = loop
        self.upstreams = Upstreams(loop)
        self._tags: dict[tuple[str, str], bytes] = {}

    def tags(self, route: str, upstream: str) -> bytes:
        key = (route, upstream)
        tags = self._tags.get(key)
        if tags is None:
            if len(self._tags) > 4096:
                self._tags.clear()
            tags = self._tags[key] = strangler_tags(route, upstream)
        return tags

    # ------------------------------------------------------------------ entry

    def start(self, client: ClientConnection, req: ProxyRequest) -> None:
        """Begin answering ``req``; the client is told with ``request_done()`` when over.

        The common request (complete body, no adapter, an idle pooled connection,
        circuit closed), mirrored or not, runs on callbacks only; anything else, and
        any failure of the fast path, continues in a task."""
        started = monotonic()
        decision = None
        if req.reject is None and req.upgrade is None:
            table = self.router.table
            try:
                decision = decide(table, req.method, req.path, HeaderView(req.headers), client.ip)
            except BadPath as exc:
                client.write(error_response(400, str(exc), close=client.must_close()))
                self._record(None, "-", 400, started, False)
                client.request_done()
                return
            route = decision.route
            if route is not None and route.context is not None and req.method not in SAFE_METHODS:
                # A context's write passes its gate (held while ownership moves).
                client.spawn(held(self, client, req, route.name, route.context, started))
                return
            tap = open_tap(self.runtime, decision, req)
            if try_fast(self, client, req, decision, table.config, started, tap):
                return
            client.spawn(self.handle(client, req, decision, started, tap))
            return
        client.spawn(self.handle(client, req, decision, started))

    async def handle(
        self,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision | None,
        started: float,
        tap: ShadowCopy | None = None,
    ) -> None:
        """Answer ``req`` in a task. ``tap`` is the shadow tap ``start`` took, if any.

        ``decision`` is None only for rejected and ``Upgrade`` requests, which are
        never mirrored, so ``start`` is the one place the shadow sink is asked."""
        table = self.router.table
        if req.reject is not None:
            status, message = req.reject
            client.write(error_response(status, message, close=True))
            self._record(None, "-", status, started, False)
            return
        if decision is None:
            try:
                decision = decide(table, req.method, req.path, HeaderView(req.headers), client.ip)
            except BadPath as exc:
                client.write(error_response(400, str(exc), close=client.must_close()))
                self._record(None, "-", 400, started, False)
                return
        config = table.config
        route = decision.route
        work: Coroutine[Any, Any, Outcome]
        if req.upgrade is not None:
            from strangler.proxy.tunnel import tunnel

            work = tunnel(self, client, req, decision, config)
        elif decision.to_new and route is not None and route.adapter is not None:
            from strangler.proxy.adapting import adapted

            work = adapted(self, client, req, decision, config, route.adapter, tap)
        else:
            work = self.plain(client, req, decision, config, tap)
        await self.answer(client, req, decision, started, tap, work)

    async def answer(
        self,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision,
        started: float,
        tap: ShadowCopy | None,
        work: Coroutine[Any, Any, Outcome],
    ) -> None:
        """Run ``work`` (what answers the client), then mirror and record what it got:
        a client that went away is a 499, whichever step it left in."""
        outcome: Outcome | None = None
        try:
            outcome = await work
            if tap is not None:
                self.mirror(decision, req, tap, outcome, started)
        except ClientGone:
            outcome = Outcome(decision.upstream, 499)
            client.abort()
        except asyncio.CancelledError:
            outcome = Outcome(decision.upstream, 499)
            raise
        finally:
            if outcome is not None:
                self.record(decision, outcome, started)

    async def recover(
        self,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision,
        config: Config,
        started: float,
        first: Attempt,
        stale: bool,
        inline: bytes,
        tap: ShadowCopy | None = None,
    ) -> None:
        """The fast path's attempt failed before answering: retry / fall back / fail here."""
        work = self._recovered(client, req, decision, config, first, stale, inline, tap)
        await self.answer(client, req, decision, started, tap, work)

    async def _recovered(
        self,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision,
        config: Config,
        first: Attempt,
        stale: bool,
        inline: bytes,
        tap: ShadowCopy | None,
    ) -> Outcome:
        replayable = len(inline) <= config.limits.max_buffered_retry_body
        hold = decision.fallback and replayable
        result, attempt = first.result, first
        pool = self.upstreams.pool(config, decision.upstream)
        if stale and replayable and req.method in IDEMPOTENT:
            # A pooled connection the upstream had closed: not a failure, try afresh.
            result, attempt = await self.attempt(
                client, req, decision, config, decision.upstream, inline, hold, True, tap
            )
        elif result in ("connect", "timeout", "status"):
            pool.circuit.failure()
        return await self.conclude(
            client, req, decision, config, tap, inline, hold, replayable, result, attempt
        )

    def mirror(
        self,
        decision: Decision,
        req: ProxyRequest,
        tap: ShadowCopy,
        outcome: Outcome,
        started: float,
    ) -> None:
        """The client has its answer: hand the shadow copy over (never raises)."""
        submit(
            self.runtime,
            decision,
            req,
            tap,
            outcome.status,
            outcome.headers,
            outcome.response,
            outcome.error,
            monotonic() - started,
        )

    def record(self, decision: Decision, outcome: Outcome, started: float) -> None:
        self._record(
            decision.route.name if decision.route is not None else None,
            outcome.upstream,
            outcome.status,
            started,
            decision.to_new,
            outcome.error,
            outcome.fallback,
        )

    def _record(
        self,
        route: str | None,
        upstream: str,
        status: int,
        started: float,
        to_new: bool,
        error: str | None = None,
        fallback: bool = False,
    ) -> None:
        record = RequestRecord(
            route, upstream, status, monotonic() - started, to_new, error, fallback
        )
        try:
            self.runtime.record(record)
        except Exception:  # a broken listener must never break the client's answer
            log.exception("request listener failed")

    # ------------------------------------------------------------- streaming

    async def plain(
        self,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision,
        config: Config,
        tap: ShadowCopy | None,
        inline: bytes | None = None,
    ) -> Outcome:
        """Stream ``req`` to ``decision.upstream``; legacy answers if that fails and may."""
        if inline is None:
            inline = req.body.buffered
        replayable = inline is not None and len(inline) <= config.limits.max_buffered_retry_body
        upstream = decision.upstream
        hold = decision.fallback and replayable
        result, attempt = await self.attempt(
            client, req, decision, config, upstream, inline, hold, replayable, tap
        )
        return await self.conclude(
            client, req, decision, config, tap, inline, hold, replayable, result, attempt
        )

    async def conclude(
        self,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision,
        config: Config,
        tap: ShadowCopy | None,
        inline: bytes | None,
        hold: bool,
        replayable: bool,
        result: str | None,
        attempt: Attempt,
    ) -> Outcome:
        """After the chosen upstream's try: the answer, or legacy's (fallback), or an error."""
        upstream = decision.upstream
        new_error = None
        if decision.to_new and result not in ("body_too_large", "bad_request"):
            new_error = result or ("status" if attempt.status >= 500 else None)
        if result is None:
            return Outcome(upstream, attempt.status, new_error, headers=attempt.headers)
        if attempt.committed:
            client.abort()  # the head is out; a cut connection is the only honest signal left
            return Outcome(upstream, attempt.status, new_error)
        if hold and upstream != decision.legacy:
            legacy = decision.legacy
            result2, attempt2 = await self.attempt(
                client, req, decision, config, legacy, inline, False, replayable, tap
            )
            if result2 is None:
                return Outcome(
                    legacy, attempt2.status, new_error, fallback=True, headers=attempt2.headers
                )
            if attempt2.committed:
                client.abort()
                return Outcome(legacy, attempt2.status, new_error, fallback=True)
            return self.fail(client, decision, legacy, result2, attempt2, new_error)
        return self.fail(client, decision, upstream, result, attempt, new_error)

    def fail(
        self,
        client: ClientConnection,
        decision: Decision,
        upstream: str,
        kind: str,
        attempt: Attempt,
        new_error: str | None,
    ) -> Outcome:
        """Answer a failed, uncommitted attempt with a JSON 502/504 naming route and upstream."""
        status = 504 if kind == "timeout" else 502
        if kind == "body_too_large":
            status = 413
            message = "request body is larger than limits.max_body"
        elif kind == "bad_request":
            status = 400
            message = "malformed request body (bad chunk framing)"
        elif kind == "too_large":
            message = f"upstream {upstream!r}: response larger than limits.max_body"
        elif kind == "status":
            message = f"upstream {upstream!r} answered {attempt.status}"
        elif attempt.error is not None:
            message = str(attempt.error)
        else:
            message = f"upstream {upstream!r}: {kind}"
        client.write(
            error_response(
                status,
                message,
                decision.route_name,
                upstream,
                close=client.must_close(),
                head_only=client.head_only,
            )
        )
        return Outcome(upstream, status, new_error)

    async def attempt(
        self,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision,
        config: Config,
        upstream: str,
        inline: bytes | None,
        hold_5xx: bool,
        replayable: bool,
        tap: ShadowCopy | None,
        head: bytes | None = None,
        buffer: bool = False,
    ) -> tuple[str | None, Attempt]:
        """Try one upstream (with the allowed retries); the circuit breaker sees the result."""
        pool = self.upstreams.pool(config, upstream)
        tags = self.tags(decision.route_name, upstream)
        head_request = req.method == "HEAD"
        circuit = pool.circuit
        if not circuit.allow():
            attempt = Attempt(client, upstream, tags, head_request)
            return attempt.fail(
                "circuit", CircuitOpen(upstream, "circuit open after failures")
            ), attempt
        if head is None:
            head = request_head(client.ip_bytes, req, decision, pool, inline)
        tries = 1 + pool.config.retries if replayable and req.method in IDEMPOTENT else 1
        max_body = config.limits.max_body
        try:
            for i in range(tries):
                attempt = Attempt(
                    client,
                    upstream,
                    tags,
                    head_request,
                    hold_5xx=hold_5xx,
                    buffer=buffer,
                    max_body=max_body,
                    tap=tap,
                )
                if tap is not None:
                    tap.restart_response()  # a retry or fallback answers afresh
                result = await exchange(client, req, pool, attempt, head, inline, max_body)
                if result != "connect" or attempt.committed or i + 1 == tries:
                    # Never again once the head is out: the client has part of an answer.
                    break
        except BaseException:
            circuit.release_probe()
            raise
        if result is None and attempt.status < 500:
            circuit.success()
        elif result in ("connect", "timeout", "status") or attempt.status >= 500:
            circuit.failure()
        else:
            circuit.release_probe()
        return result, attempt
