"""A reload of routes.yaml rotates the admin token: the old one stops working at once."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from strangler.config import load_config
from strangler.serve import bind_listener, start_proxy

CONFIG = """
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0, token: {token}}}
legacy: monolith
upstreams:
  monolith: {{url: http://127.0.0.1:9}}
  customers: {{url: http://127.0.0.1:9}}
routes:
  - {{name: customers, match: {{path: /api/customers/**}}, to: customers}}
"""


async def test_a_reload_rotates_the_admin_token(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(CONFIG.format(token="old-token"))
    running = await start_proxy(
        load_config(path), config_path=path, admin_port=0, proxy_sock=bind_listener("127.0.0.1", 0)
    )
    url = f"{running.admin_url}/api/routes/customers/override"
    body = {"mode": "shadow"}
    try:
        async with aiohttp.ClientSession() as session:

            async def put(token: str) -> int:
                headers = {"Authorization": f"Bearer {token}"}
                async with session.put(url, json=body, headers=headers) as resp:
                    return resp.status

            assert await put("old-token") == 200
            path.write_text(CONFIG.format(token="new-token"))
            assert running.watcher is not None
            assert await running.watcher.check(force=True) is True
            assert await put("old-token") == 401
            assert await put("new-token") == 200
    finally:
        await running.close(0.5)
