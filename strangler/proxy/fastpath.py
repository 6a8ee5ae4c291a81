"""The callback-only path for the common request: no task, no future, no await.

Most proxied requests have a complete (usually empty) body, no adapter, and
find an idle keep-alive connection to a healthy upstream. For
those, :func:`try_fast` writes the request upstream straight from the client's
parser callback, and :class:`FastAttempt` — an :class:`Attempt` that finishes
by itself — releases the connection, updates the circuit breaker, records the
request and tells the client connection, all from the upstream's parser
callbacks. This saves the task, future and event-loop round trips that
dominate a Python proxy's per-request cost. A request being mirrored takes
this path too: its :class:`ShadowCopy` tees the response body, and the copy
goes to the shadow sink once the client has its answer.

Anything else, and any failure before the response was committed, is handed
to the coroutine path (``Forwarder.handle`` / ``Forwarder.recover``), which
holds all the retry and fallback rules; this module adds no policy of its own.
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

from strangler.config import Config
from strangler.proxy.attempt import Attempt
from strangler.proxy.circuit import CLOSED
from strangler.proxy.exchange import request_head
from strangler.proxy.request import ProxyRequest
from strangler.proxy.shadowing import ShadowCopy, submit
from strangler.proxy.upstream import UpstreamConnection, UpstreamPool
from strangler.routing.decision import Decision

if TYPE_CHECKING:
    from strangler.proxy.connection import ClientConnection
    from strangler.proxy.forwarding import Forwarder


class FastAttempt(Attempt):
    def __init__(
        self,
        fw: Forwarder,
        client: ClientConnection,
        req: ProxyRequest,
        decision: Decision,
        config: Config,
        started: float,
        pool: UpstreamPool,
        conn: UpstreamConnection,
        inline: bytes,
        hold_5xx: bool,
        tap: ShadowCopy | None,
    ) -> None:
        super().__init__(
            client,
            decision.upstream,
            fw.tags(decision.route_name, decision.upstream),
            req.method == "HEAD",
            hold_5xx=hold_5xx,
            tap=tap,
        )
        self.fw = fw
        self.req = req
        self.decision = decision
        self.config = config
        self.started = started
        self.pool = pool
        self.conn = conn
        self.inline = inline

    def _end(self, result: str | None) -> None:
        if self.finished:
            self.dead = True
            return
        super()._end(result)
        client = self.client
        client.attach(None)
        client.fast = None
        conn = self.conn
        decision = self.decision
        if result is None:
            self.pool.release(conn)
            status = self.status
            failed = status >= 500
            if failed:
                self.pool.circuit.failure()
            else:
                self.pool.circuit.success()
            self.fw._record(
                decision.route.name if decision.route is not None else None,
                decision.upstream,
                status,
                self.started,
                decision.to_new,
                "status" if failed and decision.to_new else None,
            )
            client.request_done()
            tap = self.tap
            if tap is not None:
                submit(
                    self.fw.runtime,
                    decision,
                    self.req,
                    tap,
                    status,
                    self.headers,
                    None,
                    None,
                    monotonic() - self.started,
                )
            return
        stale = result == "connect" and conn.uses > 1 and not conn.got_bytes
        self.pool.discard(conn)
        if self.committed:
            client.abort()
            self.pool.circuit.failure()
            self.fw._record(
                decision.route.name if decision.route is not None else None,
                decision.upstream,
                self.status,
                self.started,
                decision.to_new,
                result if decision.to_new else None,
            )
            client.request_done()
            return
        client.spawn(
            self.fw.recover(
                client,
                self.req,
                decision,
                self.config,
                self.started,
                self,
                stale,
                self.inline,
                self.tap,
            )
        )

    def client_gone(self) -> None:
        """The client disconnected mid-exchange: drop the upstream connection, count 499."""
        if self.finished:
            return
        self.finished = self.dead = True
        self.pool.discard(self.conn)
        decision = self.decision
        self.fw._record(
            decision.route.name if decision.route is not None else None,
            decision.upstream,
            499,
            self.started,
            decision.to_new,
        )


def try_fast(
    fw: Forwarder,
    client: ClientConnection,
    req: ProxyRequest,
    decision: Decision,
    config: Config,
    started: float,
    tap: ShadowCopy | None,
) -> bool:
    """Start ``req`` on the fast path if it qualifies; False leaves it to the task path."""
    route = decision.route
    if decision.to_new and route is not None and route.adapter is not None:
        return False
    body = req.body
    inline: bytes | None
    if body.complete and not body.received:
        inline = b""  # the common case: no body at all
    else:
        inline = body.buffered
        if inline is None:
            return False
    pool = fw.upstreams.pool(config, decision.upstream)
    if pool.circuit.state is not CLOSED:
        return False
    conn = pool.take_idle()
    if conn is None:
        return False
    hold = decision.fallback and len(inline) <= config.limits.max_buffered_retry_body
    attempt = FastAttempt(fw, client, req, decision, config, started, pool, conn, inline, hold, tap)
    conn.start(attempt, attempt.head_request)
    client.attach(conn)
    client.fast = attempt
    head = request_head(client.ip_bytes, req, decision, pool, inline)
    conn.write(head + inline if inline else head)
    return True
