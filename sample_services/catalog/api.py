"""The catalog service's API: ``/v2/products`` in the new shape.

    GET /v2/products?category=kitchen   {"items": [...], "total": n}
    GET /v2/products/{id}               {"id", "sku", "name", "price": "19.99",
                                         "active": true, "category": "kitchen"}

Errors as every service: ``{"error": {"code", "message", "field", "in"}}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Engine, select

from sample_services.catalog.db import CATEGORIES, products
from sample_services.common import ENGINE, Invalid, invalid, money_text, not_found, run


def _json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "sku": row.sku,
        "name": row.name,
        "price": money_text(row.price),
        "active": bool(row.active),
        "category": row.category,
    }


async def list_products(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    category = request.query.get("category")
    if category is not None and category not in CATEGORIES:
        return invalid(Invalid("category", where="query"))

    def read() -> list[dict[str, Any]]:
        query = select(products).order_by(products.c.id)
        if category:
            query = query.where(products.c.category == category)
        with engine.connect() as conn:
            return [_json(r) for r in conn.execute(query)]

    items = await run(read)
    return web.json_response({"items": items, "total": len(items)})


async def get_product(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE]
    raw = request.match_info["id"]

    def read() -> dict[str, Any] | None:
        with engine.connect() as conn:
            row = conn.execute(select(products).where(products.c.id == int(raw))).first()
        return _json(row) if row else None

    found = await run(read) if raw.isdigit() else None
    return web.json_response(found) if found else not_found("product", raw)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/products", list_products)
    app.router.add_get("/v2/products/{id}", get_product)
