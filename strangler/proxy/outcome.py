"""What became of one proxied request: the failure kinds, the answer, the record.

:class:`Failure` names why a try on an upstream (or the client's body) failed;
its values are the words metrics, logs and the rollback monitor have always
used (``"timeout"``, ``"connect"``, ...). :class:`Answer` is what a strategy
(fast path, task path, adapter path, tunnel) returns: who answered, the status
the client got, and why the new upstream failed, if it did.
:class:`RequestRecord` is the one record per request every listener reads.
Values only; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from strangler.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from strangler.message import HttpResponse
from strangler.proxy.headers import RawHeaders


class Failure(StrEnum):
    CONNECT = "connect"
    """Refused, unreachable, closed early or a malformed answer (502)."""
    TIMEOUT = "timeout"
    """No connection or no byte within the upstream's timeout (504)."""
    CIRCUIT = "circuit"
    """The upstream's breaker is open: not tried (502)."""
    STATUS = "status"
    """The upstream answered 5xx."""
    TOO_LARGE = "too_large"
    """A buffered answer outgrew ``limits.max_body`` (502)."""
    ADAPTER = "adapter"
    """The route's adapter raised or returned junk (502)."""
    BODY_TOO_LARGE = "body_too_large"
    """The client's body outgrew ``limits.max_body`` while streaming (413)."""
    BAD_REQUEST = "bad_request"
    """The client's body broke its framing while streaming (400)."""

    @property
    def blames_upstream(self) -> bool:
        """Counted against the upstream (breaker, rollback); the client's own faults are not."""
        return self not in _CLIENT_FAULTS

    @property
    def status(self) -> int:
        """The status the client gets for this failure when nothing was sent yet."""
        return _STATUS.get(self, 502)


_CLIENT_FAULTS = frozenset({Failure.BODY_TOO_LARGE, Failure.BAD_REQUEST})
_STATUS = {Failure.TIMEOUT: 504, Failure.BODY_TOO_LARGE: 413, Failure.BAD_REQUEST: 400}
BREAKER_FAILURES = frozenset({Failure.CONNECT, Failure.TIMEOUT, Failure.STATUS})
"""What opens an upstream's circuit breaker."""


def failure_of(error: UpstreamError) -> Failure:
    if isinstance(error, UpstreamTimeout):
        return Failure.TIMEOUT
    if isinstance(error, CircuitOpen):
        return Failure.CIRCUIT
    return Failure.CONNECT


class Answer(NamedTuple):
    """What the client got, as a strategy returns it. Immutable; a NamedTuple (like
    ``Decision``) because one is built per request and that is cheaper than a frozen
    dataclass."""

    upstream: str
    """Who answered (after any fallback)."""
    status: int
    failure: Failure | None = None
    """Why the route's new upstream failed (None when it did not, or was not asked)."""
    fallback: bool = False
    """Legacy answered after the new upstream failed."""
    headers: RawHeaders | None = None
    """A streamed answer's raw headers (for the shadow copy); None if none came through."""
    response: HttpResponse | None = None
    """The answer as a value, when it was buffered (adapter path) — for the shadow copy."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One proxied request, as seen by the data plane once the client has its answer."""

    route: str | None
    """Route name, or None when unmatched."""
    upstream: str
    """Upstream that answered (after any fallback)."""
    status: int
    duration: float
    to_new: bool
    """True when the route's new upstream (``to``) was tried for this request."""
    error: Failure | None = None
    """Why the new upstream failed, if it did: ``timeout``, ``connect``, ``circuit``,
    ``adapter``, ``status`` (a 5xx) — counted by automatic rollback."""
    fallback: bool = False
    """True when legacy answered after the new upstream failed."""
    request_id: str = ""
    """The request's ``X-Request-Id`` (the client's, or the one the proxy generated)."""
