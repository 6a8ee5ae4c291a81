"""Fixtures of the control plane's tests (a private redis-server) reused here."""

from tests.control.conftest import namespace, redis_server, redis_store, redis_up

__all__ = ["namespace", "redis_server", "redis_store", "redis_up"]
