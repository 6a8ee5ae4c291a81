"""A proxy with a bounded context: a legacy and a new upstream that record every write.

Routes: ``customers`` (GET/HEAD on /api/customers/**, mode new), ``customer-writes``
(POST/PUT there, follows the context's owner) and ``orders`` (/api/orders/**,
outside the context). Context ``customers`` holds the first two. The upstreams
answer JSON naming their side, can be slowed per side, and keep the order in
which writes started and finished, so tests can assert what reached whom.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tests.support.net import free_port
from tests.support.sides import Site, catch_all, two_sides
from tests.support.sides import in_process as in_process

TOKEN = "t0ken-for-cutover"


@dataclass
class Sides:
    legacy: str = ""
    new: str = ""
    delay: dict[str, float] = field(default_factory=lambda: {"legacy": 0.0, "new": 0.0})
    """Seconds each side takes to answer a write."""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(``start`` | ``end``, side, write id) in the order they happened."""
    writes: dict[str, list[str]] = field(default_factory=lambda: {"legacy": [], "new": []})
    fail: dict[str, bool] = field(default_factory=lambda: {"legacy": False, "new": False})
    """Answer writes with 500 on that side."""


def _app(side: str, sides: Sides) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        if request.method in ("GET", "HEAD"):
            return web.json_response({"side": side})
        body = await request.read()
        try:
            ident = str(json.loads(body or b"{}").get("id", "?"))
        except (ValueError, AttributeError):
            ident = "?"
        if sides.fail[side]:
            return web.json_response({"side": side, "error": "boom"}, status=500)
        sides.events.append(("start", side, ident))
        if sides.delay[side]:
            await asyncio.sleep(sides.delay[side])
        sides.writes[side].append(ident)
        sides.events.append(("end", side, ident))
        return web.json_response({"side": side, "id": ident})

    return catch_all(answer)


@contextlib.asynccontextmanager
async def sides() -> AsyncIterator[Sides]:
    found = Sides()
    async with two_sides(lambda side: _app(side, found)) as (found.legacy, found.new):
        yield found


def write_config(
    folder: Path,
    found: Sides,
    *,
    state: str = "memory://",
    namespace: str = "default",
    read_mode: str = "new",
    context: dict[str, Any] | None = None,
    rollback: dict[str, Any] | None = None,
    shadow: dict[str, Any] | None = None,
    write_rollback: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    name: str = "routes.yaml",
    port: int | None = None,
    admin_port: int | None = None,
) -> Site:
    port, admin_port = port or free_port(), admin_port or free_port()
    reads: dict[str, Any] = {
        "name": "customers",
        "match": {"path": "/api/customers/**", "methods": ["GET", "HEAD"]},
        "to": "customers",
        "mode": read_mode,
    }
    if read_mode == "canary":
        reads["percent"] = 50
    if rollback is not None:
        reads["rollback"] = rollback
    if shadow is not None:
        reads["shadow"] = shadow
    document: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "state": {"url": state, "namespace": namespace},
        "legacy": "monolith",
        "upstreams": {
            "monolith": {"url": found.legacy, "timeout": "10s"},
            "customers": {"url": found.new, "timeout": "10s"},
        },
        "routes": [
            reads,
            {
                "name": "customer-writes",
                "match": {"path": "/api/customers/**", "methods": ["POST", "PUT"]},
                "to": "customers",
                "mode": "legacy",
                **({"rollback": write_rollback} if write_rollback else {}),
            },
            {"name": "orders", "match": {"path": "/api/orders/**"}, "to": "customers"},
        ],
        "contexts": {
            "customers": {
                "routes": ["customers", "customer-writes"],
                "hold_timeout": "3s",
                **(context or {}),
            }
        },
        **(extra or {}),
    }
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return Site(path, port, admin_port)


async def call(
    session: aiohttp.ClientSession,
    site: Site,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = TOKEN,
) -> tuple[int, dict[str, Any]]:
    """An admin API call; returns the status and the JSON answer."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = json.dumps(body) if body is not None else None
    async with session.request(method, site.admin + path, data=data, headers=headers) as response:
        text = await response.text()
        return response.status, (json.loads(text) if text else {})


async def cutover(
    session: aiohttp.ClientSession, site: Site, to: str, context: str = "customers"
) -> tuple[int, dict[str, Any]]:
    return await call(session, site, "POST", f"/api/contexts/{context}/cutover", {"to": to})


async def context_view(session: aiohttp.ClientSession, site: Site) -> dict[str, Any]:
    status, document = await call(session, site, "GET", "/api/contexts")
    assert status == 200, document
    found: dict[str, Any] = document["contexts"][0]
    return found


async def write(
    session: aiohttp.ClientSession, site: Site, ident: str, method: str = "POST"
) -> tuple[int, str]:
    """One write through the proxy; returns the status and the upstream that answered."""
    async with session.request(
        method, f"{site.proxy}/api/customers/{ident}", json={"id": ident}
    ) as response:
        await response.read()
        return response.status, response.headers.get("X-Strangler-Upstream", "?")
