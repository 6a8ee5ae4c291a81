"""Host header validation (RFC 9112 §3.2: a request with no Host, more than one, or an
invalid one gets 400; NGINX does the same). Refused requests never reach an upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import one, serve, wire_upstream

HEADS = {
    "duplicate": b"GET /api/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    "missing": b"GET /api/x HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "invalid-slash": b"GET /api/x HTTP/1.1\r\nHost: a.example/evil\r\n\r\n",
    "invalid-space": b"GET /api/x HTTP/1.1\r\nHost: a example\r\n\r\n",
}


@pytest.mark.parametrize("case", list(HEADS))
async def test_a_bad_host_is_400_and_never_forwarded(tmp_path: Path, case: str) -> None:
    async with wire_upstream() as legacy:
        config = {
            "legacy": "legacy",
            "upstreams": {"legacy": {"url": legacy.url, "host": "client"}},
        }
        async with serve(tmp_path, config) as proxy:
            response = await one(proxy.port, HEADS[case])
            good = await one(proxy.port, b"GET /api/ok HTTP/1.1\r\nHost: a.example\r\n\r\n")
    assert good.status == 200  # a well-formed request on the same proxy is served
    assert response.status == 400, (response.status, response.body[:200])
    assert [s.target for s in legacy.requests] == ["/api/ok"]
