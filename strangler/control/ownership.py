"""Moved to :mod:`strangler.ownership`: the routing table reads a context's owner, and
routing sits below the control plane (see .importlinter). The names stay importable
from here; new code imports them from ``strangler.ownership``."""

from strangler.ownership import (
    DRAINING,
    HOLDING,
    OWNERS,
    STEADY,
    Owner,
    Ownership,
    dump_ownership,
    load_ownership,
    unowned,
)

__all__ = [
    "DRAINING",
    "HOLDING",
    "OWNERS",
    "STEADY",
    "Owner",
    "Ownership",
    "dump_ownership",
    "load_ownership",
    "unowned",
]
