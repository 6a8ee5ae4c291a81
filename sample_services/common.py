"""What every extracted service shares: opening its database, the error body, input checks.

The services are deployed separately from the monolith and from each other;
this module is their small shared kit, not a framework. Nothing here reads the
environment or holds state at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

ENGINE = web.AppKey("engine", Engine)
DECIMAL = re.compile(r"^\d{1,10}(\.\d{1,2})?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Invalid(Exception):
    """A request value the service refuses: becomes a 422 naming the field."""

    def __init__(self, field: str, code: str = "invalid", where: str = "body") -> None:
        self.field, self.code, self.where = field, code, where
        super().__init__(f"{field}: {code}")


def make_engine(db_url: str) -> Engine:
    """An engine for a SQLite file, SQLite memory (one shared connection) or PostgreSQL."""
    if db_url.startswith("sqlite"):
        memory = db_url in ("sqlite://", "sqlite:///:memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(db_url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if db_url.startswith("postgresql://"):
        db_url = "postgresql+psycopg://" + db_url.removeprefix("postgresql://")
    return create_engine(db_url, pool_size=5, max_overflow=10, pool_pre_ping=True)


async def run(fn: Callable[[], T]) -> T:
    """Blocking database work off the event loop (the drivers are synchronous)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def problem(status: int, code: str, message: str, **extra: str) -> web.Response:
    """``{"error": {"code": ..., "message": ..., "field": ..., "in": ...}}``."""
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


def invalid(exc: Invalid) -> web.Response:
    return problem(
        422, exc.code, f"{exc.field} is {exc.code}", field=exc.field, **{"in": exc.where}
    )


def not_found(what: str, ident: str) -> web.Response:
    return problem(404, "not_found", f"{what} {ident} not found")


async def json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def bad_json() -> web.Response:
    return problem(400, "bad_json", "the body must be a JSON object")


def window(query: Mapping[str, str], *, max_limit: int = 200) -> tuple[int, int]:
    """``offset`` (>= 0) and ``limit`` (1..max_limit) from the query; raises Invalid."""
    offset, limit = query.get("offset", "0"), query.get("limit", "50")
    if not offset.isdigit():
        raise Invalid("offset", where="query")
    if not limit.isdigit() or not 1 <= int(limit) <= max_limit:
        raise Invalid("limit", where="query")
    return int(offset), int(limit)


def text(value: Any, field: str, max_len: int, *, blank: bool = True) -> str:
    if not isinstance(value, str) or len(value) > max_len or (not blank and not value.strip()):
        raise Invalid(field)
    return value


def money(value: Any, field: str) -> Decimal:
    """A non-negative decimal string with at most two places (JSON numbers are refused:
    floats cannot carry money exactly)."""
    if not isinstance(value, str) or not DECIMAL.match(value):
        raise Invalid(field)
    return Decimal(value).quantize(Decimal("0.01"))


def money_text(value: Decimal) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))


def build_app(
    db_url: str,
    create_schema: Callable[[Engine], None],
    add_routes: Callable[[web.Application], None],
) -> web.Application:
    """An app owning its engine: schema created on startup, engine disposed on cleanup."""
    app = web.Application()
    engine = make_engine(db_url)
    app[ENGINE] = engine

    async def startup(_app: web.Application) -> None:
        await run(lambda: create_schema(engine))

    async def cleanup(_app: web.Application) -> None:
        engine.dispose()

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get("/healthz", healthz)
    add_routes(app)
    return app


def serve_main(prog: str, default_port: int, factory: Callable[[str], web.Application]) -> int:
    """``python -m sample_services.X --port P --db URL``: run one service."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the service's database")
    args = parser.parse_args()
    web.run_app(factory(args.db), host=args.host, port=args.port)
    return 0
