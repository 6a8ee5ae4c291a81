"""Open the state store ``state:`` names in routes.yaml.

Apart from :mod:`strangler.control.state` (the protocol and the in-process
store) and :mod:`strangler.control.redis_store` so neither imports the other.
"""

from __future__ import annotations

from strangler.config import StateConfig
from strangler.control.redis_store import RedisStateStore
from strangler.control.state import MemoryStateStore, StateStore


def open_store(config: StateConfig) -> StateStore:
    """The store ``state:`` names. Does not connect yet (Redis connects on first use)."""
    if config.url == "memory://":
        return MemoryStateStore()
    return RedisStateStore(config.url, config.namespace)
