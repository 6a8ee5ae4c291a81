"""The one exception tree of strangler.

    StranglerError                 base; ``str(err)`` is a message for a person
    ├── ConfigError                routes.yaml is invalid; carries every problem
    ├── AdapterError               an anti-corruption adapter raised or returned junk
    ├── UpstreamError              an upstream could not answer
    │   ├── UpstreamConnectError   refused / unreachable          -> 502
    │   ├── UpstreamTimeout        connect or read timed out       -> 504
    │   └── CircuitOpen            breaker open, not tried         -> 502
    ├── RequestError               a client's request cannot be forwarded as sent
    │   ├── BodyTooLarge           the body outgrew limits.max_body      -> 413
    │   ├── MalformedBody          the body broke its framing mid-way    -> 400
    │   └── ClientGone             the client left before its body ended (499, nothing sent)
    ├── StateStoreError            the shared state store (Redis) is unreachable -> 503
    ├── AdminError                 an admin API call failed (CLI side); has ``status``
    └── SyncError                  change data capture failed
        └── ChangeEventError       one change event is malformed or unmappable (dead-letter it)

Library errors (aiohttp, redis, SQLAlchemy, kafka) are mapped to these where they
enter, with ``raise ... from exc``; nothing above this module sees them raw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class StranglerError(Exception):
    """Base of every error strangler raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: the dotted key path, what is wrong with it, and
    (when known) the line of the file where the key is."""

    key: str
    message: str
    line: int | None = None
    hint: str | None = None
    """What was probably meant (``did you mean 'percent'?``), or the valid names."""

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message

    def located(self) -> str:
        """``line 12: routes[0].precent: unknown key (did you mean 'percent'?)``."""
        text = f"line {self.line}: {self}" if self.line is not None else str(self)
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(StranglerError):
    """A config failed validation. ``problems`` has one entry per key at fault."""

    def __init__(self, problems: Sequence[Problem], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(str(p) for p in self.problems))


class AdapterError(StranglerError):
    """An adapter raised or returned something that is not a request/response/row."""


class UpstreamError(StranglerError):
    """An upstream failed to answer. ``upstream`` is its name in routes.yaml."""

    status = 502

    def __init__(self, upstream: str, message: str) -> None:
        self.upstream = upstream
        super().__init__(f"upstream {upstream!r}: {message}")


class UpstreamConnectError(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504


class CircuitOpen(UpstreamError):
    status = 502


class RequestError(StranglerError):
    """A client's request cannot be forwarded as it was sent (raised on the data plane)."""


class BodyTooLarge(RequestError):
    """The request body is larger than the limit it was read with."""


class MalformedBody(RequestError):
    """The request body broke the framing (e.g. a bad chunk size) after forwarding began."""


class ClientGone(RequestError):
    """The client closed its connection before the request body was complete."""


class StateStoreError(StranglerError):
    """The state store cannot be reached; routing goes on with the last-known table."""


class AdminError(StranglerError):
    """An admin API call failed; ``status`` is the HTTP status, or 0 if unreachable;
    ``body`` the server's JSON answer (e.g. an aborted cutover's result), if any."""

    def __init__(self, message: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = body or {}
        super().__init__(message)


class SyncError(StranglerError):
    """Change data capture failed as a whole (source or target unreachable, bad setup)."""


class ChangeEventError(SyncError):
    """One change event cannot be applied; it is dead-lettered with this message."""
