"""The admin listener answers only the host names it is configured for (DNS rebinding):
a page on another name that resolves to 127.0.0.1 must not reach the admin API."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from strangler.config import load_config
from strangler.serve import start_proxy
from tests.serve.conftest import routes_yaml

HEADERS = {"Authorization": "Bearer secret"}


async def _status(session: aiohttp.ClientSession, method: str, url: str, host: str) -> int:
    async with session.request(
        method, url, headers={**HEADERS, "Host": host}, json={"mode": "new"}
    ) as response:
        await response.read()
        return response.status


async def test_the_admin_listener_refuses_other_host_names(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(routes_yaml(port=0, admin_port=0))
    running = await start_proxy(load_config(path), config_path=path, proxy=False)
    port = running.admin_address[1] if running.admin_address else 0
    flip = running.admin_url + "/api/routes/customers/override"
    try:
        async with aiohttp.ClientSession() as session:
            # A rebinding page: its own name, resolved to our loopback address.
            assert (
                await _status(
                    session, "GET", running.admin_url + "/api/routes", f"evil.example:{port}"
                )
                == 421
            )
            assert await _status(session, "PUT", flip, f"evil.example:{port}") == 421
            assert running.router.table.route("customers").mode == "legacy"  # type: ignore[union-attr]
            # The names it listens on, and addresses, are answered.
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"[::1]:{port}"):
                assert await _status(session, "GET", running.admin_url + "/healthz", host) == 200, (
                    host
                )
            assert await _status(session, "PUT", flip, f"localhost:{port}") == 200

            # admin.hosts lists the names (reloaded live with routes.yaml).
            text = path.read_text().replace(
                "  token: secret\n", "  token: secret\n  hosts: [admin.internal]\n"
            )
            path.write_text(text)
            assert running.watcher is not None and await running.watcher.check(force=True)
            assert (
                await _status(session, "GET", running.admin_url + "/healthz", "admin.internal")
                == 200
            )
            assert (
                await _status(session, "GET", running.admin_url + "/healthz", f"localhost:{port}")
                == 421
            )
            assert (
                await _status(session, "GET", running.admin_url + "/healthz", "evil.example") == 421
            )
    finally:
        await running.close(1)
