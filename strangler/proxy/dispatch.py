"""Where a parsed request starts: routing, the exchange, and the choice of strategy.

:meth:`Dispatcher.start` is called by the client connection for each request
head, in order. It answers refusals (400/413/431 from parsing, a path that does
not normalise) itself; otherwise it reads the route table once, asks
``decide()`` who answers, makes the :class:`~strangler.proxy.exchange.Exchange`
and picks one strategy:

* a write on a route of a bounded context first passes the context's gate
  (:mod:`strangler.proxy.hold`), then decides again from the table of that moment;
* ``Upgrade: websocket`` requests (or a protocol the route lists in ``upgrade:``)
  are tunnelled (:mod:`strangler.proxy.tunnel`); any other ``Upgrade`` (``h2c``)
  is served as a normal request with the upgrade stripped;
* a route with an adapter answered by ``to`` takes the adapter path
  (:mod:`strangler.proxy.adapting`);
* the common request runs on callbacks only (:mod:`strangler.proxy.fastpath`);
* anything else streams on the task path (:meth:`Forwarder.plain`).

Every strategy ends in the exchange's ``finish``. Nothing here touches sockets.
"""

from __future__ import annotations

from collections.abc import Coroutine
from time import monotonic
from typing import Any

from strangler.config import SAFE_METHODS
from strangler.proxy.adapting import adapted
from strangler.proxy.connection import ClientConnection
from strangler.proxy.exchange import Exchange, Host, refused
from strangler.proxy.fastpath import try_fast
from strangler.proxy.forwarding import Forwarder
from strangler.proxy.headers import HeaderView
from strangler.proxy.outcome import Answer
from strangler.proxy.request import ProxyRequest, target_of
from strangler.proxy.responses import error_response
from strangler.proxy.tunnel import tunnel
from strangler.routing.decision import decide
from strangler.routing.paths import BadPath


class Dispatcher:
    def __init__(self, host: Host, forwarder: Forwarder) -> None:
        self.host = host
        self.forwarder = forwarder

    def start(self, client: ClientConnection, req: ProxyRequest) -> None:
        """Begin answering ``req``; the client is told with ``request_done()`` when over."""
        started = monotonic()
        if req.reject is not None:
            # As a task, like any answer that is not immediate: pipelined requests parsed
            # after a refused one wait behind it, and the connection closes after it.
            client.spawn(self.refuse(client, req, req.reject, started))
            return
        ex = self.exchange(client, req, started)
        if ex is None:
            return
        route = ex.decision.route
        if req.upgrade is not None and not tunnels(ex):
            client.plain(req)
        if req.upgrade is None:
            if route is not None and route.context is not None and req.method not in SAFE_METHODS:
                client.spawn(self.held(ex, route.context))
                return
            if ex.decision.shadow_to is not None:
                ex.open_tap()
            adapts = route is not None and route.adapter is not None and ex.decision.to_new
            if not adapts and try_fast(self.forwarder, ex):
                return
        client.spawn(self.forwarder.run(ex, self.strategy(ex)))

    async def refuse(
        self, client: ClientConnection, req: ProxyRequest, reject: tuple[int, str], started: float
    ) -> None:
        """Answer a request refused while parsing (400/413/431); it is never forwarded."""
        status, message = reject
        client.write(error_response(status, message, close=True, request_id=req.request_id))
        refused(self.host, client, req, None, status, started)

    def exchange(
        self, client: ClientConnection, req: ProxyRequest, started: float
    ) -> Exchange | None:
        """Route ``req`` on the current table; None when its path was refused (400)."""
        table = self.host.router.table
        pin = table.config.pin_header
        if pin is not None:
            req.keep_private(pin.lower().encode("latin-1"))  # read for the decision, then dropped
        try:
            decision = decide(
                table, req.method, req.path, HeaderView(req.routing_headers), client.ip
            )
        except BadPath as exc:
            client.write(
                error_response(400, str(exc), close=client.must_close(), request_id=req.request_id)
            )
            refused(self.host, client, req, None, 400, started)
            client.request_done()
            return None
        if decision.path != req.path:
            # Upstreams and the mirror get what was routed, never the raw target.
            req.target = target_of(decision.path, req.query)
        return Exchange(self.host, client, req, decision, table.config, started)

    def strategy(self, ex: Exchange) -> Coroutine[Any, Any, Answer]:
        """The task-path strategy for ``ex``."""
        route = ex.decision.route
        if ex.request.upgrade is not None:
            return tunnel(self.forwarder, ex)
        if route is not None and route.adapter is not None and ex.decision.to_new:
            return adapted(self.forwarder, ex, route.adapter)
        return self.forwarder.plain(ex)

    async def held(self, ex: Exchange, context: str) -> None:
        """A context's write: through its gate, then the task path, which decides the
        upstream afresh — after a hold, from the table the flip swapped in."""
        client = ex.client
        route = ex.decision.route_name
        gate = self.host.hold.gate(context)
        if not await gate.enter():
            client.write(
                error_response(
                    503,
                    f"context {context!r} is moving (cutover {gate.cutover}) and "
                    f"{gate.max_held} writes are already held here; retry in a moment",
                    route,
                    close=client.must_close(),
                    request_id=ex.request.request_id,
                )
            )
            refused(self.host, client, ex.request, route, 503, ex.started)
            return
        try:
            # The time held is part of this request's duration: ``started`` is kept.
            again = self.exchange(client, ex.request, ex.started)
            if again is not None:
                await self.forwarder.run(again, self.strategy(again))
        finally:
            gate.leave()


TUNNELLED = frozenset({b"websocket"})
"""Protocols every route tunnels; others only where a route lists them (``upgrade:``)."""


def tunnels(ex: Exchange) -> bool:
    """Is ``ex``'s ``Upgrade`` tunnelled? ``websocket``, or a protocol its route lists."""
    protocol = (ex.request.upgrade or b"").strip().lower()
    if protocol in TUNNELLED:
        return True
    route = ex.decision.route
    listed = route.config.upgrade if route is not None else None
    return listed is not None and protocol.decode("latin-1") in listed
