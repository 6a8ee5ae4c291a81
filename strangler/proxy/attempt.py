"""One attempt to get an answer from one upstream: the sink its response flows into.

An :class:`Attempt` receives the upstream response from the connection's
parser callbacks. In the common case it *commits* at once — writes the response
head to the client and streams each body chunk straight to the client socket,
re-framing as ``Content-Length`` or chunked — so a response crosses the proxy
without a coroutine hop. Two modes hold the response back instead:

* ``hold_5xx`` (a fallback is possible): a 5xx is not forwarded; the attempt
  ends with ``"status"`` and the caller asks legacy;
* ``buffer`` (an adapter will reshape it): head and body are collected up to
  ``max_body`` for ``adapter.response()``.

It ends once, with ``failure`` None on success or a
:class:`~strangler.proxy.outcome.Failure`: a coroutine awaits :meth:`Attempt.wait`;
the callback-only fast path's subclass acts in ``_end``. The exchange's shadow tap
may tee the body; it never delays or buffers the client's copy. Nothing here
chooses upstreams.
"""

from __future__ import annotations

import asyncio

from strangler.errors import UpstreamError
from strangler.proxy.exchange import Exchange
from strangler.proxy.headers import RawHeaders, client_host_of, relay_head, relocated
from strangler.proxy.outcome import Failure, failure_of
from strangler.proxy.upstream import UpstreamConnection

_CHUNK_END = b"0\r\n\r\n"


class Attempt:
    """One try of one exchange on one upstream; ``failure`` is None after a clean end."""

    def __init__(
        self,
        ex: Exchange,
        upstream: str,
        tags: bytes,
        hold_5xx: bool = False,
        buffer: bool = False,
    ) -> None:
        self.ex = ex
        self.client = ex.client
        self.upstream = upstream
        self.tags = tags
        self.head_request = ex.request.method == "HEAD"
        self.hold_5xx = hold_5xx
        self.buffer = buffer
        self.max_body = ex.config.limits.max_body
        self.tap = None if buffer else ex.tap
        """An adapter's answer is teed once reshaped, not as it arrives."""
        self.out: list[bytes] = []
        """Bytes for the client parsed from one upstream read, written in one go."""
        self.chunks: list[bytes] = []
        """The buffered body (``buffer`` mode)."""
        self.size = 0
        self.status = 0
        self.headers: RawHeaders = []
        self.committed = False
        """The response head went to the client: no retry or fallback is possible now."""
        self.out_chunked = False
        self.failure: Failure | None = None
        self.error: UpstreamError | None = None
        self.finished = False
        self.dead = False
        """Ignore what the upstream still sends (ended, or failed mid-body)."""
        self.done: asyncio.Future[None] | None = None
        self.via: UpstreamConnection | None = None
        """The upstream connection answering (its reason phrase, its pool's address)."""

    def on(self, conn: UpstreamConnection) -> None:
        """Start this attempt on ``conn``: its response flows into this sink."""
        self.via = conn
        conn.start(self, self.head_request)

    def fail(self, failure: Failure, error: UpstreamError | None = None) -> Failure:
        self.error = error
        self._end(failure)
        return failure

    def _end(self, failure: Failure | None) -> None:
        self.dead = True
        if self.finished:
            return
        self.finished = True
        self.failure = failure
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def wait(self) -> Failure | None:
        """The failure (None on success), once the attempt has ended."""
        if not self.finished:
            self.done = self.client.loop.create_future()
            await self.done
        return self.failure

    # ----------------------------------------------------------- sink methods

    def response_head(self, status: int, headers: RawHeaders, keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        if self.hold_5xx and status >= 500:
            self._end(Failure.STATUS)
            return
        if not self.buffer:
            self.commit()

    def commit(self) -> None:
        status = self.status
        conn = self.via
        head, self.out_chunked = relay_head(
            status,
            self.headers,
            self.tags,
            self.client.must_close(),
            self.head_request or status in (204, 304) or status < 200,
            conn.reason if conn is not None else b"",
            self.ex.request.request_id,
            self.relocate,
        )
        self.out.append(head)
        self.committed = True

    def relocate(self, value: bytes) -> bytes:
        """A ``Location`` pointing at the upstream, pointed at the client's host instead
        (``host: upstream`` only: with ``host: client`` the upstream already used it)."""
        conn = self.via
        if conn is None or conn.pool.config.host != "upstream":
            return value
        host = client_host_of(self.ex.request.headers)
        if not host:
            return value
        return relocated(value, conn.pool.origin, self.ex.client.scheme + b"://" + host)

    def response_body(self, data: bytes) -> None:
        if self.dead:
            return
        if self.tap is not None:
            self.tap.tee_response(data)
        if self.buffer:
            self.size += len(data)
            if self.size > self.max_body:
                self.fail(Failure.TOO_LARGE)
                return
            self.chunks.append(data)
        elif self.out_chunked:
            self.out += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self.out.append(data)

    def flush(self) -> None:
        """Write what this upstream read produced; called after each parser feed."""
        out = self.out
        if out:
            self.client.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def response_end(self) -> None:
        if self.dead:
            return
        if self.committed and self.out_chunked:
            self.out.append(_CHUNK_END)
        self.flush()
        self._end(None)

    def upstream_failed(self, error: UpstreamError) -> None:
        if not self.dead:
            self.fail(failure_of(error), error)
