"""What one side of a shadow comparison saw: an immutable :class:`Observation`.

An observation is taken once per side (legacy, new) and never changed; the
comparison and the store only read it. It holds the status, headers, body,
how long the side took, and — instead of raising — the exception the side
failed with (the control's answer always reached the client; a candidate's
failure is recorded here, never raised). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from strangler.message import Headers, HttpResponse, make_headers
from strangler.proxy.request import decoded

Side = Literal["legacy", "new"]


@dataclass(frozen=True, eq=False)
class Observation:
    """One side's answer to one mirrored request."""

    side: Side
    upstream: str
    """Upstream name from routes.yaml that answered (or failed to)."""
    status: int | None = None
    headers: Headers = field(default_factory=make_headers)
    body: bytes = b""
    duration: float = 0.0
    exception: str | None = None
    """Why the side failed (timeout, refused, adapter error...), or None if it answered."""

    @property
    def failed(self) -> bool:
        return self.exception is not None

    @classmethod
    def of(cls, side: Side, upstream: str, response: HttpResponse, duration: float) -> Observation:
        return cls(side, upstream, response.status, response.headers, response.body, duration)

    @classmethod
    def raw(
        cls,
        side: Side,
        upstream: str,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        duration: float,
    ) -> Observation:
        """From an answer as it crossed the wire (hop-by-hop headers are dropped)."""
        return cls(side, upstream, status, make_headers(decoded(headers)), body, duration)

    @classmethod
    def failure(cls, side: Side, upstream: str, exception: str, duration: float) -> Observation:
        return cls(side, upstream, duration=duration, exception=exception)

    def response(self) -> HttpResponse:
        """This observation as an HttpResponse (for adapters); only when it did not fail."""
        return HttpResponse(headers=self.headers, body=self.body, status=self.status or 0)

    def with_response(self, response: HttpResponse) -> Observation:
        """The same observation with an adapter's reshaped response."""
        return Observation(
            self.side,
            self.upstream,
            response.status,
            response.headers,
            response.body,
            self.duration,
            self.exception,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (body as text when it decodes, else a byte count)."""
        try:
            body: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            body = None
        return {
            "side": self.side,
            "upstream": self.upstream,
            "status": self.status,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body if body is not None else f"<{len(self.body)} bytes of binary>",
            "duration_ms": round(self.duration * 1000, 3),
            "exception": self.exception,
        }
