"""The image, run as a platform team would run it: `docker run` with a mounted routes.yaml.

The container serves on the host's network (``--network host``) in front of two real
upstreams on loopback; the test goes through it as a client, flips a route with the
admin token, reads /healthz and /metrics, waits for the image's own HEALTHCHECK, looks
at which user the server runs as, and stops it with SIGTERM while a request is in flight.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest
from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name

import strangler
from tests.deploy.engine import ROOT, container, docker
from tests.serve.support import upstreams, wait_until_serving
from tests.support.net import free_port

# The first test also waits for scripts/image: the compiled wheel alone takes minutes on a
# loaded machine (later runs reuse it while the sources are the same).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

TOKEN = "image-test-token"

ROUTES = """\
version: 1
listen: 127.0.0.1:{port}
admin:
  listen: 127.0.0.1:{admin_port}
  token: ${{STRANGLER_ADMIN_TOKEN}}
legacy: monolith
upstreams:
  monolith: {{url: "{legacy}"}}
  customers: {{url: "{new}"}}
routes:
  - name: customers
    match: {{path: /api/customers/**}}
    to: customers
    mode: legacy
"""


_ENTRY = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)(?: ; (.+?))? \\$", re.M)
_LIST = (
    "import importlib.metadata as m, platform; print(platform.python_version()); "
    "[print(d.metadata['Name'], d.version) for d in m.distributions()]"
)


def test_the_image_holds_exactly_the_image_lock(image: str) -> None:
    """Every package of scripts/requirements-image.lock at its locked version, and nothing
    else but strangler (not even pip): the image installs from the same lock as CI."""
    lines = docker("run", "--rm", "--entrypoint", "python", image, "-c", _LIST).splitlines()
    python, installed = lines[0], dict(line.split() for line in lines[1:])
    env = {str(key): str(value) for key, value in default_environment().items()}
    env.update(sys_platform="linux", python_full_version=python)
    lock = (ROOT / "scripts" / "requirements-image.lock").read_text()
    expected: dict[str, str] = {
        canonicalize_name(name): version
        for name, version, marker in _ENTRY.findall(lock)
        if not marker or Marker(marker).evaluate(env)
    }
    expected["strangler"] = strangler.__version__
    assert {canonicalize_name(name): v for name, v in installed.items()} == expected
    assert python.startswith("3.11.")


def test_the_image_runs_the_compiled_build(image: str) -> None:
    """scripts/image builds strangler's wheel with mypyc; the image runs it, and can be
    told to load the same code from source."""
    assert "(compiled: mypyc," in docker("run", "--rm", image, "--version")
    pure = docker("run", "--rm", "-e", "STRANGLER_PURE=1", image, "--version")
    assert "(pure Python: STRANGLER_PURE=1)" in pure


async def _side(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["side"])


async def test_the_proxy_image_serves_flips_reports_and_stops_gracefully(
    image: str, tmp_path: Path
) -> None:
    port, admin_port = free_port(), free_port()
    proxy, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    async with upstreams() as up, aiohttp.ClientSession() as session:
        config = tmp_path / "routes.yaml"
        config.write_text(
            ROUTES.format(port=port, admin_port=admin_port, legacy=up.legacy, new=up.new)
        )
        config.chmod(0o644)  # read by uid 10001 inside the container
        mount = f"{config}:/etc/strangler/routes.yaml:ro"
        started = time.monotonic()
        check = f"STRANGLER_HEALTHCHECK_URL={admin}/healthz"  # the image's default is :8081
        with container(
            "-e", f"STRANGLER_ADMIN_TOKEN={TOKEN}", "-e", check, "-v", mount, image=image
        ) as server:  # fmt: skip
            await wait_until_serving(admin + "/healthz")
            print(f"\ncontainer serving {time.monotonic() - started:.2f} s after docker run")

            # a client through the container: legacy until the route is flipped
            assert await _side(session, proxy + "/api/customers/7") == "legacy"
            assert await _side(session, proxy + "/orders/1") == "legacy"
            override = admin + "/api/routes/customers/override"
            async with session.put(override, json={"mode": "new"}) as refused:
                assert refused.status == 401
            assert await _side(session, proxy + "/api/customers/7") == "legacy"
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            async with session.put(override, json={"mode": "new"}, headers=bearer) as flipped:
                assert flipped.status == 200, await flipped.text()
            assert await _side(session, proxy + "/api/customers/7") == "new"
            assert await _side(session, proxy + "/orders/1") == "legacy"

            async with session.get(admin + "/healthz") as health:
                assert health.status == 200
            # One worker per core (memory:// included): another worker's counts reach
            # the admin process's /metrics within about a second.
            for _ in range(50):
                async with session.get(admin + "/metrics") as metrics:
                    text = await metrics.text()
                served = re.search(
                    r'^strangler_requests_total\{[^}]*route="customers"[^}]*upstream="customers"'
                    r'[^}]*\} (\S+)$', text, re.M
                )  # fmt: skip
                if served:
                    break
                await asyncio.sleep(0.1)
            assert served and float(served.group(1)) >= 1, text
            assert re.search(r'^strangler_route_mode\{mode="new",route="customers"\} 1', text, re.M)

            # the image's HEALTHCHECK (python urllib against /healthz) turns healthy
            await asyncio.to_thread(server.wait_healthy)

            # the server process (PID 1) runs as the image's non-root user
            uid = re.search(r"^Uid:\s+(\d+)", server.exec("cat", "/proc/1/status"), re.M)
            assert uid and uid.group(1) == "10001"
            assert server.inspect()["Config"]["User"] == "10001:10001"  # type: ignore[index]

            # SIGTERM while a request is in flight: it finishes, then the server exits 0
            slow = asyncio.create_task(_side(session, proxy + "/slow?sleep=1.5"))
            while "/slow?sleep=1.5" not in up.hits:
                await asyncio.sleep(0.02)
            await asyncio.to_thread(docker, "kill", "--signal", "TERM", server.id)
            assert await slow == "legacy"
            assert await asyncio.to_thread(server.wait) == 0, server.logs()
