"""The monolith's one database: the legacy schema and how to open it.

The model is what the monolith grew up with, kept as is because the migration
must not touch it: upper-case abbreviated names in the DDL (stored folded to
lower case, as PostgreSQL does with unquoted identifiers), one-letter status
codes, money as strings of cents, dates as ``YYYYMMDD`` strings, blanks rather
than NULLs, the customer's address inline on the customer.

    customer     cust_id PK, cust_nm, email_addr, status_cd 'A'/'I', created_yyyymmdd,
                 phone_no, addr_line1, addr_city, addr_zip, credit_limit_cents
    product      prod_id PK, prod_sku, prod_nm, price_cents, active_flg 'Y'/'N', category_cd
    orders       ord_id PK, cust_id -> customer, ord_total_cents, ord_status_cd, ord_dt
    order_lines  (ord_id, line_no) PK, prod_id -> product, qty, unit_price_cents

Nothing here reads the environment or holds a connection at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

metadata = MetaData()

customer = Table(
    "customer",
    metadata,
    Column("cust_id", Integer, primary_key=True, autoincrement=True),
    Column("cust_nm", String(80), nullable=False),
    Column("email_addr", String(120), nullable=False),
    Column("status_cd", String(1), nullable=False, server_default="A"),
    Column("created_yyyymmdd", String(8), nullable=False),
    Column("phone_no", String(20), nullable=False, server_default=""),
    Column("addr_line1", String(80), nullable=False, server_default=""),
    Column("addr_city", String(40), nullable=False, server_default=""),
    Column("addr_zip", String(10), nullable=False, server_default=""),
    Column("credit_limit_cents", String(12), nullable=False, server_default="0"),
)

product = Table(
    "product",
    metadata,
    Column("prod_id", Integer, primary_key=True, autoincrement=True),
    Column("prod_sku", String(20), nullable=False, unique=True),
    Column("prod_nm", String(80), nullable=False),
    Column("price_cents", String(12), nullable=False),
    Column("active_flg", String(1), nullable=False, server_default="Y"),
    Column("category_cd", String(2), nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("ord_id", Integer, primary_key=True, autoincrement=True),
    Column("cust_id", Integer, ForeignKey("customer.cust_id"), nullable=False, index=True),
    Column("ord_total_cents", String(12), nullable=False),
    Column("ord_status_cd", String(1), nullable=False),
    Column("ord_dt", String(8), nullable=False),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("ord_id", Integer, ForeignKey("orders.ord_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("prod_id", Integer, ForeignKey("product.prod_id"), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price_cents", String(12), nullable=False),
)

ORDER_STATUS = {"N": "NEW", "P": "PAID", "S": "SHIPPED", "C": "CANCELLED"}
CATEGORY = {"HW": "HARDWARE", "GD": "GARDEN", "KT": "KITCHEN", "TY": "TOYS"}


def make_engine(db_url: str) -> Engine:
    """An engine for ``sqlite:///file``, ``sqlite://`` (memory) or ``postgresql+psycopg://``.

    SQLite files run in WAL mode so readers (the shop's pages, a CDC capture)
    never wait for a writer; an in-memory database is one shared connection so
    every thread sees the same data.
    """
    if db_url.startswith("sqlite"):
        memory = db_url in ("sqlite://", "sqlite:///:memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(db_url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if db_url.startswith("postgresql://"):
        db_url = "postgresql+psycopg://" + db_url.removeprefix("postgresql://")
    return create_engine(db_url, pool_size=5, max_overflow=10, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create the legacy tables if they are missing (an existing database is left alone)."""
    metadata.create_all(engine)


async def run(fn: Callable[[], T]) -> T:
    """Run blocking database work off the event loop (the drivers are synchronous)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn)
