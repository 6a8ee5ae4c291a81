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

It ends once with ``result`` ``None`` on success or an error kind (``connect``,
``timeout``, ``status``, ``too_large``): a coroutine awaits :meth:`Attempt.wait`;
the callback-only fast path's subclass acts in ``_end``. A ``ShadowCopy`` may tee
the body; it never delays or buffers the client's copy. Nothing here chooses upstreams.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from strangler.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from strangler.proxy.headers import RawHeaders, relay_head

if TYPE_CHECKING:
    from strangler.proxy.connection import ClientConnection
    from strangler.proxy.shadowing import ShadowCopy

_CHUNK_END = b"0\r\n\r\n"


def error_kind(error: UpstreamError) -> str:
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, CircuitOpen):
        return "circuit"
    return "connect"


class Attempt:
    # No __slots__: most fields keep their class default for a whole attempt, and
    # not storing them per instance is what makes this object cheap to create.
    done: asyncio.Future[None] | None = None
    finished = False
    result: str | None = None
    status = 0
    headers: RawHeaders = []
    chunks: list[bytes] | None = None
    size = 0
    committed = False
    out_chunked = False
    error: UpstreamError | None = None
    dead = False

    def __init__(
        self,
        client: ClientConnection,
        upstream: str,
        tags: bytes,
        head_request: bool,
        *,
        hold_5xx: bool = False,
        buffer: bool = False,
        max_body: int = 0,
        tap: ShadowCopy | None = None,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.tags = tags
        self.head_request = head_request
        self.hold_5xx = hold_5xx
        self.buffer = buffer
        self.max_body = max_body
        self.tap = tap
        self.out: list[bytes] = []
        """Bytes for the client parsed from one upstream read, written in one go."""
        if buffer:
            self.chunks = []

    def fail(self, kind: str, error: UpstreamError | None = None) -> str:
        self.error = error
        self._end(kind)
        return kind

    def _end(self, result: str | None) -> None:
        self.dead = True
        if self.finished:
            return
        self.finished = True
        self.result = result
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def wait(self) -> str | None:
        """The result, once the attempt has ended."""
        if not self.finished:
            self.done = self.client.loop.create_future()
            await self.done
        return self.result

    # ----------------------------------------------------------- sink methods

    def response_head(self, status: int, headers: RawHeaders, keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        if self.hold_5xx and status >= 500:
            self._end("status")
            return
        if not self.buffer:
            self.commit()

    def commit(self) -> None:
        status = self.status
        head, self.out_chunked = relay_head(
            status,
            self.headers,
            self.tags,
            self.client.must_close(),
            self.head_request or status in (204, 304) or status < 200,
        )
        self.out.append(head)
        self.committed = True

    def response_body(self, data: bytes) -> None:
        if self.dead:
            return
        if self.tap is not None:
            self.tap.tee_response(data)
        if self.buffer:
            self.size += len(data)
            if self.size > self.max_body:
                self.fail("too_large")
                return
            assert self.chunks is not None
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
            self.fail(error_kind(error), error)
