"""The catalog service's API over rows written the way the CDC sync writes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import create_engine, insert

from sample_services.catalog.app import create_app
from sample_services.catalog.db import create_schema, products
from tests.support.net import serve_app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = create_engine(url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(products),
            [
                {
                    "id": 1,
                    "sku": "KT-00001",
                    "name": "Kettle",
                    "price": Decimal("19.99"),
                    "active": True,
                    "category": "kitchen",
                },
                {
                    "id": 2,
                    "sku": "TY-00002",
                    "name": "Kite",
                    "price": Decimal("7.50"),
                    "active": False,
                    "category": "toys",
                },
            ],
        )
    engine.dispose()
    async with serve_app(create_app(url)) as base, aiohttp.ClientSession(base) as session:
        yield session


async def test_products_in_the_new_shape(client: aiohttp.ClientSession) -> None:
    async with client.get("/v2/products") as resp:
        body = await resp.json()
    assert body["total"] == 2
    assert body["items"][1] == {
        "id": 2,
        "sku": "TY-00002",
        "name": "Kite",
        "price": "7.50",
        "active": False,
        "category": "toys",
    }
    async with client.get("/v2/products", params={"category": "kitchen"}) as resp:
        assert [p["sku"] for p in (await resp.json())["items"]] == ["KT-00001"]
    async with client.get("/v2/products/1") as resp:
        assert (await resp.json())["price"] == "19.99"


async def test_unknown_product_and_category(client: aiohttp.ClientSession) -> None:
    async with client.get("/v2/products/9") as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    async with client.get("/v2/products", params={"category": "HW"}) as resp:
        assert (resp.status, (await resp.json())["error"]["field"]) == (422, "category")
