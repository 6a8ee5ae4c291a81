"""Build the catalog service for one database URL: ``create_app(db_url)``."""

from __future__ import annotations

from aiohttp import web

from sample_services.catalog import api, db
from sample_services.common import build_app


def create_app(db_url: str) -> web.Application:
    """The catalog service on ``db_url`` (its schema is created on startup if missing)."""
    return build_app(db_url, db.create_schema, api.add_routes)
