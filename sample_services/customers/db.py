"""The customers service's own database: its schema, created by the service itself.

    customers   id PK (kept equal to the legacy CUST_ID), name, email,
                status 'active' | 'inactive', created_at DATE, phone (NULL = none),
                credit_limit NUMERIC(12,2)
    addresses   (customer_id -> customers.id ON DELETE CASCADE, kind) PK,
                line1, city, zip; kind 'primary' is the one the monolith knows about

The CDC sync writes into these same tables (``metadata`` is what it and
``strangler verify`` use): keys ``customers.id`` and
``addresses.(customer_id, kind)``; values as Python ``date`` and ``Decimal``.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(80), nullable=False),
    Column("email", String(120), nullable=False),
    Column("status", String(8), nullable=False),
    Column("created_at", Date, nullable=False),
    Column("phone", String(20), nullable=True),
    Column("credit_limit", Numeric(12, 2), nullable=False),
)

addresses = Table(
    "addresses",
    metadata,
    Column(
        "customer_id",
        Integer,
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", String(10), primary_key=True),
    Column("line1", String(80), nullable=False),
    Column("city", String(40), nullable=False),
    Column("zip", String(10), nullable=False),
)

KEYS = {"customers": ("id",), "addresses": ("customer_id", "kind")}
"""Each table's key columns: what a sync write's ``key`` names."""


def create_schema(engine: Engine) -> None:
    """Create the tables if missing (idempotent; an existing database is left alone)."""
    metadata.create_all(engine)
