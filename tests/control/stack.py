"""End-to-end pieces: a legacy and a new upstream, routes.yaml files, proxies to run them.

Proxies run as real ``strangler serve`` processes (``serve_process``) or in this
event loop through :func:`strangler.serve.start_proxy` (``in_process``) where a
test needs many quick round trips (admin API errors, the CLI).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tests.serve.support import ServeProcess, strangler_serve
from tests.support.net import free_port
from tests.support.sides import Site, catch_all, two_sides
from tests.support.sides import in_process as in_process

TOKEN = "t0ken-for-tests"
PATH = "/api/customers/7"


@dataclass
class Upstreams:
    legacy: str = ""
    new: str = ""
    fail_every: dict[str, int] = field(default_factory=lambda: {"new": 0})
    """The new upstream answers 500 to every n-th request (0: never)."""
    served: dict[str, int] = field(default_factory=lambda: {"legacy": 0, "new": 0})


def _app(side: str, upstreams: Upstreams) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        upstreams.served[side] += 1
        every = upstreams.fail_every.get(side, 0)
        if every and upstreams.served[side] % every == 0:
            return web.json_response({"side": side, "error": "boom"}, status=500)
        return web.json_response({"side": side})

    return catch_all(answer)


@contextlib.asynccontextmanager
async def upstreams() -> AsyncIterator[Upstreams]:
    ups = Upstreams()
    async with two_sides(lambda side: _app(side, ups)) as (ups.legacy, ups.new):
        yield ups


def write_config(
    folder: Path,
    ups: Upstreams,
    *,
    state: str = "memory://",
    namespace: str = "default",
    token: str | None = TOKEN,
    name: str = "routes.yaml",
    **route: Any,
) -> Site:
    """A routes.yaml with one route ``customers`` (/api/customers/**) to ``customers``."""
    port, admin_port = free_port(), free_port()
    admin: dict[str, Any] = {"listen": f"127.0.0.1:{admin_port}"}
    if token is not None:
        admin["token"] = token
    document = {
        "listen": f"127.0.0.1:{port}",
        "admin": admin,
        "state": {"url": state, "namespace": namespace},
        "legacy": "monolith",
        "upstreams": {
            "monolith": {"url": ups.legacy},
            "customers": {"url": ups.new, "timeout": "2s"},
        },
        "routes": [
            {
                "name": "customers",
                "match": {"path": "/api/customers/**"},
                "to": "customers",
                "mode": "legacy",
                **route,
            }
        ],
    }
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return Site(path, port, admin_port)


@contextlib.asynccontextmanager
async def serve_process(site: Site) -> AsyncIterator[ServeProcess]:
    async with strangler_serve(site.config, site.port, site.admin_port, "--workers", "1") as p:
        yield p


async def upstream_of(session: aiohttp.ClientSession, site: Site, **headers: str) -> str:
    """Which upstream answered a request for PATH through ``site``'s proxy."""
    async with session.get(site.proxy + PATH, headers=headers) as response:
        await response.read()
        return response.headers.get("X-Strangler-Upstream", "?")


async def admin_call(
    session: aiohttp.ClientSession,
    site: Site,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = TOKEN,
    raw: str | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    async with session.request(method, site.admin + path, data=data, headers=headers) as response:
        text = await response.text()
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            payload = {"text": text}
        return response.status, payload


async def route_info(session: aiohttp.ClientSession, site: Site) -> dict[str, Any]:
    status, document = await admin_call(session, site, "GET", "/api/routes")
    assert status == 200, document
    found: dict[str, Any] = next(r for r in document["routes"] if r["name"] == "customers")
    return found
