"""The monolith's HTTP conventions, for adapters that answer legacy clients from a service.

Shared by every HTTP adapter of this migration: moving a request from a legacy
path prefix to the service's, reading the legacy query the way the monolith
does (first value wins), turning a service error into the monolith's
``{"ERR_CD", "ERR_MSG"}`` body, and the ``AS_OF_TS`` stamp. Pure except for
``as_of_ts`` (the clock: that field is volatile on the monolith too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from strangler.message import HttpRequest, HttpResponse


def legacy_query(request: HttpRequest) -> dict[str, str]:
    """The request's query parameters, first value of each (as the monolith reads them)."""
    out: dict[str, str] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        out.setdefault(name, value)
    return out


def item_id(request: HttpRequest, legacy_prefix: str) -> str | None:
    """``/api/customers/7`` -> ``"7"``; the collection itself -> None."""
    rest = request.path[len(legacy_prefix) :].strip("/")
    return rest or None


def move(
    request: HttpRequest, legacy_prefix: str, new_prefix: str, query: Mapping[str, str] | None
) -> HttpRequest:
    """The same request under the service's prefix, with ``query`` (None: no query)."""
    path = new_prefix + request.path[len(legacy_prefix) :]
    return request.replace(path=path.rstrip("/") or "/", query=urlencode(query) if query else "")


def legacy_error(
    response: HttpResponse,
    *,
    not_found: str,
    fields: Mapping[str, str],
    params: Mapping[str, str],
) -> HttpResponse | None:
    """The monolith's error for a service error response; None if it is not one.

    ``fields``/``params`` map service body fields / query parameters back to the
    legacy names the monolith's messages use.
    """
    if response.status < 400 or not response.is_json:
        return None
    try:
        error: Any = (response.json() or {}).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    code, field = error.get("code"), str(error.get("field", ""))
    if code == "not_found":
        return _legacy(response, 404, not_found)
    if code == "bad_json":
        return _legacy(response, 400, "MALFORMED REQUEST")
    if code == "missing":
        return _legacy(response, 400, f"MISSING FIELD: {fields.get(field, field)}")
    if code == "invalid" and error.get("in") == "query":
        return _legacy(response, 400, f"INVALID PARAM: {params.get(field, field)}")
    if code == "invalid":
        return _legacy(response, 400, f"INVALID FIELD: {fields.get(field, field)}")
    return None


def _legacy(response: HttpResponse, status: int, message: str) -> HttpResponse:
    body = {"ERR_CD": f"E{status}", "ERR_MSG": message}
    return response.replace(status=status).with_json(body)


def as_of_ts() -> str:
    """``YYYYMMDDHHMMSS`` UTC, as the monolith stamps its list answers."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
