"""SIGKILL the sync worker (a real `strangler sync` process) in the middle of a cutover, with
writers running: the cutover aborts, the held writes go to the old owner, and once the worker
is back every acknowledged write is in both databases and the next cutover completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.control.conftest import RedisServer

from .shop import TOKEN, Writer, shop, until_aligned


async def test_killing_the_sync_worker_mid_cutover_aborts_cleanly(
    tmp_path: Path, redis_up: RedisServer, namespace: str
) -> None:
    async with (
        shop(tmp_path, state=redis_up.url, namespace=namespace, process=True) as found,
        aiohttp.ClientSession() as session,
    ):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{found.admin}/api/contexts/customers/cutover"
        writers = [Writer(f"k{i}") for i in range(2)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(session, found.url, stop)) for w in writers]
        await asyncio.sleep(0.3)

        async def move(to: str) -> tuple[int, dict[str, object]]:
            async with session.post(url, json={"to": to}, headers=headers) as response:
                return response.status, await response.json()

        running = asyncio.create_task(move("service"))
        while True:  # wait for the hold, then kill the worker the drain waits on
            async with session.get(f"{found.admin}/api/contexts") as response:
                if (await response.json())["contexts"][0]["state"] != "steady":
                    break
            await asyncio.sleep(0.002)
        await found.kill_worker()
        status, body = await running
        assert status == 409 and body["result"] == "aborted", body
        async with session.get(f"{found.admin}/api/contexts") as response:
            view = (await response.json())["contexts"][0]
        assert (view["owner"], view["state"]) == ("legacy", "steady")

        # With no worker running, sync cannot be caught up: refused, nothing held.
        status, body = await move("service")
        assert status == 409, body
        assert "sync lag of 'customers' is 3.50s, over max_lag 3s" in str(body["error"])

        await found.start_worker()
        # Once the worker is back and caught up (a new process: seconds on a loaded
        # machine), the same cutover completes; until then it is refused on the lag.
        deadline = asyncio.get_running_loop().time() + 60.0
        while True:
            status, body = await move("service")
            lagging = status == 409 and "sync lag" in str(body.get("error"))
            if not lagging or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        assert status == 200 and body["owner"] == "service", body
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
        assert [w.failures for w in writers] == [[], []]
        await until_aligned(found)
        legacy = dict(await asyncio.to_thread(found.monolith_rows))
        service = dict(await asyncio.to_thread(found.service_rows))
        for w in writers:
            for ident, name in w.created.items():
                assert legacy.get(ident) == name and service.get(ident) == name, (ident, name)


async def test_memory_state_with_a_separate_worker_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    # `strangler sync` in its own process cannot see a memory:// store: moving the data
    # would leave it judging every service write as the non-owner's. Refused, untouched.
    async with shop(tmp_path, process=True) as found, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(
            f"{found.admin}/api/contexts/customers/cutover",
            json={"to": "service"},
            headers=headers,
        ) as response:
            status, body = response.status, await response.json()
        assert status == 409
        assert "no sync worker follows this proxy's ownership of 'customers'" in body["error"]
        assert "redis://" in body["error"]
