"""The mirrored call: HTTP/1.1 to a shadow target over pools of the shadow's own.

:class:`ShadowClient` sends a shadow copy to an upstream and returns what came
back as an :class:`~strangler.shadow.observation.Observation` — never raising:
a refused connection, a timeout (the upstream's ``timeout``: no byte moved for
that long) or a malformed answer is the observation's ``exception``. It keeps
its own pools (built with ``strangler.proxy.upstream.UpstreamPool``), so shadow
connections never take a slot the client's requests need, and reads at most
``limit`` body bytes (beyond it: :class:`TooLarge`, the connection is dropped).
Plain GETs go through :meth:`ShadowClient.channel` instead: a
:class:`~strangler.shadow.pipeline.ShadowChannel` on the same pool (same
breaker) that pipelines the GETs of one loop turn in one write.
:func:`encode` builds the mirrored request (``X-Strangler-Shadow: 1``) for both.

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
from strangler.proxy.headers import HOP_BY_HOP, RawHeaders
from strangler.proxy.shadowing import MARKER
from strangler.proxy.upstream import UpstreamConnection, UpstreamPool
from strangler.shadow.copy import raw_pairs
from strangler.shadow.failure import CIRCUIT_OPEN, FailureKind, MirrorFailure
from strangler.shadow.observation import Observation, Side
from strangler.shadow.pipeline import ShadowChannel

_MARKER = MARKER.lower().encode()
_NOT_COPIED = HOP_BY_HOP | {b"host", b"content-length", b"expect", _MARKER}
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


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
    """Pools per upstream for shadow copies; rebuilt when an upstream's config changes,
    or at a reload after its ``tls:`` files changed on disk (a renewed CA or certificate)."""

    def __init__(self, max_connections: int) -> None:
        self._max = max_connections
        self._pools: dict[str, tuple[UpstreamConfig, UpstreamPool, ShadowChannel]] = {}

    def _get(self, name: str, config: UpstreamConfig) -> tuple[UpstreamPool, ShadowChannel]:
        known = self._pools.get(name)
        if known is not None:
            if known[0] is config:
                return known[1], known[2]
            # Another config object: a reload. Equal settings keep the pools (and their
            # warm connections) unless the ``tls:`` files changed on disk since they were
            # loaded, as the proxy's pools do (strangler.proxy.registry).
            if known[0] == config and not known[1].tls_changed():
                self._pools[name] = (config, known[1], known[2])  # `is` from now on
                return known[1], known[2]
            known[1].close()
            known[2].close()
        # The shadow bound is also the bound on shadow sockets per upstream.
        bounded = config.model_copy(update={"max_connections": self._max})
        pool = UpstreamPool(name, bounded, asyncio.get_running_loop())
        channel = ShadowChannel(pool, self._max)
        self._pools[name] = (config, pool, channel)
        return pool, channel

    def _pool(self, name: str, config: UpstreamConfig) -> UpstreamPool:
        return self._get(name, config)[0]

    def channel(self, name: str, config: UpstreamConfig) -> ShadowChannel:
        """The pipelined channel to ``name`` (for plain GETs), sharing the pool's breaker."""
        return self._get(name, config)[1]

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
            return Observation.failure(side, name, str(CIRCUIT_OPEN), 0.0)
        try:
            conn = await pool.acquire()
        except UpstreamError as exc:
            pool.circuit.failure()
            return Observation.failure(side, name, str(_why(exc)), time.perf_counter() - started)
        except BaseException:
            pool.circuit.release_probe()
            raise
        loop = asyncio.get_running_loop()
        sink = _Collect(loop.create_future(), limit)
        head = request.method == "HEAD"
        conn.start(sink, head)
        try:
            conn.write(
                encode(
                    pool,
                    config,
                    request.method,
                    request.target.encode("latin-1"),
                    raw_pairs(request.headers),
                    request.body,
                )
            )
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
            return Observation.failure(side, name, str(_why(sink.error)), elapsed)
        pool.circuit.success()
        if sink.keep_alive:
            pool.release(conn)
        else:
            pool.discard(conn)
        headers = make_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in sink.headers)
        return Observation(side, name, sink.status, headers, b"".join(sink.chunks), elapsed)

    def close(self) -> None:
        for _, pool, channel in self._pools.values():
            pool.close()
            channel.close()
        self._pools.clear()


def _why(error: BaseException) -> MirrorFailure | str:
    """An upstream error as a failure kind, where its text says which."""
    text = str(error)
    if "no answer within" in text or "no connection within" in text:
        return MirrorFailure(FailureKind.TIMEOUT, text)
    if "cannot connect" in text:
        return MirrorFailure(FailureKind.CONNECT, text)
    return text


def encode(
    pool: UpstreamPool,
    config: UpstreamConfig,
    method: str,
    target: bytes,
    headers: RawHeaders,
    body: bytes,
) -> bytes:
    """The mirrored request: the client's headers (not hop-by-hop ones), the target's
    ``Host`` (or the client's, with ``host: client``), ``X-Strangler-Shadow: 1``."""
    host = pool.host_header
    parts = [method.encode("latin-1"), b" ", pool.prefix, target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lower = name.lower()
        if lower in _NOT_COPIED:
            if lower == b"host" and config.host == "client":
                host = value
            continue
        parts += (name, b": ", value, b"\r\n")
    parts += (b"Host: ", host, b"\r\nX-Strangler-Shadow: 1\r\n")
    if body or method in _WITH_BODY:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts += (b"\r\n", body)
    return b"".join(parts)


def get_parts(pool: UpstreamPool, config: UpstreamConfig) -> tuple[bytes, bytes] | None:
    """What every mirrored GET to this target starts and ends with, for :func:`encode_get`;
    None when the ``Host`` is the client's (``host: client``)."""
    if config.host == "client":
        return None
    return (
        b"GET " + pool.prefix,
        b"Host: " + pool.host_header + b"\r\n" + MARKER.encode() + b": 1\r\n\r\n",
    )


def encode_get(parts: tuple[bytes, bytes], target: bytes, headers: RawHeaders) -> bytes:
    """:func:`encode` for a GET without a body, with the target's constant parts made once."""
    out = [parts[0], target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if name.lower() not in _NOT_COPIED:
            out += (name, b": ", value, b"\r\n")
    out.append(parts[1])
    return b"".join(out)
