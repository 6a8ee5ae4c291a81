"""One client request on its way through the data plane: the :class:`Exchange`.

The dispatcher makes one exchange when a request head is parsed and routed: it
holds the client connection, the request, the decision, the config the request
started on (one route table for the whole request), when it started, and the
shadow tap when the request is mirrored. Each strategy — fast path, task path,
adapter path, tunnel — takes the exchange and ends in an
:class:`~strangler.proxy.outcome.Answer`; :meth:`Exchange.finish` is the one
place that then records the request (metrics, automatic rollback), hands the
copy to the shadow sink and lets the client connection go on.

:class:`Host` is what the data plane needs from its process (the runtime): the
router, the shadow sink, the write hold and the request listeners. Nothing
here may block or raise into the client's answer.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import Protocol

from strangler.config import Config
from strangler.proxy.connection import ClientConnection
from strangler.proxy.hold import WriteHold
from strangler.proxy.outcome import Answer, Failure, RequestRecord
from strangler.proxy.request import ProxyRequest
from strangler.proxy.shadowing import ShadowSink, ShadowTap
from strangler.routing.decision import Decision
from strangler.routing.router import Router

log = logging.getLogger(__name__)


class RequestTracer(Protocol):
    """Told of each finished request when tracing is on (``strangler.tracing``)."""

    def traced(self, request: ProxyRequest, record: RequestRecord, decision: str) -> None:
        """``record`` finished; ``decision`` is the upstream routing chose. No I/O."""
        ...


class Host(Protocol):
    """What the data plane reads from its process (``strangler.runtime.Runtime``)."""

    @property
    def router(self) -> Router: ...

    @property
    def shadow(self) -> ShadowSink | None: ...

    @property
    def hold(self) -> WriteHold: ...

    @property
    def tracer(self) -> RequestTracer | None: ...

    def record(self, record: RequestRecord) -> None:
        """One finished request, to every listener; O(1), in memory."""
        ...


class Exchange:
    """One request from the parsed head to the client's answer."""

    def __init__(
        self,
        host: Host,
        client: ClientConnection,
        request: ProxyRequest,
        decision: Decision,
        config: Config,
        started: float,
    ) -> None:
        self.host = host
        self.client = client
        self.request = request
        self.decision = decision
        self.config = config
        """The config of the route table the decision came from (pools, limits)."""
        self.started = started
        self.inline: bytes | None = None
        """The whole request body when it is in memory (set by the strategy that sends it)."""
        self.tap: ShadowTap | None = None
        """The shadow copy being teed, when this request is mirrored (:meth:`open_tap`)."""

    def open_tap(self) -> None:
        """Ask the shadow sink for a tap (the decision has a ``shadow_to``)."""
        shadow = self.host.shadow
        if shadow is not None and not self.request.shadowed:
            try:
                self.tap = shadow.open(self.decision, self.request)
            except Exception:
                log.exception("shadow sink failed in open()")

    def blame(self, failure: Failure | None) -> Failure | None:
        """``failure`` as the route's new upstream is blamed for it (None if not tried)."""
        if failure is None or not self.decision.to_new or not failure.blames_upstream:
            return None
        return failure

    def finish(self, answer: Answer) -> None:
        """The client has its answer: record it, hand the shadow copy over, go on."""
        duration = monotonic() - self.started
        decision = self.decision
        route = decision.route
        host = self.host
        try:
            record = RequestRecord(
                route.name if route is not None else None,
                answer.upstream,
                answer.status,
                duration,
                decision.to_new,
                answer.failure,
                answer.fallback,
                self.request.request_id.decode("latin-1"),
            )
            host.record(record)
            tracer = host.tracer
            if tracer is not None:
                tracer.traced(self.request, record, decision.upstream)
        except Exception:  # a broken listener must never break the client's answer
            log.exception("request listener failed")
        client = self.client
        tap = self.tap
        access = client.server.access_log
        if access is not None:
            req = self.request
            access.line(
                req.request_id,
                req.method,
                decision.path,
                route.name if route is not None else None,
                route.mode if route is not None else "-",
                decision.upstream,
                answer.upstream,
                answer.status,
                duration,
                req.body.received,
                client.sent,
                answer.fallback,
                tap is not None,
            )
        if tap is not None:
            try:
                tap.complete(answer, duration)
            except Exception:
                log.exception("shadow sink failed")
        client.request_done()

    def gone(self) -> None:
        """The client left before its answer was complete: a 499, and nothing to mirror."""
        self.tap = None
        self.finish(Answer(self.decision.upstream, 499))


def refused(
    host: Host,
    client: ClientConnection,
    req: ProxyRequest,
    route: str | None,
    status: int,
    started: float,
) -> None:
    """Record a request answered by the proxy itself before any upstream was asked."""
    duration = monotonic() - started
    request_id = req.request_id
    try:
        record = RequestRecord(
            route, "-", status, duration, False, request_id=request_id.decode("latin-1")
        )
        host.record(record)
        tracer = host.tracer
        if tracer is not None:
            tracer.traced(req, record, "-")
    except Exception:  # a broken listener must never break the client's answer
        log.exception("request listener failed")
    access = client.server.access_log
    if access is not None:
        access.line(
            request_id,
            req.method,
            req.path,
            route,
            "-",
            "-",
            "-",
            status,
            duration,
            req.body.received,
            client.sent,
            False,
            False,
        )
