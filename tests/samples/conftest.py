"""The sample migration on loopback: a seeded monolith, the two services filled from it.

The services' databases are filled the way the CDC sync fills them: every
monolith row goes through the data adapter as a snapshot (``op="r"``) change
event, and the writes are applied with plain SQLAlchemy (upsert by key).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, MetaData, Table, delete, insert, select, update

from adapters.catalog import ProductRows
from adapters.customers import CustomerRows
from sample_monolith import db as legacy_db
from sample_monolith.app import create_app as monolith_app
from sample_monolith.seed import seed
from sample_services.catalog import db as catalog_db
from sample_services.catalog.app import create_app as catalog_app
from sample_services.common import make_engine
from sample_services.customers import db as customers_db
from sample_services.customers.app import create_app as customers_app
from strangler.sync.model import ChangeEvent, Position, RowAdapter, RowDelete, RowWrite
from tests.support.net import serve_app


def snapshot_events(engine: Engine, table: Table) -> Iterable[ChangeEvent]:
    """Every row of a monolith table as a Debezium-style snapshot read event."""
    key = [c.name for c in table.primary_key.columns]
    with engine.connect() as conn:
        rows = conn.execute(select(table)).mappings().all()
    for seq, row in enumerate(rows):
        yield ChangeEvent(
            source="monolith",
            table=f"main.{table.name}",
            op="r",
            key={k: row[k] for k in key},
            before=None,
            after=dict(row),
            position=Position(0, seq),
            ts_ms=0,
            snapshot=True,
        )


def apply_writes(engine: Engine, metadata: MetaData, writes: Sequence[RowWrite]) -> None:
    """Upsert / delete by key, in order, in one transaction."""
    with engine.begin() as conn:
        for write in writes:
            table = metadata.tables[write.table]
            where = [table.c[k] == v for k, v in write.key.items()]
            if isinstance(write, RowDelete):
                conn.execute(delete(table).where(*where))
            elif not conn.execute(update(table).where(*where).values(**write.values)).rowcount:
                conn.execute(insert(table).values(**write.key, **write.values))


def copy_through(
    adapter: RowAdapter, source: Engine, table: Table, target: Engine, metadata: MetaData
) -> int:
    writes: list[RowWrite] = []
    for event in snapshot_events(source, table):
        writes.extend(adapter.map(event))
    apply_writes(target, metadata, writes)
    return len(writes)


@dataclass
class Migration:
    monolith: str
    customers: str
    catalog: str
    monolith_db: str
    customers_db: str
    catalog_db: str


def fill_services(monolith_url: str, customers_url: str, catalog_url: str) -> None:
    legacy = make_engine(monolith_url)
    targets: dict[str, Any] = {}
    try:
        for url, module, table, adapter in (
            (customers_url, customers_db, legacy_db.customer, CustomerRows()),
            (catalog_url, catalog_db, legacy_db.product, ProductRows()),
        ):
            target = targets[url] = make_engine(url)
            module.create_schema(target)
            copy_through(adapter, legacy, table, target, module.metadata)
    finally:
        legacy.dispose()
        for engine in targets.values():
            engine.dispose()


POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@contextlib.contextmanager
def postgres_databases(*names: str) -> Iterator[dict[str, str]]:
    """Throwaway databases on the machine's PostgreSQL; dropped afterwards."""
    run = uuid.uuid4().hex[:8]
    real = {name: f"samples_{run}_{name}" for name in names}
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        for db in real.values():
            conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield {name: f"{POSTGRES}/{db}" for name, db in real.items()}
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            for db in real.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


NAMES = ("shop", "customers", "catalog")
SCHEMAS = {
    "shop": legacy_db.metadata,
    "customers": customers_db.metadata,
    "catalog": catalog_db.metadata,
}


@pytest.fixture(scope="session")
def postgres_urls() -> Iterator[dict[str, str]]:
    """Three throwaway PostgreSQL databases for the whole session (creating one is slow)."""
    with postgres_databases(*NAMES) as urls:
        yield urls


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Empty databases for the shop, the customers and the catalog, on each engine."""
    if request.param == "sqlite":
        yield {name: f"sqlite:///{tmp_path / name}.db" for name in NAMES}
        return
    urls: dict[str, str] = request.getfixturevalue("postgres_urls")
    for name, url in urls.items():
        engine = make_engine(url)
        SCHEMAS[name].drop_all(engine)  # a fresh start: tables and their sequences
        engine.dispose()
    yield urls


@pytest.fixture
async def migration(databases: dict[str, str]) -> AsyncIterator[Migration]:
    """Monolith (80 customers, 200 orders, 40 products) and both services, data aligned."""
    urls = databases
    seed(urls["shop"], customers=80, orders=200, products=40, seed=11)
    fill_services(urls["shop"], urls["customers"], urls["catalog"])
    async with (
        serve_app(monolith_app(urls["shop"])) as monolith,
        serve_app(customers_app(urls["customers"])) as customers,
        serve_app(catalog_app(urls["catalog"])) as catalog,
    ):
        yield Migration(
            monolith, customers, catalog, urls["shop"], urls["customers"], urls["catalog"]
        )
