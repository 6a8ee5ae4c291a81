"""Drain: wait until sync has applied every write of a context's old owner to the other side.

PLACEHOLDER written by the control side (12b) with the signature of the issue-12
contract (section C) so the cutover sequence can run before the data side's
implementation is merged; engineer 12a's module replaces this file whole.
Without a ``sync:`` section there is nothing to drain. With one, this placeholder
cannot take a position, so it raises :class:`DrainTimeout` (the cutover aborts
and nothing moves).
"""

from __future__ import annotations

from dataclasses import dataclass

from strangler.config import Config
from strangler.control.ownership import Owner
from strangler.errors import StranglerError


@dataclass(frozen=True)
class Drained:
    position: str
    """The old owner's position that sync has applied up to (LSN, change id, offsets)."""
    seconds: float


class DrainTimeout(StranglerError):
    """Sync did not apply everything up to the old owner's position in time."""


async def drain(config: Config, context: str, owner: Owner, timeout: float) -> Drained:
    if config.sync is None:
        return Drained("none", 0.0)
    raise DrainTimeout(f"context {context!r}: draining {owner}'s writes is not available yet")


async def lag_seconds(config: Config, context: str, owner: Owner) -> float:
    return 0.0
