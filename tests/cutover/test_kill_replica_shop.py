"""SIGKILL one of two `strangler serve` replicas of the sample shop (Redis state, the real
`strangler sync` process) in the middle of a cutover with writers on the other: the cutover
completes or aborts, every replica left agrees on the owner and routes by it, and every
write the surviving replica acknowledged is in both databases."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import yaml

from tests.control.conftest import RedisServer
from tests.serve.support import strangler_serve
from tests.support.net import free_port

from .shop import TOKEN, Writer, shop, until_aligned


def _replica_config(found_config: Path, name: str) -> tuple[Path, int, int]:
    """The shop's routes.yaml on other ports (a second replica of the same proxy)."""
    document = yaml.safe_load(found_config.read_text(encoding="utf-8"))
    port, admin = free_port(), free_port()
    document["listen"] = f"127.0.0.1:{port}"
    document["admin"]["listen"] = f"127.0.0.1:{admin}"
    path = found_config.parent / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path, port, admin


async def test_killing_a_replica_mid_cutover_keeps_owner_routing_and_data_in_agreement(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with shop(tmp_path, state=redis_up.url, namespace=namespace, process=True) as found:
        a_path, a_port, a_admin = _replica_config(tmp_path / "routes.yaml", "a.yaml")
        b_path, b_port, b_admin = _replica_config(tmp_path / "routes.yaml", "b.yaml")
        async with (
            strangler_serve(a_path, a_port, a_admin, "--workers", "1"),
            strangler_serve(b_path, b_port, b_admin, "--workers", "1") as b,
            aiohttp.ClientSession() as session,
        ):
            a_url, a_api = f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{a_admin}"
            writers = [Writer(f"a{i}") for i in range(2)]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(w.run(session, a_url, stop)) for w in writers]
            await asyncio.sleep(0.5)
            headers = {"Authorization": f"Bearer {TOKEN}"}

            async def move(to: str) -> tuple[int, dict[str, object]]:
                async with session.post(
                    f"{a_api}/api/contexts/customers/cutover", json={"to": to}, headers=headers
                ) as response:
                    return response.status, await response.json()

            # Catch a cutover in flight. One refused before it held anything (409: sync lag
            # over max_lag on a loaded machine) or done before it was seen is tried again,
            # the other way after a completed one, within a deadline.
            to, deadline = "service", time.monotonic() + 120
            while True:
                running = asyncio.create_task(move(to))
                while not running.done():
                    async with session.get(f"{a_api}/api/contexts") as response:
                        if (await response.json())["contexts"][0]["state"] != "steady":
                            break
                    await asyncio.sleep(0.002)
                if not running.done():
                    break
                done_status, done_body = running.result()
                assert done_status in (200, 409), done_body
                assert time.monotonic() < deadline, f"no cutover caught in flight: {done_body}"
                if done_status == 200:
                    to = "legacy" if to == "service" else "service"
                await asyncio.sleep(0.5)
            os.killpg(b.process.pid, signal.SIGKILL)
            status, body = await running
            assert status in (200, 409), body
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks)
            assert [w.failures for w in writers] == [[], []]

            owner = str(body["owner"])
            expected = "customers" if owner == "service" else "monolith"
            for api in (a_api, found.admin):
                async with session.get(f"{api}/api/contexts") as response:
                    view = (await response.json())["contexts"][0]
                assert (view["owner"], view["state"]) == (owner, "steady")
            for url in (a_url, found.url):
                payload = {"CUST_NM": "After Kill", "EMAIL_ADDR": "after@example.com"}
                async with session.post(url + "/api/customers", json=payload) as response:
                    assert response.status == 201
                    assert response.headers["X-Strangler-Upstream"] == expected

            await until_aligned(found)
            legacy = dict(await asyncio.to_thread(found.monolith_rows))
            service = dict(await asyncio.to_thread(found.service_rows))
            for w in writers:
                for ident, name in w.created.items():
                    assert legacy.get(ident) == name and service.get(ident) == name
