"""Where the demo's data and state live: embedded (SQLite, memory://) or local servers.

A backend provides the database URLs of the monolith and the customers service,
the ``state:`` of the proxy and the ``sync:`` section that captures the
monolith, and starts/stops whatever servers that needs. The stack
(:mod:`strangler.demo.stack`) runs the same apps, proxy and steps on any backend.
Backends never start the apps or the proxy themselves.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from strangler.errors import StranglerError

if TYPE_CHECKING:
    from strangler.sync.localstack import LogicalPostgres


class StackError(StranglerError):
    """A piece of the demo stack could not start."""


class Backend(Protocol):
    name: str

    async def start(self, workdir: Path) -> None: ...

    async def stop(self) -> None: ...

    @property
    def monolith_db(self) -> str: ...

    @property
    def service_db(self) -> str: ...

    def state_yaml(self) -> str:
        """The routes.yaml ``state:`` value (a URL, or a mapping in flow style)."""
        ...

    def sync_sources_yaml(self) -> str:
        """The ``sources:`` list of the ``sync:`` section, indented four spaces."""
        ...

    def describe(self) -> list[str]:
        """Lines for the banner: what runs where."""
        ...


class EmbeddedBackend:
    """No servers: SQLite files in the work folder, state in the proxy's memory."""

    name = "embedded"

    def __init__(self) -> None:
        self.workdir = Path(".")

    async def start(self, workdir: Path) -> None:
        self.workdir = workdir
        for name in ("monolith.db", "customers.db"):
            for suffix in ("", "-wal", "-shm"):
                (workdir / (name + suffix)).unlink(missing_ok=True)

    async def stop(self) -> None:
        return None

    @property
    def monolith_db(self) -> str:
        return f"sqlite:///{self.workdir / 'monolith.db'}"

    @property
    def service_db(self) -> str:
        return f"sqlite:///{self.workdir / 'customers.db'}"

    def state_yaml(self) -> str:
        return "memory://"

    def sync_sources_yaml(self) -> str:
        return f"""\
    - name: monolith
      kind: sqlite                    # triggers write Debezium-shaped envelopes to a table
      options:
        database: {self.workdir / "monolith.db"}
        tables: [customer]
        poll_interval: 50ms
"""

    def describe(self) -> list[str]:
        return ["backend    embedded: SQLite files, memory:// state, SQLite capture source"]


class LocalBackend:
    """Real servers on this machine: a logical-decoding PostgreSQL cluster (monolith and
    service databases), Redis for the proxy's state (a namespace of its own, deleted at
    the end), and Debezium embedded capturing the monolith (``kind: debezium``)."""

    name = "local"

    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/0") -> None:
        self.redis_url = redis_url
        self.namespace = f"demo-{secrets.token_hex(4)}"
        self.postgres: LogicalPostgres | None = None
        self.workdir = Path(".")

    async def start(self, workdir: Path) -> None:
        self.workdir = workdir
        # Imported here: the embedded demo must not need the local-servers tooling.
        from strangler.sync.localstack import LogicalPostgres

        await self._check_redis()
        self.postgres = LogicalPostgres(databases=("monolith", "customers"))
        await asyncio.to_thread(self.postgres.start)

    async def _check_redis(self) -> None:
        client = redis.from_url(self.redis_url)
        try:
            await client.ping()
        except RedisError as exc:
            raise StackError(
                f"Redis at {self.redis_url} does not answer ({exc}); start redis-server"
            ) from exc
        finally:
            await client.aclose()

    async def stop(self) -> None:
        client = redis.from_url(self.redis_url)
        try:
            keys = [k async for k in client.scan_iter(f"strangler:{self.namespace}:*")]
            if keys:
                await client.delete(*keys)
        except RedisError:
            pass  # leftovers are namespaced and harmless; never fail the stop on them
        finally:
            await client.aclose()
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)

    def _pg(self) -> LogicalPostgres:
        if self.postgres is None:
            raise StackError("the PostgreSQL cluster is not started")
        return self.postgres

    @property
    def monolith_db(self) -> str:
        return self._pg().url("monolith")

    @property
    def service_db(self) -> str:
        return self._pg().url("customers")

    def state_yaml(self) -> str:
        return f'{{url: "{self.redis_url}", namespace: {self.namespace}}}'

    def sync_sources_yaml(self) -> str:
        return f"""\
    - name: monolith
      kind: debezium                  # Debezium's PostgreSQL connector, embedded (pgoutput)
      options:
        database: "{self._pg().url("monolith", driver="postgresql")}"
        tables: [public.customer]
        offsets: target
"""

    def describe(self) -> list[str]:
        pg = self._pg()
        return [
            f"backend    local: PostgreSQL (wal_level=logical) on 127.0.0.1:{pg.port}, "
            f"Redis {self.redis_url} (namespace {self.namespace}), Debezium embedded",
        ]
