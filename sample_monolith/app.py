"""Build the monolith's aiohttp application for one database URL.

``create_app(db_url)`` is all a caller needs (``strangler demo`` runs it
in-process, ``python -m sample_monolith`` from a shell, the tests on loopback).
The app owns its engine: the schema is created on startup if missing and the
engine is disposed on cleanup. No module-level state, no environment reads.
"""

from __future__ import annotations

from aiohttp import web

from sample_monolith import customers, db, pages, shop
from sample_monolith.legacy import ENGINE


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"STATUS": "UP"})


def create_app(db_url: str) -> web.Application:
    """The monolith (JSON API + HTML screens) on ``db_url`` (SQLite file or PostgreSQL)."""
    app = web.Application()
    engine = db.make_engine(db_url)
    app[ENGINE] = engine

    async def startup(_app: web.Application) -> None:
        await db.run(lambda: db.create_schema(engine))

    async def cleanup(_app: web.Application) -> None:
        engine.dispose()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    customers.add_routes(app)
    shop.add_routes(app)
    pages.add_routes(app)
    app.router.add_get("/healthz", _healthz)
    return app
