"""Signals that reach `strangler serve --workers N` while its workers are starting."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp

from tests.control.conftest import eventually
from tests.serve.conftest import routes_yaml
from tests.serve.support import strangler_serve, upstreams, wait_until_serving
from tests.serve.workers import children
from tests.support.net import free_port


async def test_a_sighup_while_workers_start_reloads_them_and_kills_none(tmp_path: Path) -> None:
    """The supervisor passes SIGHUP on to children that may not have their handler yet: a
    child must keep it for later, not die of it (a worker dying while it starts stops
    the whole server with exit 1)."""
    port, admin_port = free_port(), free_port()
    async with upstreams() as up, aiohttp.ClientSession() as session:
        path = tmp_path / "routes.yaml"
        text = routes_yaml(port=port, admin_port=admin_port, legacy_url=up.legacy, new_url=up.new)
        path.write_text(text)
        async with strangler_serve(path, port, admin_port, "--workers", "2", ready=False) as serve:
            pid = serve.process.pid
            await eventually(lambda: len(children(pid)) == 3, timeout=30)  # 2 workers, admin
            started = children(pid)
            serve.send(signal.SIGHUP)  # at once: the children are still starting
            await wait_until_serving(serve.admin + "/healthz")

            async def reloaded() -> bool:
                async with session.get(serve.admin + "/api/routes") as response:
                    return bool((await response.json())["config_version"] == 2)

            await eventually(reloaded, timeout=20)  # the SIGHUP was kept, not lost
            async with session.get(serve.proxy + "/api/customers/1") as response:
                assert response.status == 200
            assert serve.process.returncode is None
            assert children(pid) == started  # none died, none restarted
            serve.send(signal.SIGTERM)
            assert await serve.wait() == 0
