"""Two real `strangler serve` processes sharing one real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.serve.support import strangler_serve, wait_until_serving

from .conftest import RedisServer, eventually
from .stack import Site, admin_call, route_info, serve_process, upstream_of, upstreams, write_config


async def test_flip_reset_and_restart_across_two_proxy_processes(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with upstreams() as ups, aiohttp.ClientSession() as session:
        sites = [
            write_config(tmp_path, ups, state=redis_up.url, namespace=namespace, name=f"r{i}.yaml")
            for i in (1, 2)
        ]
        async with serve_process(sites[0]), serve_process(sites[1]):
            assert [await upstream_of(session, s) for s in sites] == ["monolith", "monolith"]

            status, body = await admin_call(
                session, sites[0], "PUT", "/api/routes/customers/override", {"mode": "new"}
            )
            assert status == 200, body
            assert (body["mode"], body["source"]) == ("new", "override")
            for site in sites:
                await eventually(lambda s=site: _answers(session, s, "customers"))
            info = await route_info(session, sites[1])
            assert (info["mode"], info["source"]) == ("new", "override")
            assert info["override"]["mode"] == "new"

            status, body = await admin_call(
                session, sites[1], "DELETE", "/api/routes/customers/override"
            )
            assert status == 200 and body["source"] == "config", body
            for site in sites:
                await eventually(lambda s=site: _answers(session, s, "monolith"))

            status, _ = await admin_call(
                session,
                sites[1],
                "PUT",
                "/api/routes/customers/override",
                {"mode": "canary", "percent": 100},
            )
            assert status == 200
        # Both stopped; the override lives in Redis and is back when they restart.
        async with serve_process(sites[0]), serve_process(sites[1]):
            for site in sites:
                assert await upstream_of(session, site) == "customers"
                info = await route_info(session, site)
                assert (info["mode"], info["percent"], info["source"]) == (
                    "canary",
                    100,
                    "override",
                )


async def test_redis_going_away_fails_no_request_and_both_converge_when_back(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with upstreams() as ups, aiohttp.ClientSession() as session:
        sites = [
            write_config(tmp_path, ups, state=redis_up.url, namespace=namespace, name=f"r{i}.yaml")
            for i in (1, 2)
        ]
        async with serve_process(sites[0]), serve_process(sites[1]):
            assert (await admin_call(session, sites[0], "PUT", _OVERRIDE, {"mode": "new"}))[
                0
            ] == 200
            for site in sites:
                await eventually(lambda s=site: _answers(session, s, "customers"))

            failures: list[str] = []
            stop, redis_down = asyncio.Event(), asyncio.Event()

            async def traffic() -> int:
                count = 0
                while not stop.is_set():
                    for site in sites:
                        try:
                            async with session.get(site.proxy + "/api/customers/1") as response:
                                await response.read()
                                if response.status != 200:
                                    failures.append(f"{site.port}: {response.status}")
                                elif (
                                    redis_down.is_set()
                                    and response.headers["X-Strangler-Upstream"] != "customers"
                                ):
                                    failures.append(f"{site.port}: last-known table lost")
                        except aiohttp.ClientError as exc:
                            failures.append(f"{site.port}: {exc!r}")
                        count += 1
                return count

            load = asyncio.create_task(traffic())
            await asyncio.sleep(0.3)
            redis_down.set()
            redis_up.stop()
            for site in sites:
                await eventually(lambda s=site: _state_connected(session, s, False))
            status, body = await admin_call(session, sites[1], "PUT", _OVERRIDE, {"mode": "legacy"})
            assert status == 503, body
            assert "unreachable" in body["error"] and "last-known table" in body["error"]
            await asyncio.sleep(0.5)  # more traffic with Redis gone

            redis_down.clear()
            redis_up.start()
            for site in sites:
                await eventually(lambda s=site: _state_connected(session, s, True))
            stop.set()
            assert await load > 0
            assert failures == []

            # The restarted Redis is empty: both reconciled to routes.yaml; flips work again.
            for site in sites:
                await eventually(lambda s=site: _answers(session, s, "monolith"))
            status, _ = await admin_call(session, sites[1], "PUT", _OVERRIDE, {"mode": "new"})
            assert status == 200
            for site in sites:
                await eventually(lambda s=site: _answers(session, s, "customers"))


_OVERRIDE = "/api/routes/customers/override"


async def _answers(session: aiohttp.ClientSession, site: Site, upstream: str) -> bool:
    return await upstream_of(session, site) == upstream


async def _state_connected(session: aiohttp.ClientSession, site: Site, want: bool) -> bool:
    status, document = await admin_call(session, site, "GET", "/api/routes")
    return status == 200 and document["state"]["connected"] is want


async def test_a_flip_reaches_every_worker_of_a_multi_process_proxy(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with upstreams() as ups, aiohttp.ClientSession() as session:
        site = write_config(tmp_path, ups, state=redis_up.url, namespace=namespace)
        async with strangler_serve(site.config, site.port, site.admin_port, "--workers", "2"):
            await wait_until_serving(site.proxy + "/")
            status, _ = await admin_call(session, site, "PUT", _OVERRIDE, {"mode": "new"})
            assert status == 200

            # The admin listener is its own process; every proxy worker follows Redis.
            async def every_worker() -> bool:
                answers = set()
                for _ in range(20):
                    async with aiohttp.ClientSession() as fresh:  # new connections spread out
                        answers.add(await upstream_of(fresh, site))
                return answers == {"customers"}

            await eventually(every_worker)
