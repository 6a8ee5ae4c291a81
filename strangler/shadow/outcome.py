"""What became of one sampled request: :class:`ShadowOutcome`.

A sampled request is compared (``match``, ``mismatch``, or ``error`` when a
side failed) or not compared at all: ``dropped`` (the in-flight bound was
full) or ``skipped`` (a body over ``shadow.max_body``). The values are the
words the store, the metrics and the API use, so a member is also that
string. Nothing here does I/O.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class ShadowOutcome(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    ERROR = "error"
    """A side failed (refused, timeout, adapter...): nothing to compare."""
    DROPPED = "dropped"
    """Not mirrored: the in-flight bound was full."""
    SKIPPED = "skipped"
    """Not compared: a body over ``shadow.max_body``."""


Compared = Literal[ShadowOutcome.MATCH, ShadowOutcome.MISMATCH, ShadowOutcome.ERROR]
"""The outcomes a comparison can have."""

MATCH: Compared = ShadowOutcome.MATCH
MISMATCH: Compared = ShadowOutcome.MISMATCH
ERROR: Compared = ShadowOutcome.ERROR
