"""OpenTelemetry spans for proxied requests, exported over OTLP/HTTP (``tracing:``).

Needs the ``otel`` extra (``pip install 'strangler[otel]'``); :func:`start_tracing`
raises a :class:`~strangler.errors.StranglerError` naming it when it is missing.

Spans are built from the finished request (the data plane calls
:meth:`Tracing.traced` from ``Exchange.finish`` only when tracing is on), so nothing
is added to a request's path when it is off, and nothing but in-memory span objects
when it is on: the SDK's batch processor exports from its own thread.

Per request: a ``SERVER`` span ``"{METHOD} {route}"`` continuing the client's W3C
``traceparent``/``tracestate`` when it sent one; a ``CLIENT`` child ``upstream
{name}`` for the try on the upstream routing chose; and, when legacy answered after
that failed, a ``CLIENT`` child ``fallback {name}``. The children share the
request's start and end: the record carries the request's duration, not each try's.
The shadow comparison is a span of its own, ``shadow compare`` (route, matched,
count), from the shadow recorder's comparison feed: that feed carries no request
id, so these spans are not in the request's trace.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from strangler.config import TracingConfig
from strangler.errors import StranglerError
from strangler.proxy.outcome import RequestRecord
from strangler.proxy.request import ProxyRequest

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector's base URL (or the full URL itself)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


class Tracing:
    """A tracer provider exporting to ``config.otlp_endpoint``; ``close()`` flushes it."""

    def __init__(self, config: TracingConfig) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as exc:
            raise StranglerError(
                f"tracing: needs the otel extra (pip install 'strangler[otel]'): {exc}"
            ) from exc
        self._trace = trace
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample)),
        )
        exporter = OTLPSpanExporter(endpoint=traces_url(config.otlp_endpoint), timeout=10)
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        self.tracer = self.provider.get_tracer("strangler")
        self._propagator = TraceContextTextMapPropagator()
        self._server = trace.SpanKind.SERVER
        self._client = trace.SpanKind.CLIENT
        self._error = trace.Status(trace.StatusCode.ERROR)

    def traced(self, request: ProxyRequest, record: RequestRecord, decision: str) -> None:
        """Spans for one finished request (called from the data plane; no I/O)."""
        carrier: dict[str, str] = {}
        for field, value in request.headers:
            if len(field) in (10, 11):
                lower = field.lower()
                if lower == b"traceparent" or lower == b"tracestate":
                    carrier[lower.decode()] = value.decode("latin-1")
        parent = self._propagator.extract(carrier) if carrier else None
        end = time.time_ns()
        start = end - int(record.duration * 1e9)
        route = record.route
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "url.path": request.path,
            "http.response.status_code": record.status,
            "strangler.route": route if route is not None else "-",
            "strangler.decision": decision,
            "strangler.upstream": record.upstream,
            "strangler.fallback": record.fallback,
            "strangler.request_id": record.request_id,
        }
        if record.error is not None:
            attributes["error.type"] = str(record.error)
        name = f"{request.method} {route}" if route is not None else request.method
        span = self.tracer.start_span(
            name, context=parent, kind=self._server, attributes=attributes, start_time=start
        )
        if record.status >= 500:
            span.set_status(self._error)
        if decision != "-":
            context = self._trace.set_span_in_context(span)
            tried = {"strangler.upstream": decision, "strangler.request_id": record.request_id}
            failed = record.error is not None or (
                record.upstream == decision and record.status >= 500
            )
            if record.error is not None:
                tried["error.type"] = str(record.error)
            child = self.tracer.start_span(
                f"upstream {decision}",
                context=context,
                kind=self._client,
                attributes=tried,
                start_time=start,
            )
            if failed:
                child.set_status(self._error)
            child.end(end)
            if record.fallback:
                back = self.tracer.start_span(
                    f"fallback {record.upstream}",
                    context=context,
                    kind=self._client,
                    attributes={
                        "strangler.upstream": record.upstream,
                        "strangler.request_id": record.request_id,
                        "http.response.status_code": record.status,
                    },
                    start_time=start,
                )
                back.end(end)
        span.end(end)

    def comparison(self, route: str, matched: bool, count: int) -> None:
        """A finished shadow comparison (the recorder's feed): one ``shadow compare`` span."""
        span = self.tracer.start_span(
            "shadow compare",
            attributes={
                "strangler.route": route,
                "strangler.shadow.matched": matched,
                "strangler.shadow.count": count,
            },
        )
        span.end()

    def close(self) -> None:
        """Export what is pending and stop (blocks: run it off the loop)."""
        self.provider.shutdown()


def start_tracing(config: TracingConfig | None) -> Tracing | None:
    """The process's tracing for ``tracing:``, or None when it is off."""
    if config is None:
        return None
    tracing = Tracing(config)
    log.info("tracing: spans to %s", traces_url(config.otlp_endpoint))
    return tracing
