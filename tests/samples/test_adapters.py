"""Every adapter of the sample migration, both ways, without servers."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from adapters.catalog import ProductApi, ProductRows
from adapters.customers import CustomerApi, CustomerApiWholeUnits, CustomerRows
from strangler.adapter import HttpAdapter
from strangler.errors import AdapterError, ChangeEventError
from strangler.message import HttpRequest, HttpResponse, make_headers
from strangler.sync.model import ChangeEvent, Position, RowAdapter, RowDelete, RowUpsert

JSON = make_headers({"Content-Type": "application/json; charset=utf-8"})
LEGACY_ROW = {
    "cust_id": 7,
    "cust_nm": "Ada Berger",
    "email_addr": "ada.berger7@example.com",
    "status_cd": "I",
    "created_yyyymmdd": "20190304",
    "phone_no": "",
    "addr_line1": "12 Oak St",
    "addr_city": "Salem",
    "addr_zip": "97301",
    "credit_limit_cents": "250050",
}
SERVICE_CUSTOMER = {
    "id": 7,
    "name": "Ada Berger",
    "email": "ada.berger7@example.com",
    "status": "inactive",
    "created_at": "2019-03-04",
    "phone": None,
    "credit_limit": "2500.50",
    "addresses": [{"kind": "primary", "line1": "12 Oak St", "city": "Salem", "zip": "97301"}],
}
LEGACY_CUSTOMER = {k.upper(): v for k, v in LEGACY_ROW.items()}


def _event(
    op: str, after: dict[str, Any] | None, before: dict[str, Any] | None = None
) -> ChangeEvent:
    row = after or before or {}
    key = {k: v for k, v in row.items() if k.lower() in ("cust_id", "prod_id")}
    return ChangeEvent("monolith", "public.customer", op, key, before, after, Position(1, 1), 0)  # type: ignore[arg-type]


def _response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers=JSON, body=json.dumps(data).encode())


def test_adapters_satisfy_the_protocols() -> None:
    for http in (CustomerApi(), CustomerApiWholeUnits(), ProductApi()):
        assert isinstance(http, HttpAdapter)
    for rows in (CustomerRows(), ProductRows()):
        assert isinstance(rows, RowAdapter)


# ---------------------------------------------------------------- customers, HTTP


def test_customer_request_moves_path_and_translates_query() -> None:
    req = CustomerApi().request(HttpRequest(path="/api/customers", query="page=3&size=20&status=A"))
    assert req.path == "/v2/customers"
    assert req.query == "offset=40&limit=20&status=active"
    one = CustomerApi().request(HttpRequest(path="/api/customers/7", query="x=1"))
    assert (one.path, one.query) == ("/v2/customers/7", "")


def test_customer_request_translates_the_body() -> None:
    body = {
        "CUST_NM": "Ada",
        "EMAIL_ADDR": "a@b.io",
        "STATUS_CD": "I",
        "PHONE_NO": "",
        "ADDR_CITY": "Salem",
        "CREDIT_LIMIT_CENTS": "250050",
        "CUST_ID": 99,
    }
    legacy = HttpRequest(
        method="POST", path="/api/customers", headers=JSON, body=json.dumps(body).encode()
    )
    sent = CustomerApi().request(legacy)
    assert sent.path == "/v2/customers"
    assert sent.json() == {
        "name": "Ada",
        "email": "a@b.io",
        "status": "inactive",
        "phone": None,
        "address": {"city": "Salem"},
        "credit_limit": "2500.50",
    }


def test_customer_request_makes_refused_values_refused_again() -> None:
    body = {"STATUS_CD": "active", "CREDIT_LIMIT_CENTS": "1.5"}
    legacy = HttpRequest(
        method="PUT", path="/api/customers/1", headers=JSON, body=json.dumps(body).encode()
    )
    assert CustomerApi().request(legacy).json() == {"status": None, "credit_limit": None}
    junk = HttpRequest(method="POST", path="/api/customers", headers=JSON, body=b"{oops")
    assert CustomerApi().request(junk).body == b"{oops"


def test_customer_response_is_the_legacy_shape() -> None:
    request = HttpRequest(path="/api/customers/7")
    answer = CustomerApi().response(request, _response(SERVICE_CUSTOMER))
    assert answer.status == 200
    assert answer.json() == LEGACY_CUSTOMER
    assert list(answer.json()) == list(LEGACY_CUSTOMER)  # field order too


def test_customer_list_response_has_the_legacy_envelope() -> None:
    page = {"items": [SERVICE_CUSTOMER], "total": 81, "offset": 40, "limit": 20}
    request = HttpRequest(path="/api/customers", query="page=3&size=20")
    body = CustomerApi().response(request, _response(page)).json()
    assert body["CUSTOMERS"] == [LEGACY_CUSTOMER]
    assert (body["TOTAL_CNT"], body["PAGE_NO"], body["PAGE_SZ"]) == (81, 3, 20)
    assert len(body["AS_OF_TS"]) == 14


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        ({"code": "not_found", "message": "customer 9 not found"}, 404, "CUSTOMER NOT FOUND"),
        ({"code": "missing", "field": "name", "in": "body"}, 400, "MISSING FIELD: CUST_NM"),
        ({"code": "invalid", "field": "address.zip", "in": "body"}, 400, "INVALID FIELD: ADDR_ZIP"),
        ({"code": "invalid", "field": "offset", "in": "query"}, 400, "INVALID PARAM: page"),
        ({"code": "bad_json"}, 400, "MALFORMED REQUEST"),
    ],
)
def test_customer_errors_become_legacy_errors(
    error: dict[str, str], status: int, message: str
) -> None:
    answer = CustomerApi().response(
        HttpRequest(path="/api/customers/9"), _response({"error": error}, 422)
    )
    assert answer.status == status
    assert answer.json() == {"ERR_CD": f"E{status}", "ERR_MSG": message}


def test_customer_response_passes_other_failures_and_refuses_junk() -> None:
    outage = HttpResponse(
        status=503, headers=make_headers({"Content-Type": "text/plain"}), body=b"down"
    )
    assert CustomerApi().response(HttpRequest(path="/api/customers/1"), outage) is outage
    with pytest.raises(AdapterError):
        CustomerApi().response(HttpRequest(path="/api/customers/1"), _response({"id": 1}))


def test_head_answers_pass_through() -> None:
    head = HttpResponse(status=200, headers=JSON, body=b"")
    request = HttpRequest(method="HEAD", path="/api/customers/7")
    assert CustomerApi().response(request, head) is head
    assert ProductApi().response(HttpRequest(method="HEAD", path="/api/products"), head) is head


def test_first_draft_rounds_credit_limit_to_whole_units() -> None:
    request = HttpRequest(path="/api/customers/7")
    draft = CustomerApiWholeUnits().response(request, _response(SERVICE_CUSTOMER)).json()
    assert draft == {**LEGACY_CUSTOMER, "CREDIT_LIMIT_CENTS": "250100"}


# ---------------------------------------------------------------- customers, rows


def test_customer_row_becomes_customer_and_address() -> None:
    writes = CustomerRows().map(_event("c", LEGACY_ROW))
    assert writes == [
        RowUpsert(
            "customers",
            {"id": 7},
            {
                "name": "Ada Berger",
                "email": "ada.berger7@example.com",
                "status": "inactive",
                "created_at": dt.date(2019, 3, 4),
                "phone": None,
                "credit_limit": Decimal("2500.50"),
            },
        ),
        RowUpsert(
            "addresses",
            {"customer_id": 7, "kind": "primary"},
            {"line1": "12 Oak St", "city": "Salem", "zip": "97301"},
        ),
    ]


def test_customer_row_keys_in_any_case_and_blank_address() -> None:
    upper = {k.upper(): v for k, v in LEGACY_ROW.items()}
    upper.update(ADDR_LINE1="", ADDR_CITY="", ADDR_ZIP="", PHONE_NO="+1-555-0100")
    writes = CustomerRows().map(_event("u", upper, before=upper))
    assert isinstance(writes[0], RowUpsert) and writes[0].values["phone"] == "+1-555-0100"
    assert writes[1] == RowDelete("addresses", {"customer_id": 7, "kind": "primary"})


def test_customer_delete_removes_both_rows_address_first() -> None:
    writes = CustomerRows().map(_event("d", None, before={"cust_id": 7}))
    assert writes == [
        RowDelete("addresses", {"customer_id": 7, "kind": "primary"}),
        RowDelete("customers", {"id": 7}),
    ]


def test_unmappable_customer_rows_are_change_event_errors() -> None:
    with pytest.raises(ChangeEventError, match="STATUS_CD 'X'"):
        CustomerRows().map(_event("c", {**LEGACY_ROW, "status_cd": "X"}))
    with pytest.raises(ChangeEventError, match="YYYYMMDD"):
        CustomerRows().map(_event("r", {**LEGACY_ROW, "created_yyyymmdd": "2019-03-04"}))
    with pytest.raises(ChangeEventError, match="truncate"):
        CustomerRows().map(_event("t", None))


def test_row_and_http_translation_agree() -> None:
    """A legacy row synced to the service and read back through the HTTP adapter is itself."""
    upsert, address = CustomerRows().map(_event("r", LEGACY_ROW))
    assert isinstance(upsert, RowUpsert) and isinstance(address, RowUpsert)
    values = upsert.values
    as_served = {
        "id": upsert.key["id"],
        **values,
        "created_at": values["created_at"].isoformat(),
        "credit_limit": str(values["credit_limit"]),
        "addresses": [{"kind": "primary", **address.values}],
    }
    answer = CustomerApi().response(HttpRequest(path="/api/customers/7"), _response(as_served))
    assert answer.json() == LEGACY_CUSTOMER


# ---------------------------------------------------------------- catalog

LEGACY_PRODUCT = {
    "prod_id": 3,
    "prod_sku": "KT-00003",
    "prod_nm": "Eco Kettle",
    "price_cents": "1999",
    "active_flg": "N",
    "category_cd": "KT",
}
SERVICE_PRODUCT = {
    "id": 3,
    "sku": "KT-00003",
    "name": "Eco Kettle",
    "price": "19.99",
    "active": False,
    "category": "kitchen",
}


def test_product_request_and_response() -> None:
    req = ProductApi().request(HttpRequest(path="/api/products", query="category=KT"))
    assert (req.path, req.query) == ("/v2/products", "category=kitchen")
    assert (
        ProductApi().request(HttpRequest(path="/api/products", query="category=kitchen")).query
        == "category="
    )
    one = ProductApi().response(HttpRequest(path="/api/products/3"), _response(SERVICE_PRODUCT))
    assert one.json() == {k.upper(): v for k, v in LEGACY_PRODUCT.items()}
    listing = ProductApi().response(
        HttpRequest(path="/api/products"), _response({"items": [SERVICE_PRODUCT], "total": 1})
    )
    assert listing.json()["PRODUCTS"] == [one.json()] and listing.json()["TOTAL_CNT"] == 1
    missing = ProductApi().response(
        HttpRequest(path="/api/products/9"), _response({"error": {"code": "not_found"}}, 404)
    )
    assert missing.json() == {"ERR_CD": "E404", "ERR_MSG": "PRODUCT NOT FOUND"}


def test_product_rows() -> None:
    writes = ProductRows().map(_event("c", LEGACY_PRODUCT))
    assert writes == [
        RowUpsert(
            "products",
            {"id": 3},
            {
                "sku": "KT-00003",
                "name": "Eco Kettle",
                "price": Decimal("19.99"),
                "active": False,
                "category": "kitchen",
            },
        )
    ]
    assert ProductRows().map(_event("d", None, before={"prod_id": 3})) == [
        RowDelete("products", {"id": 3})
    ]
    with pytest.raises(ChangeEventError, match="CATEGORY_CD"):
        ProductRows().map(_event("c", {**LEGACY_PRODUCT, "category_cd": "ZZ"}))
