"""What an adapter returns is checked before it reaches the wire: CR/LF or other bytes
that are not allowed in a method, path, header name or value get a 502 naming the
adapter, and nothing of it is sent (no second request upstream, no injected header)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .support import connect, one, serve, tags, wire_upstream

ADAPTERS = textwrap.dedent(
    '''
    from strangler.message import HttpRequest, HttpResponse


    class SplitsPath:
        """A buggy adapter: copies client input into the path unchecked."""

        def request(self, request: HttpRequest) -> HttpRequest:
            return request.replace(
                path="/v2/x HTTP/1.1\\r\\nHost: new\\r\\n\\r\\nGET /v2/smuggled"
            )

        def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
            return response


    class SplitsHeader:
        def request(self, request: HttpRequest) -> HttpRequest:
            return request.with_headers(X_Customer="7\\r\\nX-Admin: yes")

        def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
            return response


    class InjectsCookie:
        def request(self, request: HttpRequest) -> HttpRequest:
            return request

        def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
            return response.with_headers(
                X_Note="ok\\r\\nSet-Cookie: session=attacker\\r\\n\\r\\ninjected body"
            )
    '''
)


def _config(legacy: str, new: str, adapter: str) -> dict[str, object]:
    return {
        "legacy": "legacy",
        "upstreams": {"legacy": {"url": legacy}, "new": {"url": new}},
        "routes": [
            {
                "name": "orders",
                "match": {"path": "/api/orders/**"},
                "to": "new",
                "mode": "new",
                "adapter": f"edge_adapters:{adapter}",
            }
        ],
    }


@pytest.mark.parametrize("adapter", ["SplitsPath", "SplitsHeader"])
async def test_adapter_request_with_crlf_is_502_and_nothing_is_sent(
    tmp_path: Path, adapter: str
) -> None:
    (tmp_path / "edge_adapters.py").write_text(ADAPTERS)
    async with (
        wire_upstream() as legacy,
        wire_upstream() as new,
        serve(tmp_path, _config(legacy.url, new.url, adapter)) as proxy,
    ):
        response = await one(proxy.port, b"GET /api/orders/1 HTTP/1.1\r\nHost: edge.test\r\n\r\n")
    assert response.status == 502, (response.status_line, bytes(new.raw)[:300])
    assert tags(response) == ("orders", "new")
    assert "adapter" in response.body.decode()
    assert new.requests == [], f"the new upstream got {bytes(new.raw)[:300]!r}"


async def test_adapter_response_with_crlf_is_502_and_injects_nothing(tmp_path: Path) -> None:
    (tmp_path / "edge_adapters.py").write_text(ADAPTERS)
    async with (
        wire_upstream() as legacy,
        wire_upstream() as new,
        serve(tmp_path, _config(legacy.url, new.url, "InjectsCookie")) as proxy,
        connect(proxy.port) as client,
    ):
        await client.send(b"GET /api/orders/1 HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        wire = await client.everything(timeout=3.0)  # all the client got
    head = wire.split(b"\r\n\r\n", 1)[0].lower()
    assert b"set-cookie" not in head, f"the adapter injected a header: {wire[:300]!r}"
    assert wire.startswith(b"HTTP/1.1 502 "), wire[:300]
    assert b"adapter" in wire
