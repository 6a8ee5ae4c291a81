"""The customers service's API: ``/v2/customers`` in the new, clean shape.

    GET  /v2/customers?offset=0&limit=50&status=active  {"items", "total", "offset", "limit"}
    GET  /v2/customers/{id}                              one customer
    POST /v2/customers                                   201 + the customer (name, email required)
    PUT  /v2/customers/{id}                              partial update; 200 + the customer

A customer::

    {"id": 7, "name": "Ada Berger", "email": "ada.berger7@example.com",
     "status": "active", "created_at": "2019-03-04", "phone": null,
     "credit_limit": "2500.50",
     "addresses": [{"kind": "primary", "line1": "12 Oak St", "city": "Salem", "zip": "97301"}]}

``address`` in a POST/PUT body is a partial object merged into the primary
address; an address left all blank is removed. Errors are
``{"error": {"code": "missing"|"invalid"|"not_found"|"bad_json", "message", "field", "in"}}``
(422 for missing/invalid, fields checked in the order above). Mirrored requests
(``X-Strangler-Shadow: 1``) that would write are refused with 409: a shadow
copy must never change the service's data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from sample_services.common import (
    EMAIL,
    ENGINE,
    Invalid,
    bad_json,
    invalid,
    json_object,
    money,
    money_text,
    not_found,
    problem,
    run,
    text,
    window,
)
from sample_services.customers.db import addresses, customers

STATUSES = ("active", "inactive")
PRIMARY = "primary"
ADDRESS_PARTS = (("line1", 80), ("city", 40), ("zip", 10))


def _json(row: Any, addrs: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "phone": row.phone,
        "credit_limit": money_text(row.credit_limit),
        "addresses": [
            {"kind": a.kind, "line1": a.line1, "city": a.city, "zip": a.zip}
            for a in sorted(addrs, key=lambda a: str(a.kind))
        ],
    }


def _read(conn: Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    rows = conn.execute(select(customers).where(customers.c.id.in_(ids))).all()
    addrs: dict[int, list[Any]] = {}
    for a in conn.execute(select(addresses).where(addresses.c.customer_id.in_(ids))):
        addrs.setdefault(a.customer_id, []).append(a)
    by_id = {r.id: _json(r, addrs.get(r.id, [])) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def _parse(body: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The customer columns and address parts a body sets; raises Invalid (first problem)."""
    values: dict[str, Any] = {}
    for field in ("name", "email"):
        if field in body:
            values[field] = text(body[field], field, 80 if field == "name" else 120, blank=False)
        elif creating:
            raise Invalid(field, "missing")
        if field == "email" and "email" in values and not EMAIL.match(values["email"]):
            raise Invalid("email")
    if "status" in body:
        if body["status"] not in STATUSES:
            raise Invalid("status")
        values["status"] = body["status"]
    if "phone" in body:
        phone = body["phone"]
        values["phone"] = None if phone is None else (text(phone, "phone", 20) or None)
    parts: dict[str, str] = {}
    if "address" in body:
        address = body["address"]
        if not isinstance(address, dict):
            raise Invalid("address")
        for part, max_len in ADDRESS_PARTS:
            if part in address:
                parts[part] = text(address[part], f"address.{part}", max_len)
    if "credit_limit" in body:
        values["credit_limit"] = money(body["credit_limit"], "credit_limit")
    return values, parts


def _write_address(conn: Connection, customer_id: int, parts: dict[str, str]) -> None:
    """Merge ``parts`` into the primary address; all blank means no address."""
    key = (addresses.c.customer_id == customer_id) & (addresses.c.kind == PRIMARY)
    current = conn.execute(select(addresses).where(key)).first()
    merged = {part: (getattr(current, part) if current else "") for part, _ in ADDRESS_PARTS}
    merged.update(parts)
    if not any(merged.values()):
        conn.execute(delete(addresses).where(key))
    elif current is None:
        conn.execute(insert(addresses).values(customer_id=customer_id, kind=PRIMARY, **merged))
    else:
        conn.execute(update(addresses).where(key).values(**merged))


def _next_id(conn: Connection) -> int:
    """One past the highest id, under a table lock (PostgreSQL) or the write lock (SQLite).

    Ids arrive from the monolith by CDC with explicit values, which never advance a
    serial's sequence; allocating from the rows themselves keeps the service's new ids
    in step with the monolith's (which also counts up from its highest id).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE")
    elif conn.dialect.name == "sqlite":
        # A write that changes nothing takes SQLite's write lock before the read, so two
        # concurrent creates cannot both read the same highest id.
        conn.execute(update(customers).where(customers.c.id == -1).values(name=customers.c.name))
    return int(conn.execute(select(func.coalesce(func.max(customers.c.id), 0))).scalar_one()) + 1


def _shadow_write(request: web.Request) -> web.Response | None:
    if request.headers.get("X-Strangler-Shadow") == "1":
        return problem(409, "shadow_write", "mirrored requests may not write")
    return None


async def list_customers(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    try:
        offset, limit = window(request.query)
        status = request.query.get("status")
        if status is not None and status not in STATUSES:
            raise Invalid("status", where="query")
    except Invalid as exc:
        return invalid(exc)

    def read() -> tuple[list[dict[str, Any]], int]:
        ids = select(customers.c.id).order_by(customers.c.id)
        count = select(func.count()).select_from(customers)
        if status:
            ids = ids.where(customers.c.status == status)
            count = count.where(customers.c.status == status)
        with engine.connect() as conn:
            page = [int(i) for i in conn.execute(ids.offset(offset).limit(limit)).scalars()]
            return _read(conn, page), int(conn.execute(count).scalar_one())

    items, total = await run(read)
    return web.json_response({"items": items, "total": total, "offset": offset, "limit": limit})


async def get_customer(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    raw = request.match_info["id"]

    def read() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return _read(conn, [int(raw)])

    found = await run(read) if raw.isdigit() else []
    return web.json_response(found[0]) if found else not_found("customer", raw)


async def create_customer(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    refused = _shadow_write(request)
    if refused:
        return refused
    body = await json_object(request)
    if body is None:
        return bad_json()
    try:
        values, parts = _parse(body, creating=True)
    except Invalid as exc:
        return invalid(exc)
    row = {
        "status": "active",
        "phone": None,
        "credit_limit": money("0", "credit_limit"),
        **values,
        "created_at": dt.datetime.now(dt.UTC).date(),
    }

    def write() -> dict[str, Any]:
        with engine.begin() as conn:
            new_id = _next_id(conn)
            conn.execute(insert(customers).values(id=new_id, **row))
            if parts:
                _write_address(conn, new_id, parts)
            return _read(conn, [new_id])[0]

    return web.json_response(await run(write), status=201)


async def update_customer(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    refused = _shadow_write(request)
    if refused:
        return refused
    raw = request.match_info["id"]
    body = await json_object(request)
    if body is None:
        return bad_json()
    if not raw.isdigit():
        return not_found("customer", raw)
    try:
        values, parts = _parse(body, creating=False)
    except Invalid as exc:
        return invalid(exc)
    cust_id = int(raw)

    def write() -> list[dict[str, Any]]:
        with engine.begin() as conn:
            if not conn.execute(select(customers.c.id).where(customers.c.id == cust_id)).first():
                return []
            if values:
                conn.execute(update(customers).where(customers.c.id == cust_id).values(**values))
            if parts:
                _write_address(conn, cust_id, parts)
            return _read(conn, [cust_id])

    found = await run(write)
    return web.json_response(found[0]) if found else not_found("customer", raw)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/customers", list_customers)
    app.router.add_post("/v2/customers", create_customer)
    app.router.add_get("/v2/customers/{id}", get_customer)
    app.router.add_put("/v2/customers/{id}", update_customer)
