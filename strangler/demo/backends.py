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
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError
from sqlalchemy import text

from strangler.devstack.localstack import LogicalPostgres, TansuBroker
from strangler.devstack.relay import DebeziumRelay
from strangler.errors import StranglerError
from strangler.sync.db import open_engine
from strangler.sync.sources.debezium_config import DebeziumOptions, connector_properties
from strangler.sync.watermark import WATERMARK_DDL


class StackError(StranglerError):
    """A piece of the demo stack could not start."""


class Backend(Protocol):
    name: str

    async def start(self, workdir: Path) -> None: ...

    async def stop(self) -> None: ...

    async def capture(self) -> None:
        """Start capturing the monolith's changes (called once it is seeded)."""
        ...

    @property
    def monolith_db(self) -> str: ...

    @property
    def service_db(self) -> str: ...

    def state_yaml(self) -> str:
        """The routes.yaml ``state:`` value (a URL, or a mapping in flow style)."""
        ...

    def sync_sources_yaml(self) -> str:
        """The ``sources:`` list of the ``sync:`` section, indented four spaces: the
        monolith's capture as ``monolith`` and, if :attr:`way_back`, the service's as
        ``service``."""
        ...

    @property
    def way_back(self) -> bool:
        """The service's database is captured too, so the customers context can move."""
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

    async def capture(self) -> None:
        return None  # the worker's SQLite source installs its own triggers

    @property
    def monolith_db(self) -> str:
        return f"sqlite:///{self.workdir / 'monolith.db'}"

    @property
    def service_db(self) -> str:
        return f"sqlite:///{self.workdir / 'customers.db'}"

    def state_yaml(self) -> str:
        return "memory://"

    way_back = True

    def sync_sources_yaml(self) -> str:
        return f"""\
    - name: monolith
      kind: sqlite                    # triggers write Debezium-shaped envelopes to a table
      options:
        database: {self.workdir / "monolith.db"}
        tables: [customer]
        poll_interval: 50ms
    - name: service                   # the service's database, for the way back
      kind: sqlite
      options:
        database: {self.workdir / "customers.db"}
        tables: [customers, addresses]
        poll_interval: 50ms
"""

    def describe(self) -> list[str]:
        return ["backend    embedded: SQLite files, memory:// state, SQLite capture source"]


class LocalBackend:
    """Real servers on this machine, wired as in production.

    A logical-decoding PostgreSQL cluster holds the monolith's and the service's
    databases; Redis holds the proxy's state (a namespace of its own, deleted at
    the end); Debezium's PostgreSQL connector (embedded, standing in for Kafka
    Connect) writes change events to a Tansu broker, and the worker consumes them
    with the ``kafka`` source — the path a deployment takes."""

    name = "local"
    topic = "monolith.changes"

    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/0") -> None:
        self.redis_url = redis_url
        self.namespace = f"demo-{secrets.token_hex(4)}"
        self.postgres: LogicalPostgres | None = None
        self.broker: TansuBroker | None = None
        self.relay: DebeziumRelay | None = None

    async def start(self, workdir: Path) -> None:
        await self._check_redis()
        self.postgres = LogicalPostgres(databases=("monolith", "customers"))
        await asyncio.to_thread(self.postgres.start)
        self.broker = TansuBroker()
        await asyncio.to_thread(self.broker.start)

    async def capture(self) -> None:
        """Start Debezium on the seeded monolith: snapshot, then stream, into the broker."""
        pg, broker = self._pg(), self._broker()
        options = DebeziumOptions(
            database=pg.url("monolith", driver="postgresql"),
            tables=("public.customer",),
            topic_prefix="monolith",
            offsets="file",
            offset_file=str(Path(pg.data_dir).parent / "debezium-offsets.dat"),
            # One topic for every captured table, one partition: the drain's watermark
            # then sits after every change committed before it (per-table topics would
            # let a consumer read the watermark before earlier customer changes).
            properties={
                "transforms": "route",
                "transforms.route.type": "io.debezium.transforms.ByLogicalTableRouter",
                "transforms.route.topic.regex": r"monolith\.public\..*",
                "transforms.route.topic.replacement": self.topic,
                "transforms.route.key.enforce.uniqueness": "false",
            },
        )
        # The drain's watermarks travel with the customer changes: their table must exist
        # before Debezium creates its (filtered) publication.
        await asyncio.to_thread(_ensure_watermarks, pg.url("monolith", driver="postgresql"))
        self.relay = DebeziumRelay(
            connector_properties("monolith", options), broker.bootstrap, partitions=1
        )
        await asyncio.to_thread(self.relay.ensure_topics, [self.topic])
        await asyncio.to_thread(self.relay.start)

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
        if self.relay is not None:
            await asyncio.to_thread(self.relay.stop)
        client = redis.from_url(self.redis_url)
        try:
            keys = [k async for k in client.scan_iter(f"strangler:{self.namespace}:*")]
            if keys:
                await client.delete(*keys)
        except RedisError:
            pass  # leftovers are namespaced and harmless; never fail the stop on them
        finally:
            await client.aclose()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)

    def _pg(self) -> LogicalPostgres:
        if self.postgres is None:
            raise StackError("the PostgreSQL cluster is not started")
        return self.postgres

    def _broker(self) -> TansuBroker:
        if self.broker is None:
            raise StackError("the Kafka broker is not started")
        return self.broker

    @property
    def monolith_db(self) -> str:
        return self._pg().url("monolith")

    @property
    def service_db(self) -> str:
        return self._pg().url("customers")

    def state_yaml(self) -> str:
        return f'{{url: "{self.redis_url}", namespace: {self.namespace}}}'

    way_back = True
    """The service's database is captured by Debezium embedded in the worker."""

    def sync_sources_yaml(self) -> str:
        return f"""\
    - name: monolith
      kind: kafka                     # Debezium change events from Kafka (here: Tansu)
      monolith: "{self._pg().url("monolith")}"   # what verify reads
      options:
        bootstrap_servers: {self._broker().bootstrap}
        topics: [{self.topic}]
        group_id: strangler-demo-{self.namespace}
        session_timeout_ms: 6000
        heartbeat_interval_ms: 1000
        max_poll_interval_ms: 10000
    - name: service                   # the way back: Debezium embedded in the worker
      kind: debezium
      options:
        database: "{self._pg().url("customers", driver="postgresql")}"
        tables: [public.customers, public.addresses]
        offsets: target
        offset_target: monolith
        poll_interval_ms: 50
"""

    def describe(self) -> list[str]:
        pg, broker = self._pg(), self._broker()
        return [
            f"backend    local: PostgreSQL (wal_level=logical) 127.0.0.1:{pg.port}, "
            f"Redis {self.redis_url} (namespace {self.namespace}),",
            f"           Debezium embedded -> Tansu broker {broker.bootstrap} "
            f"(topic {self.topic}) -> kafka source",
        ]


def _ensure_watermarks(url: str) -> None:
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(WATERMARK_DDL))
    finally:
        engine.dispose()
