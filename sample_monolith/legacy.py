"""The monolith's JSON conventions: legacy field names, error bodies, the ``AS_OF_TS`` stamp.

Every legacy endpoint answers through these helpers, so the conventions a
migrated endpoint must reproduce are written down in one place. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from sqlalchemy import Engine

ENGINE = web.AppKey("engine", Engine)
"""The app's SQLAlchemy engine (one per app; no module-level state)."""

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CENTS = re.compile(r"^\d{1,12}$")


def error(status: int, message: str) -> web.Response:
    """``{"ERR_CD": "E404", "ERR_MSG": "CUSTOMER NOT FOUND"}`` with that HTTP status."""
    return web.json_response({"ERR_CD": f"E{status}", "ERR_MSG": message}, status=status)


def as_of_ts() -> str:
    """When the answer was produced, ``YYYYMMDDHHMMSS`` UTC: volatile by design."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")


def upper(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A database row as legacy JSON: the column names upper-cased, values untouched."""
    return {str(key).upper(): value for key, value in row.items()}


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The body as a JSON object, or None if it is not one (-> MALFORMED REQUEST)."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def paging(query: Mapping[str, str]) -> tuple[int, int] | web.Response:
    """``page`` (from 1) and ``size`` (1..200) from the query, or the legacy 400."""
    page, size = query.get("page", "1"), query.get("size", "50")
    if not page.isdigit() or int(page) < 1:
        return error(400, "INVALID PARAM: page")
    if not size.isdigit() or not 1 <= int(size) <= 200:
        return error(400, "INVALID PARAM: size")
    return int(page), int(size)


Check = Callable[[Any], bool]


def text(max_len: int, *, blank: bool = True) -> Check:
    def check(value: Any) -> bool:
        return isinstance(value, str) and len(value) <= max_len and (blank or bool(value.strip()))

    return check
