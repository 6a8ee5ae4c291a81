"""Anti-corruption adapters on the data plane: code and declarative, and when they fail."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from tests.proxy.conftest import run_proxy
from tests.proxy.echo import echo_app
from tests.support.net import serve_app


def new_service(seen: list[dict[str, Any]]) -> web.Application:
    """The new service: records what it got and answers it back (201 for POST)."""

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        info = {
            "method": request.method,
            "path": request.path_qs,
            "body": json.loads(raw) if raw else None,
            "api_version": request.headers.get("X-Api-Version"),
            "had_cookie": "Cookie" in request.headers,
        }
        seen.append(info)
        if request.path.startswith("/v2/customers/"):
            return web.json_response(
                {"seen": info, "full_name": "Ada", "state": "active", "id": 7},
                status=201 if request.method == "POST" else 200,
            )
        return web.json_response({"seen": info})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def config(legacy: str, new: str, adapter: Any, *, fallback: bool = False) -> dict[str, Any]:
    return {
        "legacy": "legacy",
        "upstreams": {"legacy": {"url": legacy}, "new": {"url": new}},
        "routes": [
            {
                "name": "customers",
                "match": {"path": "/api/customers/{id}"},
                "to": "new",
                "mode": "new",
                "adapter": adapter,
                "fallback": fallback,
            }
        ],
    }


ADAPTER = "tests.proxy.sample_adapters:CustomerApi"


async def test_adapter_rewrites_the_request_and_reshapes_the_response() -> None:
    seen: list[dict[str, Any]] = []
    async with (
        serve_app(echo_app()) as legacy,
        serve_app(new_service(seen)) as new,
        run_proxy(config(legacy, new, ADAPTER)) as proxy,
        aiohttp.ClientSession() as s,
        s.put(
            proxy.url + "/api/customers/7?old=1",
            json={"name": "Ada"},
            headers={"Cookie": "sid=1"},
        ) as r,
    ):
        body = await r.json()
        assert r.status == 200  # the new service's 201 reshaped to what legacy said
        assert r.headers["X-Shape"] == "legacy"
        assert r.headers["X-Strangler-Upstream"] == "new"
        assert r.headers["X-Strangler-Route"] == "customers"
        assert int(r.headers["Content-Length"]) == len(
            json.dumps(body, separators=(",", ":")).encode()
        )
    assert seen[0] == {
        "method": "POST",
        "path": "/v2/customers/7?v=2",
        "body": {"full_name": "Ada"},
        "api_version": "2",
        "had_cookie": False,
    }
    assert body["name"] == "Ada" and body["answered_path"] == "/v2/customers/7?v=2"


async def test_declarative_adapter_rewrites_path_and_renames_fields_both_ways() -> None:
    seen: list[dict[str, Any]] = []
    declarative = {
        "path": "/v2/customers/{id}",
        "request": {"rename": {"name": "full_name"}, "values": {"status": {"A": "active"}}},
        "response": {
            "rename": {"full_name": "name", "state": "status"},
            "values": {"state": {"active": "A"}},
        },
    }
    async with (
        serve_app(echo_app()) as legacy,
        serve_app(new_service(seen)) as new,
        run_proxy(config(legacy, new, declarative)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(proxy.url + "/api/customers/7") as r:
            body = await r.json()
        async with s.patch(proxy.url + "/api/customers/7", json={"name": "Ada", "status": "A"}):
            pass
    assert seen[0]["path"] == "/v2/customers/7"
    assert body["name"] == "Ada" and body["status"] == "A" and "full_name" not in body
    assert seen[1]["body"] == {"full_name": "Ada", "status": "active"}


async def test_adapter_that_raises_is_502_naming_the_route_and_counted() -> None:
    seen: list[dict[str, Any]] = []
    async with serve_app(echo_app()) as legacy, serve_app(new_service(seen)) as new:
        for broken in (
            "tests.proxy.sample_adapters:Broken",
            "tests.proxy.sample_adapters:BrokenResponse",
        ):
            async with (
                run_proxy(config(legacy, new, broken)) as proxy,
                aiohttp.ClientSession() as s,
                s.get(proxy.url + "/api/customers/7") as r,
            ):
                assert r.status == 502
                body = await r.json()
            assert body["route"] == "customers" and "adapter" in body["error"]
            assert proxy.records[-1].error == "adapter"


async def test_adapter_that_raises_with_fallback_is_answered_by_legacy() -> None:
    async with serve_app(echo_app()) as legacy, serve_app(new_service([])) as new:
        cfg = config(legacy, new, "tests.proxy.sample_adapters:Broken", fallback=True)
        async with (
            run_proxy(cfg) as proxy,
            aiohttp.ClientSession() as s,
            s.get(proxy.url + "/api/customers/7") as r,
        ):
            assert r.status == 200
            assert r.headers["X-Strangler-Upstream"] == "legacy"
            assert (await r.json())["path"] == "/api/customers/7"
    assert proxy.records[-1].fallback and proxy.records[-1].error == "adapter"


async def test_requests_answered_by_legacy_skip_the_adapter() -> None:
    cfg_seen: list[dict[str, Any]] = []
    async with serve_app(echo_app(cfg_seen)) as legacy, serve_app(new_service([])) as new:
        cfg = config(legacy, new, "tests.proxy.sample_adapters:Broken")
        cfg["routes"][0]["mode"] = "legacy"
        async with (
            run_proxy(cfg) as proxy,
            aiohttp.ClientSession() as s,
            s.get(proxy.url + "/api/customers/7") as r,
        ):
            assert r.status == 200
    assert cfg_seen[0]["path"] == "/api/customers/7"


async def test_adapted_answer_over_max_body_is_502_not_buffered_forever() -> None:
    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 50_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", huge)
    async with serve_app(echo_app()) as legacy, serve_app(app) as new:
        cfg = config(legacy, new, ADAPTER) | {"limits": {"max_body": 10_000}}
        async with (
            run_proxy(cfg) as proxy,
            aiohttp.ClientSession() as s,
            s.get(proxy.url + "/api/customers/7") as r,
        ):
            assert r.status == 502
            body = await r.json()
    assert body["upstream"] == "new" and "max_body" in body["error"]
