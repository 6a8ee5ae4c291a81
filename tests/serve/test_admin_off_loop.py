"""The admin listener runs off the proxy's event loop: an admin call that holds its
thread (a deliberately blocking handler here; a huge report or scrape in life) never
holds up proxied requests."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiohttp
from aiohttp import web

from strangler.admin.plane_loop import off_loop
from strangler.config import load_config
from strangler.serve import start_proxy
from tests.serve.conftest import routes_yaml
from tests.serve.support import side, upstreams


async def test_proxied_requests_are_answered_while_an_admin_call_blocks(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    @off_loop
    async def stuck(request: web.Request) -> web.Response:
        entered.set()
        release.wait(30)  # blocks the admin listener's thread, on purpose
        return web.json_response({"released": release.is_set()})

    def extension(app: web.Application) -> None:
        app.router.add_get("/stuck", stuck)

    async with upstreams() as up, aiohttp.ClientSession() as session:
        path = tmp_path / "routes.yaml"
        path.write_text(routes_yaml(port=0, admin_port=0, legacy_url=up.legacy, new_url=up.new))
        running = await start_proxy(
            load_config(path), config_path=path, admin_extensions=[extension]
        )
        try:
            blocked = asyncio.create_task(session.get(running.admin_url + "/stuck"))
            assert await asyncio.to_thread(entered.wait, 10)
            health = asyncio.create_task(session.get(running.admin_url + "/healthz"))

            answers = await asyncio.gather(
                *(side(session, f"{running.proxy_url}/api/customers/{i}") for i in range(20))
            )
            assert answers == ["legacy"] * 20
            # The admin listener really was stuck all along: nothing it serves answered.
            assert not blocked.done() and not health.done()

            release.set()
            async with await blocked as response:
                assert await response.json() == {"released": True}
            async with await health as response:
                assert response.status == 200
        finally:
            release.set()
            await running.close(1)


async def test_admin_writes_reach_the_proxy_loop_from_the_admin_thread(tmp_path: Path) -> None:
    """A flip is made on the admin thread's request and applied by the proxy's loop."""
    async with upstreams() as up, aiohttp.ClientSession() as session:
        path = tmp_path / "routes.yaml"
        path.write_text(routes_yaml(port=0, admin_port=0, legacy_url=up.legacy, new_url=up.new))
        running = await start_proxy(load_config(path), config_path=path)
        try:
            async with session.put(
                running.admin_url + "/api/routes/customers/override",
                json={"mode": "new"},
                headers={"Authorization": "Bearer secret"},
            ) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["mode"] == "new"
            assert await side(session, f"{running.proxy_url}/api/customers/1") == "new"
            async with session.get(running.admin_url + "/api/audit") as response:
                (entry,) = (await response.json())["entries"]
            assert entry["action"] == "override.set"
        finally:
            await running.close(1)
