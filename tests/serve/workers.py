"""Two `strangler serve` workers, and which of them served what.

Which worker proxied a request is read from the kernel, not from the product: the
upstream looks up which child process owns the client end of the connection it is
served on (/proc), so "both workers served" is a fact, not something we reported.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

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


async def gets_on_each(
    held: dict[int, list[Connection]], count: int, path: str = "/api/customers"
) -> list[int]:
    """``count`` GETs of ``path``/0 … ``path``/count-1 on every held connection, all at once:
    the statuses."""

    async def some(connection: Connection) -> list[int]:
        return [(await raw_get(connection, f"{path}/{i}"))[0] for i in range(count)]

    each = await asyncio.gather(*(some(c) for cs in held.values() for c in cs))
    return [status for statuses in each for status in statuses]


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
    tmp_path: Path,
    mode: str = "legacy",
    new_status: int = 200,
    route_keys: str = "",
    workers: tuple[str, ...] = ("--workers", "2"),
) -> AsyncIterator[tuple[ServeProcess, Seen]]:
    """`strangler serve` with ``state: memory://`` and ``workers`` (default: two) in front
    of a legacy and a new upstream that answer ``{"side": ...}`` and note who asked."""
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
        async with strangler_serve(path, port, admin_port, *workers) as serve:
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
