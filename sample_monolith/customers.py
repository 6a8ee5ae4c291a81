"""The monolith's customer API: ``/api/customers`` in the legacy shape.

    GET  /api/customers?page=1&size=50&status=A   {"CUSTOMERS": [...], "TOTAL_CNT", "PAGE_NO",
                                                   "PAGE_SZ", "AS_OF_TS"}
    GET  /api/customers/{id}                      one customer (all CUSTOMER columns, upper case)
    POST /api/customers                           201 + the customer; CUST_NM, EMAIL_ADDR required
    PUT  /api/customers/{id}                      partial update; 200 + the customer

Errors are ``{"ERR_CD": "E400", "ERR_MSG": "MISSING FIELD: CUST_NM"}`` (or
``INVALID FIELD: X``, ``INVALID PARAM: page``, ``MALFORMED REQUEST``) and
``E404 CUSTOMER NOT FOUND``. Fields are checked in the table's column order and
the first problem is reported. This is the behaviour the customers service plus
``adapters.customers.CustomerApi`` must reproduce exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import Engine, func, insert, select, update

from sample_monolith import db
from sample_monolith.legacy import (
    CENTS,
    EMAIL,
    ENGINE,
    Check,
    as_of_ts,
    error,
    json_object,
    paging,
    text,
    upper,
)

# (legacy field, required on POST, check) in column order: the order errors are reported in.
FIELDS: tuple[tuple[str, bool, Check], ...] = (
    ("CUST_NM", True, text(80, blank=False)),
    ("EMAIL_ADDR", True, lambda v: isinstance(v, str) and len(v) <= 120 and bool(EMAIL.match(v))),
    ("STATUS_CD", False, lambda v: v in ("A", "I")),
    ("PHONE_NO", False, lambda v: v is None or text(20)(v)),
    ("ADDR_LINE1", False, text(80)),
    ("ADDR_CITY", False, text(40)),
    ("ADDR_ZIP", False, text(10)),
    ("CREDIT_LIMIT_CENTS", False, lambda v: isinstance(v, str) and bool(CENTS.match(v))),
)


def _problem(body: dict[str, Any], *, creating: bool) -> str | None:
    for name, required, check in FIELDS:
        if name not in body:
            if creating and required:
                return f"MISSING FIELD: {name}"
            continue
        if not check(body[name]):
            return f"INVALID FIELD: {name}"
    return None


def _values(body: dict[str, Any]) -> dict[str, Any]:
    values = {name.lower(): body[name] for name, _, _ in FIELDS if name in body}
    if "phone_no" in values and values["phone_no"] is None:
        values["phone_no"] = ""  # the legacy column has no NULLs
    return values


def _one(engine: Engine, cust_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(db.customer).where(db.customer.c.cust_id == cust_id)).first()
    return upper(row._mapping) if row else None


async def list_customers(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    paged = paging(request.query)
    if isinstance(paged, web.Response):
        return paged
    page, size = paged
    status = request.query.get("status")
    if status is not None and status not in ("A", "I"):
        return error(400, "INVALID PARAM: status")

    def read() -> tuple[list[dict[str, Any]], int]:
        query = select(db.customer).order_by(db.customer.c.cust_id)
        count = select(func.count()).select_from(db.customer)
        if status:
            query = query.where(db.customer.c.status_cd == status)
            count = count.where(db.customer.c.status_cd == status)
        with engine.connect() as conn:
            rows = conn.execute(query.offset((page - 1) * size).limit(size)).all()
            total = conn.execute(count).scalar_one()
        return [upper(r._mapping) for r in rows], int(total)

    rows, total = await db.run(read)
    return web.json_response(
        {
            "CUSTOMERS": rows,
            "TOTAL_CNT": total,
            "PAGE_NO": page,
            "PAGE_SZ": size,
            "AS_OF_TS": as_of_ts(),
        }
    )


async def get_customer(request: web.Request) -> web.Response:
    raw = request.match_info["cust_id"]
    found = await db.run(lambda: _one(request.app[ENGINE], int(raw))) if raw.isdigit() else None
    if found is None:
        return error(404, "CUSTOMER NOT FOUND")
    return web.json_response(found)


async def create_customer(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await json_object(request)
    if body is None:
        return error(400, "MALFORMED REQUEST")
    problem = _problem(body, creating=True)
    if problem:
        return error(400, problem)
    values = {
        "status_cd": "A",
        "phone_no": "",
        "addr_line1": "",
        "addr_city": "",
        "addr_zip": "",
        "credit_limit_cents": "0",
        **_values(body),
        "created_yyyymmdd": dt.datetime.now(dt.UTC).strftime("%Y%m%d"),
    }

    def write() -> dict[str, Any] | None:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Customers the service created come back by sync with their own ids, which
                # never advance the SERIAL's sequence: allocate from the rows, under a lock.
                conn.exec_driver_sql("LOCK TABLE customer IN SHARE ROW EXCLUSIVE MODE")
                highest = conn.execute(select(func.max(db.customer.c.cust_id))).scalar_one()
                values["cust_id"] = int(highest or 0) + 1
            result = conn.execute(insert(db.customer).values(**values))
            cust_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return _one(engine, cust_id)

    return web.json_response(await db.run(write), status=201)


async def update_customer(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    raw = request.match_info["cust_id"]
    body = await json_object(request)
    if body is None:
        return error(400, "MALFORMED REQUEST")
    if not raw.isdigit():
        return error(404, "CUSTOMER NOT FOUND")
    problem = _problem(body, creating=False)
    if problem:
        return error(400, problem)
    values = _values(body)
    cust_id = int(raw)

    def write() -> dict[str, Any] | None:
        with engine.begin() as conn:
            if values:
                conn.execute(
                    update(db.customer).where(db.customer.c.cust_id == cust_id).values(**values)
                )
        return _one(engine, cust_id)

    found = await db.run(write)
    if found is None:
        return error(404, "CUSTOMER NOT FOUND")
    return web.json_response(found)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/customers", list_customers)
    app.router.add_post("/api/customers", create_customer)
    app.router.add_get("/api/customers/{cust_id}", get_customer)
    app.router.add_put("/api/customers/{cust_id}", update_customer)
