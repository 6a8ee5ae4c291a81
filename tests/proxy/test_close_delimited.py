"""An upstream answer whose body runs until the connection closes (HTTP/1.1 allows it:
no Content-Length, not chunked) reaches the client whole and counts as answered."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import aiohttp

from tests.proxy.conftest import run_proxy
from tests.support.net import raw_upstream

BODY = b"line one\nline two\n" * 500


def close_delimited() -> AbstractAsyncContextManager[tuple[str, asyncio.Server]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        for i in range(0, len(BODY), 1000):  # in pieces, as a slow producer would
            writer.write(BODY[i : i + 1000])
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.close()

    return raw_upstream(handle)


async def test_a_body_delimited_by_the_close_reaches_the_client_whole() -> None:
    async with close_delimited() as (upstream, _):
        config = {
            "legacy": "legacy",
            "upstreams": {"legacy": {"url": upstream}},
            "routes": [],
        }
        async with run_proxy(config) as proxy, aiohttp.ClientSession() as session:
            for _ in range(2):  # and the pool does not reuse the closed connection
                async with session.get(proxy.url + "/report.txt") as resp:
                    assert resp.status == 200
                    assert await resp.read() == BODY
    assert [r.status for r in proxy.records] == [200, 200]
    assert all(r.error is None for r in proxy.records)


def cut_short(served: list[int]) -> AbstractAsyncContextManager[tuple[str, asyncio.Server]]:
    """Promises 10,000 bytes, sends 5,000, closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 5000)
        await writer.drain()
        writer.close()

    return raw_upstream(handle)


async def test_a_body_cut_short_cuts_the_client_and_is_not_sent_again() -> None:
    served: list[int] = []
    async with cut_short(served) as (upstream, _):
        config = {"legacy": "legacy", "upstreams": {"legacy": {"url": upstream}}, "routes": []}
        async with (
            run_proxy(config) as proxy,
            aiohttp.ClientSession() as session,
            session.get(proxy.url + "/big") as resp,
        ):
            assert resp.status == 200
            try:
                await asyncio.wait_for(resp.read(), 10)
                raise AssertionError("a truncated body was passed off as whole")
            except aiohttp.ClientPayloadError:
                pass  # the client sees the cut: the only honest signal left
    # Asking again once the head is out would append a second answer to the first.
    assert len(served) == 1
