"""The customers service's own API, as its new clients use it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sample_services.customers.app import create_app
from tests.support.net import serve_app

ADA = {
    "name": "Ada Berger",
    "email": "ada@example.com",
    "phone": "+1-555-0100",
    "address": {"line1": "12 Oak St", "city": "Salem", "zip": "97301"},
    "credit_limit": "2500.50",
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    async with (
        serve_app(create_app(f"sqlite:///{tmp_path / 'customers.db'}")) as base,
        aiohttp.ClientSession(base) as session,
    ):
        yield session


async def test_create_and_read_a_customer(client: aiohttp.ClientSession) -> None:
    async with client.post("/v2/customers", json=ADA) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert created == {
        "id": 1,
        "name": "Ada Berger",
        "email": "ada@example.com",
        "status": "active",
        "created_at": dt.datetime.now(dt.UTC).date().isoformat(),
        "phone": "+1-555-0100",
        "credit_limit": "2500.50",
        "addresses": [{"kind": "primary", "line1": "12 Oak St", "city": "Salem", "zip": "97301"}],
    }
    async with client.get("/v2/customers/1") as resp:
        assert await resp.json() == created


async def test_partial_update_merges_the_address(client: aiohttp.ClientSession) -> None:
    async with client.post("/v2/customers", json=ADA) as resp:
        assert resp.status == 201
    change = {"status": "inactive", "address": {"city": "Franklin"}, "phone": None}
    async with client.put("/v2/customers/1", json=change) as resp:
        updated = await resp.json()
    assert updated["status"] == "inactive" and updated["phone"] is None
    assert updated["addresses"] == [
        {"kind": "primary", "line1": "12 Oak St", "city": "Franklin", "zip": "97301"}
    ]
    blank = {"address": {"line1": "", "city": "", "zip": ""}}
    async with client.put("/v2/customers/1", json=blank) as resp:
        assert (await resp.json())["addresses"] == []


async def test_list_windows_and_filters(client: aiohttp.ClientSession) -> None:
    for i in range(5):
        body = {"name": f"C{i}", "email": f"c{i}@example.com"}
        if i % 2:
            body["status"] = "inactive"
        async with client.post("/v2/customers", json=body) as resp:
            assert resp.status == 201
    async with client.get("/v2/customers", params={"offset": "1", "limit": "2"}) as resp:
        page = await resp.json()
    assert [c["id"] for c in page["items"]] == [2, 3]
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    async with client.get("/v2/customers", params={"status": "inactive"}) as resp:
        inactive = await resp.json()
    assert [c["id"] for c in inactive["items"]] == [2, 4] and inactive["total"] == 2


async def test_errors_name_the_field(client: aiohttp.ClientSession) -> None:
    cases = [
        ({"email": "x@example.com"}, "missing", "name"),
        ({"name": "X", "email": "not-an-email"}, "invalid", "email"),
        ({"name": "X", "email": "x@y.io", "credit_limit": 10.5}, "invalid", "credit_limit"),
        ({"name": "X", "email": "x@y.io", "address": {"zip": "x" * 11}}, "invalid", "address.zip"),
    ]
    for body, code, field in cases:
        async with client.post("/v2/customers", json=body) as resp:
            assert resp.status == 422
            error = (await resp.json())["error"]
        assert (error["code"], error["field"], error["in"]) == (code, field, "body")
    async with client.get("/v2/customers", params={"limit": "0"}) as resp:
        error = (await resp.json())["error"]
    assert (resp.status, error["field"], error["in"]) == (422, "limit", "query")
    async with client.get("/v2/customers/42") as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    async with client.post("/v2/customers", data=b"[1, 2]") as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "bad_json")


async def test_mirrored_writes_are_refused(client: aiohttp.ClientSession) -> None:
    async with client.post("/v2/customers", json=ADA, headers={"X-Strangler-Shadow": "1"}) as resp:
        assert resp.status == 409
    async with client.get("/v2/customers") as resp:
        assert (await resp.json())["total"] == 0
