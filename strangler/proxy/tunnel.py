"""``Upgrade`` requests (websocket, or a protocol the route lists): forward the
handshake, then pipe raw bytes. (Which upgrades come here: ``dispatch.tunnels``.)

The handshake goes to the chosen upstream on a fresh connection (never a pooled
one, never returned to the pool) with ``Connection: upgrade`` and the client's
``Upgrade`` value. A ``101`` answer is relayed with the Strangler headers and
from then on the two sockets are joined byte for byte with back-pressure both
ways, until either side closes. Any other answer is relayed as a normal response
and the client connection is closed after it. Nothing here looks at frames.
"""

from __future__ import annotations

import asyncio

from strangler.errors import UpstreamError
from strangler.proxy.attempt import Attempt
from strangler.proxy.exchange import Exchange
from strangler.proxy.forwarding import Forwarder
from strangler.proxy.headers import RawHeaders, response_head, upgrade_lines, upstream_head
from strangler.proxy.outcome import Answer, Failure, failure_of
from strangler.proxy.responses import error_response


class _Handshake(Attempt):
    """Relays a 101 and marks the switch; other statuses stream like any response."""

    def __init__(self, ex: Exchange, upstream: str, tags: bytes) -> None:
        super().__init__(ex, upstream, tags)
        self.head_request = False
        self.closed: asyncio.Future[None] = ex.client.loop.create_future()

    def response_head(self, status: int, headers: RawHeaders, keep_alive: bool) -> None:
        if status != 101:
            super().response_head(status, headers, keep_alive)
            return
        self.status = status
        self.headers = headers
        upgrade = next((v for n, v in headers if n.lower() == b"upgrade"), b"websocket")
        head = response_head(
            101,
            headers,
            self.tags,
            b"connection: upgrade\r\nupgrade: %s\r\n" % upgrade,
            False,
            self.ex.request.request_id,
        )
        self.client.write(head)
        self.committed = True
        self._end(None)

    def upstream_failed(self, error: UpstreamError) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        super().upstream_failed(error)


async def tunnel(fw: Forwarder, ex: Exchange) -> Answer:
    """Forward the handshake; after a 101, pipe bytes both ways until either side closes."""
    client = ex.client
    req = ex.request
    upstream = ex.decision.upstream
    route = ex.decision.route_name
    pool = fw.upstreams.pool(ex.config, upstream)
    if not pool.circuit.allow():
        client.write(
            error_response(
                502,
                f"upstream {upstream!r}: circuit open",
                route,
                upstream,
                close=True,
                request_id=req.request_id,
            )
        )
        return Answer(upstream, 502, ex.blame(Failure.CIRCUIT))
    try:
        conn = await pool.connect()
    except UpstreamError as exc:
        pool.circuit.failure()
        client.write(
            error_response(
                exc.status, str(exc), route, upstream, close=True, request_id=req.request_id
            )
        )
        return Answer(upstream, exc.status, ex.blame(failure_of(exc)))
    pool.circuit.success()
    tags = fw.tags(route, upstream)
    sink = _Handshake(ex, upstream, tags)
    host = pool.host_header
    head = upstream_head(
        req.method.encode("latin-1"),
        pool.prefix + req.target,
        req.headers,
        host,
        client,
        upgrade_lines(req.upgrade or b"websocket"),
    )
    conn.upgrading = True
    sink.on(conn)
    client.attach(conn)
    conn.reusable = False
    try:
        conn.write(head)
        failure = await sink.wait()
        if failure is not None or sink.status != 101:
            if failure is not None and not sink.committed:
                status = failure.status
                client.write(
                    error_response(
                        status,
                        str(sink.error),
                        route,
                        upstream,
                        close=True,
                        request_id=req.request_id,
                    )
                )
                return Answer(upstream, status, ex.blame(failure))
            return Answer(upstream, sink.status)
        # Switched: join the sockets. Bytes the client sent after its head go first.
        conn.finish()
        conn.sink = sink  # still told when the upstream closes
        client_transport = client.transport
        upstream_transport = conn.transport
        assert client_transport is not None and upstream_transport is not None
        for data in conn.raw_buffer or ():
            if data:
                client.write(data)
        conn.raw = client.write

        def pause_client(paused: bool) -> None:
            if paused:
                client_transport.pause_reading()
            else:
                client_transport.resume_reading()

        conn.on_pause = pause_client
        for data in client.tunnel_buffer or ():
            if data:
                upstream_transport.write(data)
        client.tunnel_buffer = None
        client.tunnel = upstream_transport.write

        def client_closed() -> None:
            if not sink.closed.done():
                sink.closed.set_result(None)

        client.on_close = client_closed
        await sink.closed
        return Answer(upstream, 101)
    finally:
        client.attach(None)
        if conn.transport is not None:
            conn.transport.close()
        if client.transport is not None and not client.transport.is_closing():
            client.transport.close()
