"""The callback-only path for the common request: no task, no future, no await.

Most proxied requests have a complete (usually empty) body, no adapter, and
find an idle keep-alive connection to a healthy upstream. For those,
:func:`try_fast` writes the request upstream straight from the client's parser
callback, and :class:`FastAttempt` — an :class:`Attempt` that finishes by
itself — releases the connection, updates the circuit breaker and finishes the
exchange, all from the upstream's parser callbacks. This saves the task, future
and event-loop round trips that dominate a Python proxy's per-request cost. A
mirrored request takes this path too: its shadow tap tees the response body.

Anything else, and any failure before the response was committed, is handed
to the task path (:meth:`Forwarder.recover`), which holds all the retry and
fallback rules; this module adds no policy of its own.
"""

from __future__ import annotations

from strangler.proxy.attempt import Attempt
from strangler.proxy.circuit import CLOSED
from strangler.proxy.exchange import Exchange
from strangler.proxy.forwarding import Forwarder
from strangler.proxy.outcome import Answer, Failure
from strangler.proxy.roundtrip import request_head, stale
from strangler.proxy.upstream import UpstreamConnection, UpstreamPool


class FastAttempt(Attempt):
    """The try of the fast path: ends the exchange itself, or hands it to a task."""

    def __init__(
        self, ex: Exchange, fw: Forwarder, pool: UpstreamPool, conn: UpstreamConnection
    ) -> None:
        decision = ex.decision
        inline = ex.inline
        hold = (
            decision.fallback
            and inline is not None
            and len(inline) <= ex.config.limits.max_buffered_retry_body
        )
        super().__init__(
            ex, decision.upstream, fw.tags(decision.route_name, decision.upstream), hold
        )
        self.fw = fw
        self.pool = pool
        self.conn = conn

    def _end(self, failure: Failure | None) -> None:
        if self.finished:
            self.dead = True
            return
        super()._end(failure)
        ex = self.ex
        client = self.client
        client.attach(None)
        client.fast = None
        pool = self.pool
        if failure is None:
            pool.release(self.conn)
            status = self.status
            if status >= 500:
                pool.circuit.failure()
                blamed = ex.blame(Failure.STATUS)
            else:
                pool.circuit.success()
                blamed = None
            ex.finish(Answer(self.upstream, status, blamed, headers=self.headers))
            return
        was_stale = stale(self, self.conn)
        pool.discard(self.conn)
        if self.committed:
            client.abort()
            pool.circuit.failure()
            ex.finish(Answer(self.upstream, self.status, ex.blame(failure)))
            return
        client.spawn(self.fw.run(ex, self.fw.recover(ex, self, was_stale)))

    def client_gone(self) -> None:
        """The client disconnected mid-exchange: drop the upstream connection, count 499."""
        if self.finished:
            return
        self.finished = self.dead = True
        self.pool.discard(self.conn)
        self.ex.gone()


def try_fast(fw: Forwarder, ex: Exchange) -> bool:
    """Start ``ex`` on the fast path if it qualifies; False leaves it to the task path."""
    body = ex.request.body
    if body.complete and not body.received:
        inline = b""  # the common case: no body at all
    else:
        buffered = body.buffered
        if buffered is None:
            return False
        inline = buffered
    pool = fw.upstreams.pool(ex.config, ex.decision.upstream)
    if pool.circuit.state is not CLOSED:
        return False
    conn = pool.take_idle()
    if conn is None:
        return False
    ex.inline = inline
    attempt = FastAttempt(ex, fw, pool, conn)
    attempt.on(conn)
    client = ex.client
    client.attach(conn)
    client.fast = attempt
    head = request_head(ex, pool, inline)
    conn.write(head + inline if inline else head)
    return True
