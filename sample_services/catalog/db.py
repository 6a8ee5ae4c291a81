"""The catalog service's own database: one ``products`` table, created by the service.

    products   id PK (kept equal to the legacy PROD_ID), sku UNIQUE, name,
               price NUMERIC(12,2), active BOOLEAN,
               category 'hardware' | 'garden' | 'kitchen' | 'toys'

The CDC sync writes into it (key ``products.id``; ``price`` as ``Decimal``,
``active`` as ``bool``).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Engine, Integer, MetaData, Numeric, String, Table

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sku", String(20), nullable=False, unique=True),
    Column("name", String(80), nullable=False),
    Column("price", Numeric(12, 2), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("category", String(20), nullable=False),
)

KEYS = {"products": ("id",)}
CATEGORIES = ("garden", "hardware", "kitchen", "toys")


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)
