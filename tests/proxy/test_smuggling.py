"""Ambiguous requests are refused with 400 and never reach an upstream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.proxy.conftest import one_upstream, run_proxy
from tests.proxy.echo import echo_app
from tests.proxy.rawhttp import send_raw, status_of
from tests.support.net import serve_app

SMUGGLING = {
    "content-length and transfer-encoding": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "transfer-encoding and content-length": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "duplicate equal content-length": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    ),
    "differing content-length": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 41\r\n\r\n"
        b"helloGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "bad chunk size": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    ),
    "chunk size overflow": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"
    ),
    "transfer-encoding not chunked": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello"
    ),
    "obfuscated transfer-encoding": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "space before colon": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "negative content-length": (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
    "path escaping the root": (
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ),
    "encoded dot segments escaping the root": (
        b"GET /a/%2e%2e/%2e%2e/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ),
}


@pytest.mark.parametrize("shape", sorted(SMUGGLING))
async def test_ambiguous_request_is_refused_and_never_forwarded(shape: str) -> None:
    seen: list[dict[str, Any]] = []
    async with serve_app(echo_app(seen)) as url, run_proxy(one_upstream(url)) as proxy:
        answer = await send_raw(proxy.port, SMUGGLING[shape])
    assert status_of(answer) == 400, answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["status"] == 400
    assert b"x-strangler-route: -" in answer.lower()
    assert seen == [], f"upstream saw {seen}"
    assert proxy.records and proxy.records[-1].status == 400


async def test_a_valid_request_before_a_bad_one_on_the_same_connection_is_answered() -> None:
    seen: list[dict[str, Any]] = []
    async with serve_app(echo_app(seen)) as url, run_proxy(one_upstream(url)) as proxy:
        answer = await send_raw(
            proxy.port,
            b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        )
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 400" in answer
    assert [hit["path"] for hit in seen] == ["/fine"]


async def test_a_bad_chunk_later_in_a_streaming_upload_is_400_and_never_completes() -> None:
    seen: list[dict[str, Any]] = []
    async with serve_app(echo_app(seen)) as url, run_proxy(one_upstream(url)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.3)  # the proxy is already streaming this request upstream
        writer.write(b"zz\r\nGET /smuggled HTTP/1.1\r\n\r\n0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert status_of(answer) == 400, answer[:200]
    assert seen == [], f"upstream completed {seen}"
