"""The mirrored call: one HTTP/1.1 exchange over the data plane's upstream pools.

:class:`ShadowClient` sends a shadow copy to an upstream and returns what came
back as an :class:`~strangler.shadow.observation.Observation` — never raising:
a refused connection, a timeout (the upstream's ``timeout``: no byte moved for
that long) or a malformed answer is the observation's ``exception``. It keeps
its own pools (built with ``strangler.proxy.upstream.UpstreamPool``), so shadow
connections never take a slot the client's requests need, and reads at most
``limit`` body bytes (beyond it: :class:`TooLarge`, the connection is dropped).

Why not aiohttp's client: measured in ``bench/shadow.py``, an aiohttp request
costs several times the CPU of the proxy's own httptools exchange, and at 100 %
shadow that cost is paid on every request.
"""

from __future__ import annotations

import asyncio
import time

from strangler.config import UpstreamConfig
from strangler.errors import UpstreamError
from strangler.message import HttpRequest, make_headers
from strangler.proxy.headers import RawHeaders
from strangler.proxy.upstream import UpstreamConnection, UpstreamPool
from strangler.shadow.observation import Observation, Side

MARKER = "X-Strangler-Shadow"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)


class TooLarge(Exception):
    """The shadow answer's body is over the route's ``shadow.max_body``."""


class _Collect:
    """A ResponseSink that buffers one answer (up to ``limit``) into a future."""

    def __init__(self, future: asyncio.Future[None], limit: int) -> None:
        self.future = future
        self.limit = limit
        self.status = 0
        self.headers: RawHeaders = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = True
        self.error: BaseException | None = None

    def response_head(self, status: int, headers: RawHeaders, keep_alive: bool) -> None:
        self.status, self.headers, self.keep_alive = status, list(headers), keep_alive

    def response_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self._done(TooLarge())
            return
        self.chunks.append(data)

    def response_end(self) -> None:
        self._done(None)

    def upstream_failed(self, error: UpstreamError) -> None:
        self._done(error)

    def flush(self) -> None:
        return None

    def _done(self, error: BaseException | None) -> None:
        if not self.future.done():
            self.error = error
            self.future.set_result(None)


class ShadowClient:
    """Pools per upstream for shadow copies; rebuilt when an upstream's config changes."""

    def __init__(self, max_connections: int) -> None:
        self._max = max_connections
        self._pools: dict[str, tuple[UpstreamConfig, UpstreamPool]] = {}

    def _pool(self, name: str, config: UpstreamConfig) -> UpstreamPool:
        known = self._pools.get(name)
        if known is not None and known[0] == config:
            return known[1]
        if known is not None:
            known[1].close()
        # The shadow bound is also the bound on shadow sockets per upstream.
        bounded = config.model_copy(update={"max_connections": self._max})
        pool = UpstreamPool(name, bounded, asyncio.get_running_loop())
        self._pools[name] = (config, pool)
        return pool

    async def send(
        self,
        side: Side,
        name: str,
        config: UpstreamConfig,
        request: HttpRequest,
        limit: int,
    ) -> Observation:
        """One mirrored exchange. Raises only TooLarge; every failure is an observation."""
        started = time.perf_counter()
        pool = self._pool(name, config)
        # The shadow pools have their own breaker: a dead shadow target costs one
        # comparison of a clock, not a refused socket, per request.
        if not pool.circuit.allow():
            return Observation.failure(side, name, "circuit open: failing, not tried", 0.0)
        try:
            conn = await pool.acquire()
        except UpstreamError as exc:
            pool.circuit.failure()
            return Observation.failure(side, name, _why(exc), time.perf_counter() - started)
        except BaseException:
            pool.circuit.release_probe()
            raise
        loop = asyncio.get_running_loop()
        sink = _Collect(loop.create_future(), limit)
        head = request.method == "HEAD"
        conn.start(sink, head)
        try:
            conn.write(_encode(pool, config, request))
            await sink.future
        except BaseException:
            pool.circuit.release_probe()
            pool.discard(conn)
            raise
        return self._finish(pool, conn, sink, side, name, started)

    @staticmethod
    def _finish(
        pool: UpstreamPool,
        conn: UpstreamConnection,
        sink: _Collect,
        side: Side,
        name: str,
        started: float,
    ) -> Observation:
        elapsed = time.perf_counter() - started
        if sink.error is not None:
            pool.discard(conn)
            if isinstance(sink.error, TooLarge):
                pool.circuit.success()
                raise sink.error
            pool.circuit.failure()
            return Observation.failure(side, name, _why(sink.error), elapsed)
        pool.circuit.success()
        if sink.keep_alive:
            pool.release(conn)
        else:
            pool.discard(conn)
        headers = make_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in sink.headers)
        return Observation(side, name, sink.status, headers, b"".join(sink.chunks), elapsed)

    def close(self) -> None:
        for _, pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _why(error: BaseException) -> str:
    text = str(error)
    if "no answer within" in text or "no connection within" in text:
        return f"timeout: {text}"
    if "cannot connect" in text:
        return f"connect: {text}"
    return text


def _encode(pool: UpstreamPool, config: UpstreamConfig, request: HttpRequest) -> bytes:
    host = pool.host_header
    if config.host == "client" and "host" in request.headers:
        host = request.headers["host"].encode("latin-1")
    lines = [
        f"{request.method} ".encode()
        + pool.prefix
        + request.target.encode("latin-1")
        + b" HTTP/1.1",
        b"Host: " + host,
    ]
    lines += [
        f"{k}: {v}".encode("latin-1")
        for k, v in request.headers.items()
        if k.lower() not in _HOP_BY_HOP and k.lower() != MARKER.lower()
    ]
    lines.append(f"{MARKER}: 1".encode())
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: %d" % len(request.body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.body
