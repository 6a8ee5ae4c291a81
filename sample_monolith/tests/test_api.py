"""The monolith's legacy API and screens, as its existing clients use them."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from sample_monolith.seed import seed

LEGACY_CUSTOMER_FIELDS = {
    "CUST_ID",
    "CUST_NM",
    "EMAIL_ADDR",
    "STATUS_CD",
    "CREATED_YYYYMMDD",
    "PHONE_NO",
    "ADDR_LINE1",
    "ADDR_CITY",
    "ADDR_ZIP",
    "CREDIT_LIMIT_CENTS",
}


async def test_customer_list_pages_in_legacy_shape(shop: aiohttp.ClientSession) -> None:
    async with shop.get("/api/customers", params={"page": "2", "size": "25"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["TOTAL_CNT"] == 60
    assert (body["PAGE_NO"], body["PAGE_SZ"]) == (2, 25)
    assert [c["CUST_ID"] for c in body["CUSTOMERS"]] == list(range(26, 51))
    assert set(body["CUSTOMERS"][0]) == LEGACY_CUSTOMER_FIELDS
    assert re.fullmatch(r"\d{14}", body["AS_OF_TS"])


async def test_customer_list_filters_by_status_code(shop: aiohttp.ClientSession) -> None:
    async with shop.get("/api/customers", params={"status": "I", "size": "200"}) as resp:
        body = await resp.json()
    assert body["CUSTOMERS"]
    assert {c["STATUS_CD"] for c in body["CUSTOMERS"]} == {"I"}
    assert body["TOTAL_CNT"] == len(body["CUSTOMERS"])


async def test_bad_paging_is_a_legacy_400(shop: aiohttp.ClientSession) -> None:
    for params, message in (
        ({"page": "0"}, "INVALID PARAM: page"),
        ({"size": "500"}, "INVALID PARAM: size"),
        ({"status": "X"}, "INVALID PARAM: status"),
    ):
        async with shop.get("/api/customers", params=params) as resp:
            assert resp.status == 400
            assert await resp.json() == {"ERR_CD": "E400", "ERR_MSG": message}


async def test_one_customer_uses_legacy_formats(shop: aiohttp.ClientSession) -> None:
    async with shop.get("/api/customers/7") as resp:
        assert resp.status == 200
        c = await resp.json()
    assert c["CUST_ID"] == 7
    assert c["STATUS_CD"] in ("A", "I")
    assert re.fullmatch(r"\d{8}", c["CREATED_YYYYMMDD"])
    assert isinstance(c["CREDIT_LIMIT_CENTS"], str) and c["CREDIT_LIMIT_CENTS"].isdigit()


async def test_unknown_customer_is_legacy_404(shop: aiohttp.ClientSession) -> None:
    for path in ("/api/customers/999", "/api/customers/abc"):
        async with shop.get(path) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ERR_CD": "E404", "ERR_MSG": "CUSTOMER NOT FOUND"}


async def test_create_then_update_customer(shop: aiohttp.ClientSession) -> None:
    new = {"CUST_NM": "Rita Hayworth", "EMAIL_ADDR": "rita@example.com", "ADDR_CITY": "Salem"}
    async with shop.post("/api/customers", json=new) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert created["CUST_ID"] == 61
    assert created["STATUS_CD"] == "A"
    assert (created["PHONE_NO"], created["ADDR_LINE1"], created["ADDR_CITY"]) == ("", "", "Salem")
    assert created["CREDIT_LIMIT_CENTS"] == "0"

    change = {"STATUS_CD": "I", "CREDIT_LIMIT_CENTS": "150075", "PHONE_NO": None}
    async with shop.put("/api/customers/61", json=change) as resp:
        assert resp.status == 200
        updated = await resp.json()
    assert updated == {**created, "STATUS_CD": "I", "CREDIT_LIMIT_CENTS": "150075"}
    async with shop.get("/api/customers/61") as resp:
        assert await resp.json() == updated


async def test_customer_validation_reports_first_bad_field(shop: aiohttp.ClientSession) -> None:
    cases = (
        ({"EMAIL_ADDR": "x@example.com"}, "MISSING FIELD: CUST_NM"),
        ({"CUST_NM": "X", "EMAIL_ADDR": "nope"}, "INVALID FIELD: EMAIL_ADDR"),
        ({"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "STATUS_CD": "Z"}, "INVALID FIELD: STATUS_CD"),
        (
            {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "CREDIT_LIMIT_CENTS": 100},
            "INVALID FIELD: CREDIT_LIMIT_CENTS",
        ),
    )
    for body, message in cases:
        async with shop.post("/api/customers", json=body) as resp:
            assert resp.status == 400
            assert (await resp.json())["ERR_MSG"] == message
    async with shop.post("/api/customers", data=b"{not json") as resp:
        assert (await resp.json())["ERR_MSG"] == "MALFORMED REQUEST"
    async with shop.put("/api/customers/999", json={"CUST_NM": "Nobody"}) as resp:
        assert resp.status == 404


async def test_products_list_and_filter(shop: aiohttp.ClientSession) -> None:
    async with shop.get("/api/products") as resp:
        body = await resp.json()
    assert body["TOTAL_CNT"] == 30 == len(body["PRODUCTS"])
    async with shop.get("/api/products", params={"category": "KT"}) as resp:
        kitchen = (await resp.json())["PRODUCTS"]
    assert kitchen and {p["CATEGORY_CD"] for p in kitchen} == {"KT"}
    async with shop.get(f"/api/products/{kitchen[0]['PROD_ID']}") as resp:
        assert await resp.json() == kitchen[0]
    async with shop.get("/api/products/9999") as resp:
        assert (resp.status, (await resp.json())["ERR_MSG"]) == (404, "PRODUCT NOT FOUND")


async def test_orders_join_customer_names(shop: aiohttp.ClientSession) -> None:
    async with shop.get("/api/customers/3") as resp:
        customer = await resp.json()
    async with shop.get("/api/orders", params={"cust_id": "3"}) as resp:
        orders = (await resp.json())["ORDERS"]
    for order in orders:
        assert (order["CUST_ID"], order["CUST_NM"]) == (3, customer["CUST_NM"])
    async with shop.get("/api/orders/1") as resp:
        order = await resp.json()
    assert order["LINES"]
    assert sum(int(x["UNIT_PRICE_CENTS"]) * x["QTY"] for x in order["LINES"]) == int(
        order["ORD_TOTAL_CENTS"]
    )


async def test_place_order_prices_from_catalog(shop: aiohttp.ClientSession) -> None:
    async with shop.get("/api/products") as resp:
        active = [p for p in (await resp.json())["PRODUCTS"] if p["ACTIVE_FLG"] == "Y"]
    lines = [
        {"PROD_ID": active[0]["PROD_ID"], "QTY": 2},
        {"PROD_ID": active[1]["PROD_ID"], "QTY": 1},
    ]
    async with shop.post("/api/orders", json={"CUST_ID": 5, "LINES": lines}) as resp:
        assert resp.status == 201
        order = await resp.json()
    expected = 2 * int(active[0]["PRICE_CENTS"]) + int(active[1]["PRICE_CENTS"])
    assert order["ORD_TOTAL_CENTS"] == str(expected)
    assert order["ORD_STATUS_CD"] == "N"
    async with shop.post("/api/orders", json={"CUST_ID": 999, "LINES": lines}) as resp:
        assert (resp.status, (await resp.json())["ERR_MSG"]) == (404, "CUSTOMER NOT FOUND")


async def test_html_screens(shop: aiohttp.ClientSession) -> None:
    async with shop.get("/customers") as resp:
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert "<h1>Customers</h1>" in page and "/customers/1'" in page
    async with shop.get("/customers/3") as resp:
        assert "credit limit" in await resp.text()
    async with shop.get("/orders/1") as resp:
        assert resp.status == 200 and "Order 1" in await resp.text()


def test_seed_is_deterministic_and_refuses_to_double(tmp_path: Path) -> None:
    dumps = []
    for name in ("a.db", "b.db"):
        url = f"sqlite:///{tmp_path / name}"
        seed(url, customers=20, orders=30, products=5, seed=3)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            dumps.append(conn.exec_driver_sql("SELECT * FROM customer ORDER BY cust_id").all())
        engine.dispose()
    assert dumps[0] == dumps[1] and len(dumps[0]) == 20
    with pytest.raises(ValueError, match="already has customers"):
        seed(f"sqlite:///{tmp_path / 'a.db'}", customers=5, orders=0, products=0)
