"""`strangler serve --workers 2` with `state: memory://`: the supervisor owns the state.

Which worker proxied a request is read from the kernel, not from the product: the
upstream looks up which child process owns the client end of the connection it is
served on (/proc), so "both workers served" is a fact, not something we reported.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from strangler.config import Config, parse_config
from strangler.process import worker_count
from tests.control.conftest import eventually
from tests.serve.conftest import routes_yaml
from tests.serve.support import ServeProcess, strangler_serve
from tests.support.net import free_port, serve_app

HEADERS = {"Authorization": "Bearer secret"}


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def owner_of_port(port: int, pids: set[int]) -> int | None:
    """The process among ``pids`` holding the loopback TCP socket with local ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        # An old connection on the same port may linger in TIME_WAIT (inode 0).
        if int(fields[1].split(":")[1], 16) == port and fields[9] != "0":
            inodes.add(fields[9])
    return next((pid for pid in pids if inodes & _socket_inodes(pid)), None)


def worker_of_client(writer: asyncio.StreamWriter, serve_pid: int) -> int | None:
    """The worker holding the accepted end of the test's connection ``writer``."""
    client_port = writer.get_extra_info("sockname")[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote = int(fields[2].split(":")[1], 16)
        if remote == client_port and fields[9] != "0":
            inode = fields[9]
            return next((pid for pid in children(serve_pid) if inode in _socket_inodes(pid)), None)
    return None


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def raw_get(connection: Connection, path: str) -> tuple[int, str]:
    """One GET on a keep-alive connection: the status and the response head."""
    reader, writer = connection
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = int(head.lower().split("content-length:")[1].split("\r\n")[0])
    await reader.readexactly(length)
    return int(head.split(" ", 2)[1]), head


async def pinned(serve: ServeProcess, per_worker: int, path: str) -> dict[int, list[Connection]]:
    """Keep-alive connections, ``per_worker`` held by each of the two workers (a
    connection stays with the worker that accepted it)."""
    port = int(serve.proxy.rsplit(":", 1)[1])
    held: dict[int, list[Connection]] = {}
    for _ in range(200):
        connection = await asyncio.open_connection("127.0.0.1", port)
        await raw_get(connection, path)  # accepted and served: its worker is known
        worker = worker_of_client(connection[1], serve.process.pid)
        if worker is None or len(held.setdefault(worker, [])) >= per_worker:
            connection[1].close()
            continue
        held[worker].append(connection)
        if len(held) == 2 and all(len(c) == per_worker for c in held.values()):
            return held
    raise AssertionError(f"could not pin connections to two workers: {held}")


@dataclass
class Seen:
    """(worker pid, side) of every request the upstreams answered."""

    serve_pid: int = 0
    answers: list[tuple[int | None, str]] = field(default_factory=list)


def _app(name: str, seen: Seen, status: int = 200) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        worker = owner_of_port(peer[1], children(seen.serve_pid)) if peer else None
        seen.answers.append((worker, name))
        return web.json_response({"side": name}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@asynccontextmanager
async def two_workers(
    tmp_path: Path, mode: str = "legacy", new_status: int = 200, route_keys: str = ""
) -> AsyncIterator[tuple[ServeProcess, Seen]]:
    seen = Seen()
    port, admin_port = free_port(), free_port()
    async with (
        serve_app(_app("legacy", seen)) as legacy,
        serve_app(_app("new", seen, new_status)) as new,
    ):
        path = tmp_path / "routes.yaml"
        path.write_text(
            routes_yaml(
                port=port,
                admin_port=admin_port,
                legacy_url=legacy,
                new_url=new,
                mode=mode,
            )
            + route_keys
        )
        async with strangler_serve(path, port, admin_port, "--workers", "2") as serve:
            seen.serve_pid = serve.process.pid
            yield serve, seen


async def burst(serve: ServeProcess, count: int = 20, path: str = "/api/customers") -> list[int]:
    """``count`` requests at once, each on a fresh connection (so both workers accept)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> int:
            async with session.get(f"{serve.proxy}{path}/{i}") as response:
                await response.read()
                return response.status

        return await asyncio.gather(*(one(i) for i in range(count)))


async def both_serving(serve: ServeProcess, seen: Seen, path: str = "/api/customers") -> set[int]:
    """Send until both workers have answered (which one accepts is the kernel's choice)."""
    for _ in range(20):
        await burst(serve, path=path)
        if len({w for w, _ in seen.answers if w is not None}) == 2:
            break
    workers = {w for w, _ in seen.answers}
    assert len(workers) == 2 and None not in workers, seen.answers
    return workers


async def test_a_flip_through_the_admin_api_reaches_both_workers(tmp_path: Path) -> None:
    async with two_workers(tmp_path) as (serve, seen), aiohttp.ClientSession() as admin:
        workers = await both_serving(serve, seen)
        assert {side for _, side in seen.answers} == {"legacy"}

        async with admin.put(
            serve.admin + "/api/routes/customers/override", json={"mode": "new"}, headers=HEADERS
        ) as response:
            assert response.status == 200, await response.text()
        flipped_at = len(seen.answers)

        def both_on_new() -> bool:
            after = seen.answers[flipped_at:]
            return all(
                any(w == worker and side == "new" for w, side in after) for worker in workers
            )

        async def send_and_check() -> bool:
            await burst(serve)
            return both_on_new()

        await eventually(send_and_check, timeout=20)
        # Once a worker answered from new, it never went back to legacy.
        for worker in workers:
            sides = [side for w, side in seen.answers[flipped_at:] if w == worker]
            assert "legacy" not in sides[sides.index("new") :], sides

        async with admin.get(serve.admin + "/api/routes") as response:
            body = await response.json()
        (route,) = body["routes"]
        assert (route["mode"], route["source"]) == ("new", "override")
        assert body["state"]["url"] == "memory://" and body["state"]["connected"]

        # Back to routes.yaml, again on both workers.
        async with admin.delete(
            serve.admin + "/api/routes/customers/override", headers=HEADERS
        ) as response:
            assert response.status == 200
        cleared_at = len(seen.answers)

        async def both_back() -> bool:
            await burst(serve)
            after = seen.answers[cleared_at:]
            return all(
                any(w == worker and side == "legacy" for w, side in after) for worker in workers
            )

        await eventually(both_back, timeout=20)
        serve.send(signal.SIGTERM)
        assert await serve.wait() == 0


async def test_rollback_counts_from_both_workers_add_up(tmp_path: Path) -> None:
    """20 failing requests, 10 through each worker, roll the route back at min_requests
    20: neither worker saw 20 alone, so the counts met in the supervisor's state."""
    rollback = "    rollback: {error_rate: 0.5, min_requests: 20, window: 60s}\n"
    async with (
        two_workers(tmp_path, mode="new", new_status=500, route_keys=rollback) as (serve, seen),
        aiohttp.ClientSession() as admin,
    ):
        # Connections held by each worker, opened on an unmatched path (legacy: not
        # counted by the route's rollback); then 10 failing requests through each.
        held = await pinned(serve, 2, "/elsewhere")
        warmed = len(seen.answers)

        async def five(connection: Connection) -> list[int]:
            return [(await raw_get(connection, f"/api/customers/{i}"))[0] for i in range(5)]

        statuses = await asyncio.gather(*(five(c) for cs in held.values() for c in cs))
        # 500 from the service, or 502 once a worker's circuit breaker opened: all failures.
        assert all(status in (500, 502) for each in statuses for status in each), statuses
        assert set(Counter(w for w, _ in seen.answers[warmed:])) == set(held)

        async def rolled_back() -> bool:
            async with admin.get(serve.admin + "/api/routes") as response:
                (route,) = (await response.json())["routes"]
            return bool(route["source"] == "auto-rollback" and route["mode"] == "legacy")

        await eventually(rolled_back, timeout=20)

        # Every worker now answers from legacy (each asked on a connection it holds).
        async def both_on_legacy() -> bool:
            heads = [(await raw_get(cs[0], "/api/customers/9"))[1] for cs in held.values()]
            return all("x-strangler-upstream: monolith" in h.lower() for h in heads)

        await eventually(both_on_legacy, timeout=20)
        async with admin.get(serve.admin + "/api/audit") as response:
            entries = (await response.json())["entries"]
        assert [e["action"] for e in entries] == ["auto-rollback"]


async def test_a_cutover_holds_and_moves_writes_on_both_workers(tmp_path: Path) -> None:
    """Context owners and hold acknowledgements live in the supervisor's state too: the
    cutover waits for every worker's acknowledgement, then both send writes to the service."""
    routes = (
        "  - name: customer-writes\n"
        "    match: {path: /api/customers/**, methods: [POST]}\n"
        "    to: customers\n"
        "contexts:\n"
        "  customers: {routes: [customers, customer-writes], hold_timeout: 5s}\n"
    )
    async with (
        two_workers(tmp_path, mode="new", route_keys=routes) as (serve, seen),
        aiohttp.ClientSession() as admin,
    ):
        workers = await both_serving(serve, seen)
        async with admin.post(
            serve.admin + "/api/contexts/customers/cutover", json={"to": "service"}, headers=HEADERS
        ) as response:
            body = await response.json()
            assert response.status == 200, body
        async with admin.get(serve.admin + "/api/contexts") as response:
            (context,) = (await response.json())["contexts"]
        assert (context["owner"], context["state"]) == ("service", "steady")

        start = len(seen.answers)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:

            async def write(i: int) -> None:
                async with client.post(f"{serve.proxy}/api/customers/{i}", json={}) as response:
                    assert response.status == 200

            for _ in range(20):
                await asyncio.gather(*(write(i) for i in range(20)))
                if {w for w, _ in seen.answers[start:]} == workers:
                    break
        after = seen.answers[start:]
        assert {w for w, _ in after} == workers
        assert {side for _, side in after} == {"new"}


def test_the_default_is_one_worker_per_core_except_memory_state_with_shadowing() -> None:
    def config(state: str, mode: str) -> Config:
        return parse_config(
            {
                "state": state,
                "legacy": "monolith",
                "upstreams": {"monolith": {"url": "http://127.0.0.1:9"}},
                "routes": [{"name": "r", "match": {"path": "/r"}, "to": "monolith", "mode": mode}],
            }
        )

    cores = os.cpu_count() or 1
    assert worker_count(config("memory://", "new"), 0) == cores
    assert worker_count(config("redis://127.0.0.1:6379/0", "shadow"), 0) == cores
    # Shadow comparisons stay per process with memory://: one, unless asked for more.
    assert worker_count(config("memory://", "shadow"), 0) == 1
    assert worker_count(config("memory://", "shadow"), 3) == 3
