"""The monolith's HTML screens: the customer list, a customer with their orders, an order.

Server-rendered the way the shop always did it; these stay on the monolith for
the whole migration (routes.yaml leaves ``/`` and ``/customers/**`` to legacy),
so they keep reading the monolith's own tables. Every value is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from sample_monolith import db
from sample_monolith.legacy import ENGINE
from sample_monolith.shop import read_order

_STYLE = "body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"


def _page(title: str, body: str) -> web.Response:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} - Shop</title>"
        f"<style>{_STYLE}</style></head><body><p><a href='/'>Shop</a> · "
        f"<a href='/customers'>Customers</a></p><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=html, content_type="text/html")


def _money(cents: str) -> str:
    return f"{int(cents) // 100:,}.{int(cents) % 100:02d}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


async def home(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]

    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in (db.customer, db.orders, db.product)
            }

    n = await db.run(counts)
    return _page(
        "Shop back office",
        f"<p>{n['customer']} customers, {n['orders']} orders, {n['product']} products.</p>",
    )


async def customer_list(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    raw = request.query.get("page", "1")
    page = int(raw) if raw.isdigit() and int(raw) > 0 else 1

    def read() -> list[Any]:
        with engine.connect() as conn:
            query = select(db.customer).order_by(db.customer.c.cust_id)
            return list(conn.execute(query.offset((page - 1) * 50).limit(50)).all())

    rows = [
        [
            f"<a href='/customers/{r.cust_id}'>{r.cust_id}</a>",
            escape(r.cust_nm),
            escape(r.email_addr),
            "Active" if r.status_cd == "A" else "Inactive",
            escape(r.addr_city),
        ]
        for r in await db.run(read)
    ]
    more = f"<p><a href='/customers?page={page + 1}'>next page</a></p>" if len(rows) == 50 else ""
    return _page("Customers", _table(["#", "Name", "Email", "Status", "City"], rows) + more)


async def customer_detail(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    raw = request.match_info["cust_id"]

    def read() -> tuple[Any, list[Any]] | None:
        with engine.connect() as conn:
            cust = conn.execute(
                select(db.customer).where(db.customer.c.cust_id == int(raw))
            ).first()
            if cust is None:
                return None
            orders = conn.execute(
                select(db.orders)
                .where(db.orders.c.cust_id == cust.cust_id)
                .order_by(db.orders.c.ord_id)
            ).all()
        return cust, list(orders)

    found = await db.run(read) if raw.isdigit() else None
    if found is None:
        raise web.HTTPNotFound(text="customer not found")
    c, orders = found
    facts = (
        f"<p>{escape(c.email_addr)} · {escape(c.phone_no) or 'no phone'} · "
        f"{escape(c.addr_line1)}, {escape(c.addr_zip)} {escape(c.addr_city)} · "
        f"credit limit {_money(c.credit_limit_cents)}</p>"
    )
    rows = [
        [
            f"<a href='/orders/{o.ord_id}'>{o.ord_id}</a>",
            o.ord_dt,
            db.ORDER_STATUS.get(o.ord_status_cd, o.ord_status_cd),
            _money(o.ord_total_cents),
        ]
        for o in orders
    ]
    return _page(c.cust_nm, facts + _table(["Order", "Date", "Status", "Total"], rows))


async def order_detail(request: web.Request) -> web.Response:
    raw = request.match_info["ord_id"]
    order = (
        await db.run(lambda: read_order(request.app[ENGINE], int(raw))) if raw.isdigit() else None
    )
    if order is None:
        raise web.HTTPNotFound(text="order not found")
    rows = [
        [escape(line["PROD_NM"]), str(line["QTY"]), _money(line["UNIT_PRICE_CENTS"])]
        for line in order["LINES"]
    ]
    facts = (
        f"<p>for <a href='/customers/{order['CUST_ID']}'>{escape(order['CUST_NM'])}</a>"
        f" · {db.ORDER_STATUS.get(order['ORD_STATUS_CD'], '?')} · total "
        f"{_money(order['ORD_TOTAL_CENTS'])}</p>"
    )
    return _page(f"Order {order['ORD_ID']}", facts + _table(["Product", "Qty", "Price"], rows))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/customers", customer_list)
    app.router.add_get("/customers/{cust_id}", customer_detail)
    app.router.add_get("/orders/{ord_id}", order_detail)
