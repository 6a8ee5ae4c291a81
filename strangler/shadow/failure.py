"""Why a mirror got no answer to compare: :class:`MirrorFailure`.

A failed mirror is never an exception on its way up: the channel hands its
request a :class:`MirrorFailure` (what kind, and the detail a person reads),
and the observation keeps its text (``connect: cannot connect: ...``). Only
:attr:`FailureKind.TOO_LARGE` changes what is recorded (``skipped``, not an
``error``). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    CONNECT = "connect"
    """Refused, reset, or closed with the answer still owed."""
    TIMEOUT = "timeout"
    """No connection within ``connect_timeout``, or no byte within ``timeout``."""
    MALFORMED = "malformed answer"
    CIRCUIT_OPEN = "circuit open"
    """The target's breaker is open: failing, not tried."""
    CHANNEL_CLOSED = "shadow channel closed"
    TOO_LARGE = "too large"
    """The answer's body is over ``shadow.max_body``."""


@dataclass(frozen=True, slots=True)
class MirrorFailure:
    kind: FailureKind
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else str(self.kind)


CIRCUIT_OPEN = MirrorFailure(FailureKind.CIRCUIT_OPEN, "failing, not tried")
CHANNEL_CLOSED = MirrorFailure(FailureKind.CHANNEL_CLOSED)
TOO_LARGE = MirrorFailure(FailureKind.TOO_LARGE)
