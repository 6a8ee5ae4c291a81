"""The monolith's product and order API: the modules that read across the whole database.

    GET  /api/products?category=HW     {"PRODUCTS": [...], "TOTAL_CNT", "AS_OF_TS"}
    GET  /api/products/{id}            one PRODUCT row, upper case
    GET  /api/orders?cust_id=&page=&size=   {"ORDERS": [... with CUST_NM], paging, "AS_OF_TS"}
    GET  /api/orders/{id}              the order, its customer's name and email, its LINES
    POST /api/orders                   {"CUST_ID": 1, "LINES": [{"PROD_ID": 2, "QTY": 3}]}

Orders join ``customer`` and ``product`` in SQL: this is why the monolith's
database must stay whole while customers and products move out, and why the
migration keeps it authoritative and copies to the services by CDC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import Engine, func, insert, select

from sample_monolith import db
from sample_monolith.legacy import ENGINE, as_of_ts, error, json_object, paging, upper

_ORDER_COLUMNS = (
    db.orders.c.ord_id,
    db.orders.c.cust_id,
    db.customer.c.cust_nm,
    db.orders.c.ord_total_cents,
    db.orders.c.ord_status_cd,
    db.orders.c.ord_dt,
)


async def list_products(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    category = request.query.get("category")
    if category is not None and category not in db.CATEGORY:
        return error(400, "INVALID PARAM: category")

    def read() -> list[dict[str, Any]]:
        query = select(db.product).order_by(db.product.c.prod_id)
        if category:
            query = query.where(db.product.c.category_cd == category)
        with engine.connect() as conn:
            return [upper(r._mapping) for r in conn.execute(query)]

    rows = await db.run(read)
    return web.json_response({"PRODUCTS": rows, "TOTAL_CNT": len(rows), "AS_OF_TS": as_of_ts()})


async def get_product(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    raw = request.match_info["prod_id"]

    def read() -> dict[str, Any] | None:
        with engine.connect() as conn:
            row = conn.execute(select(db.product).where(db.product.c.prod_id == int(raw))).first()
        return upper(row._mapping) if row else None

    found = await db.run(read) if raw.isdigit() else None
    if found is None:
        return error(404, "PRODUCT NOT FOUND")
    return web.json_response(found)


async def list_orders(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    paged = paging(request.query)
    if isinstance(paged, web.Response):
        return paged
    page, size = paged
    cust = request.query.get("cust_id")
    if cust is not None and not cust.isdigit():
        return error(400, "INVALID PARAM: cust_id")

    def read() -> tuple[list[dict[str, Any]], int]:
        joined = db.orders.join(db.customer, db.orders.c.cust_id == db.customer.c.cust_id)
        query = select(*_ORDER_COLUMNS).select_from(joined).order_by(db.orders.c.ord_id)
        count = select(func.count()).select_from(db.orders)
        if cust:
            query = query.where(db.orders.c.cust_id == int(cust))
            count = count.where(db.orders.c.cust_id == int(cust))
        with engine.connect() as conn:
            rows = conn.execute(query.offset((page - 1) * size).limit(size)).all()
            total = conn.execute(count).scalar_one()
        return [upper(r._mapping) for r in rows], int(total)

    rows, total = await db.run(read)
    return web.json_response(
        {
            "ORDERS": rows,
            "TOTAL_CNT": total,
            "PAGE_NO": page,
            "PAGE_SZ": size,
            "AS_OF_TS": as_of_ts(),
        }
    )


def read_order(engine: Engine, ord_id: int) -> dict[str, Any] | None:
    """One order with its customer's name and email and its lines (product names joined)."""
    joined = db.orders.join(db.customer, db.orders.c.cust_id == db.customer.c.cust_id)
    lines = db.order_lines.join(db.product, db.order_lines.c.prod_id == db.product.c.prod_id)
    with engine.connect() as conn:
        head = conn.execute(
            select(*_ORDER_COLUMNS, db.customer.c.email_addr)
            .select_from(joined)
            .where(db.orders.c.ord_id == ord_id)
        ).first()
        if head is None:
            return None
        rows = conn.execute(
            select(
                db.order_lines.c.line_no,
                db.order_lines.c.prod_id,
                db.product.c.prod_nm,
                db.order_lines.c.qty,
                db.order_lines.c.unit_price_cents,
            )
            .select_from(lines)
            .where(db.order_lines.c.ord_id == ord_id)
            .order_by(db.order_lines.c.line_no)
        ).all()
    return {**upper(head._mapping), "LINES": [upper(r._mapping) for r in rows]}


async def get_order(request: web.Request) -> web.Response:
    raw = request.match_info["ord_id"]
    found = (
        await db.run(lambda: read_order(request.app[ENGINE], int(raw))) if raw.isdigit() else None
    )
    if found is None:
        return error(404, "ORDER NOT FOUND")
    return web.json_response(found)


async def create_order(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await json_object(request)
    if body is None:
        return error(400, "MALFORMED REQUEST")
    cust_id, lines = body.get("CUST_ID"), body.get("LINES")
    if not isinstance(cust_id, int):
        return error(400, "INVALID FIELD: CUST_ID")
    if not isinstance(lines, list) or not lines:
        return error(400, "INVALID FIELD: LINES")
    for line in lines:
        if not (
            isinstance(line, dict)
            and isinstance(line.get("PROD_ID"), int)
            and isinstance(line.get("QTY"), int)
            and line["QTY"] > 0
        ):
            return error(400, "INVALID FIELD: LINES")

    def write() -> dict[str, Any] | str:
        with engine.begin() as conn:
            if (
                conn.execute(
                    select(db.customer.c.cust_id).where(db.customer.c.cust_id == cust_id)
                ).first()
                is None
            ):
                return "CUSTOMER NOT FOUND"
            ids = [line["PROD_ID"] for line in lines]
            prices = dict(
                conn.execute(
                    select(db.product.c.prod_id, db.product.c.price_cents).where(
                        db.product.c.prod_id.in_(ids), db.product.c.active_flg == "Y"
                    )
                ).all()
            )
            if any(pid not in prices for pid in ids):
                return "PRODUCT NOT FOUND"
            total = sum(int(prices[line["PROD_ID"]]) * line["QTY"] for line in lines)
            result = conn.execute(
                insert(db.orders).values(
                    cust_id=cust_id,
                    ord_total_cents=str(total),
                    ord_status_cd="N",
                    ord_dt=dt.datetime.now(dt.UTC).strftime("%Y%m%d"),
                )
            )
            ord_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            conn.execute(
                insert(db.order_lines),
                [
                    {
                        "ord_id": ord_id,
                        "line_no": n,
                        "prod_id": line["PROD_ID"],
                        "qty": line["QTY"],
                        "unit_price_cents": prices[line["PROD_ID"]],
                    }
                    for n, line in enumerate(lines, start=1)
                ],
            )
        return read_order(engine, ord_id) or "ORDER NOT FOUND"

    outcome = await db.run(write)
    if isinstance(outcome, str):
        return error(404 if "NOT FOUND" in outcome else 400, outcome)
    return web.json_response(outcome, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/products", list_products)
    app.router.add_get("/api/products/{prod_id}", get_product)
    app.router.add_get("/api/orders", list_orders)
    app.router.add_post("/api/orders", create_order)
    app.router.add_get("/api/orders/{ord_id}", get_order)
