"""A legacy client gets the same answers from the monolith as from a service behind its adapter.

For every migrated endpoint (``/api/customers``, ``/api/customers/{id}``, POST and
PUT, ``/api/products``, ``/api/products/{id}``), with the services' databases
filled from the monolith's rows through the data adapters: the answers must be
identical once the volatile ``AS_OF_TS`` stamp is set aside.
"""

from __future__ import annotations

import json

import aiohttp

from adapters.catalog import ProductApi
from adapters.customers import CustomerApi, CustomerApiWholeUnits
from strangler.adapter import HttpAdapter
from tests.samples.conftest import Migration
from tests.samples.exchange import adapted, direct, legacy_request

CUSTOMER_READS = [
    "/api/customers",
    "/api/customers?page=2&size=25",
    "/api/customers?page=4&size=25",
    "/api/customers?status=I&size=200",
    "/api/customers?status=A&page=2&size=10",
    "/api/customers?page=0",
    "/api/customers?page=abc",
    "/api/customers?size=500",
    "/api/customers?size=0",
    "/api/customers?status=X",
    "/api/customers?status=active",
    "/api/customers/999",
    "/api/customers/abc",
    *[f"/api/customers/{i}" for i in range(1, 81)],
]
PRODUCT_READS = [
    "/api/products",
    "/api/products?category=KT",
    "/api/products?category=HW",
    "/api/products?category=XX",
    "/api/products?category=kitchen",
    "/api/products/999",
    *[f"/api/products/{i}" for i in range(1, 41)],
]
CUSTOMER_WRITES: list[tuple[str, str, object]] = [
    ("POST", "/api/customers", {"CUST_NM": "Rita Hayworth", "EMAIL_ADDR": "rita@example.com"}),
    (
        "POST",
        "/api/customers",
        {
            "CUST_NM": "Omar Khan",
            "EMAIL_ADDR": "omar@example.com",
            "STATUS_CD": "I",
            "PHONE_NO": "+1-555-0199",
            "ADDR_LINE1": "1 Mill St",
            "ADDR_CITY": "Salem",
            "ADDR_ZIP": "97301",
            "CREDIT_LIMIT_CENTS": "1234567",
            "UNKNOWN": "ignored",
        },
    ),
    ("POST", "/api/customers", {"EMAIL_ADDR": "x@example.com"}),
    ("POST", "/api/customers", {"CUST_NM": "X", "EMAIL_ADDR": "bad"}),
    ("POST", "/api/customers", {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "STATUS_CD": "Z"}),
    ("POST", "/api/customers", {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "PHONE_NO": 5}),
    ("POST", "/api/customers", {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "ADDR_ZIP": "0" * 11}),
    ("POST", "/api/customers", {"CUST_NM": "", "EMAIL_ADDR": "x@y.io"}),
    (
        "POST",
        "/api/customers",
        {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "CREDIT_LIMIT_CENTS": 100},
    ),
    (
        "POST",
        "/api/customers",
        {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "CREDIT_LIMIT_CENTS": "1.5"},
    ),
    ("POST", "/api/customers", {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "STATUS_CD": "active"}),
    ("POST", "/api/customers", {"CUST_NM": "X", "EMAIL_ADDR": "x@y.io", "STATUS_CD": ["A"]}),
    ("POST", "/api/customers", "not json"),
    ("POST", "/api/customers", [1, 2]),
    ("PUT", "/api/customers/5", {"STATUS_CD": "I", "CREDIT_LIMIT_CENTS": "99999"}),
    ("PUT", "/api/customers/6", {"ADDR_CITY": "Franklin"}),
    ("PUT", "/api/customers/7", {"ADDR_LINE1": "", "ADDR_CITY": "", "ADDR_ZIP": ""}),
    ("PUT", "/api/customers/8", {"PHONE_NO": None}),
    ("PUT", "/api/customers/9", {"PHONE_NO": ""}),
    ("PUT", "/api/customers/10", {}),
    ("PUT", "/api/customers/11", {"EMAIL_ADDR": "nope"}),
    ("PUT", "/api/customers/999", {"CUST_NM": "Nobody"}),
    ("PUT", "/api/customers/abc", {"CUST_NM": "Nobody"}),
    ("PUT", "/api/customers/12", "not json"),
]


async def _compare(
    base_new: str,
    base_legacy: str,
    adapter: HttpAdapter,
    method: str,
    target: str,
    body: bytes = b"",
) -> None:
    request = legacy_request(method, target, body)
    async with aiohttp.ClientSession() as session:
        legacy = (await direct(session, base_legacy, request)).normalised()
        new = (await adapted(session, base_new, adapter, request)).normalised()
    assert new == legacy, f"{method} {target} {body!r}"


async def test_customer_reads_are_identical(migration: Migration) -> None:
    for target in CUSTOMER_READS:
        await _compare(migration.customers, migration.monolith, CustomerApi(), "GET", target)


async def test_product_reads_are_identical(migration: Migration) -> None:
    for target in PRODUCT_READS:
        await _compare(migration.catalog, migration.monolith, ProductApi(), "GET", target)


async def test_customer_writes_are_identical(migration: Migration) -> None:
    # Each side applies the same writes to its own database; ids stay in step because the
    # service's ids were copied from the monolith.
    for method, target, payload in CUSTOMER_WRITES:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        await _compare(migration.customers, migration.monolith, CustomerApi(), method, target, body)
    for target in ("/api/customers?page=2&size=50", "/api/customers/81", "/api/customers/82"):
        await _compare(migration.customers, migration.monolith, CustomerApi(), "GET", target)


async def test_first_draft_adapter_differs_only_in_credit_limit_cents(
    migration: Migration,
) -> None:
    """The demo's deliberate mismatch: whole-unit rounding shows up in one field only."""
    mismatched = 0
    async with aiohttp.ClientSession() as session:
        for i in range(1, 81):
            request = legacy_request("GET", f"/api/customers/{i}")
            legacy = await direct(session, migration.monolith, request)
            draft = await adapted(session, migration.customers, CustomerApiWholeUnits(), request)
            differing = {k for k in legacy.body if legacy.body[k] != draft.body[k]}
            cents = legacy.body["CREDIT_LIMIT_CENTS"]
            if cents.endswith("00"):
                assert differing == set()
            else:
                mismatched += 1
                assert differing == {"CREDIT_LIMIT_CENTS"}
                assert draft.body["CREDIT_LIMIT_CENTS"].endswith("00")
    assert 10 <= mismatched <= 50  # about a third of the seeded customers
