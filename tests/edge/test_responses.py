"""What the proxy sends back of an upstream's answer: the reason phrase, and
redirects that must not point clients at the upstream's internal address."""

from __future__ import annotations

from pathlib import Path

from .support import Seen, get, one, serve, wire_upstream


def _legacy(url: str) -> dict[str, object]:
    return {"legacy": "legacy", "upstreams": {"legacy": {"url": url}}}


async def test_the_upstreams_reason_phrase_is_kept(tmp_path: Path) -> None:
    def answer(seen: Seen) -> bytes:
        return b"HTTP/1.1 404 No Such Customer\r\ncontent-length: 2\r\n\r\nno"

    async with wire_upstream(answer) as legacy, serve(tmp_path, _legacy(legacy.url)) as proxy:
        response = await one(proxy.port, get("/api/customers/404"))
    assert response.status == 404
    assert response.status_line == b"HTTP/1.1 404 No Such Customer"


async def test_a_redirect_to_the_upstream_is_rewritten_to_the_clients_host(
    tmp_path: Path,
) -> None:
    async with wire_upstream() as legacy:
        internal = legacy.url  # http://127.0.0.1:PORT: the monolith's internal address

        def answer(seen: Seen) -> bytes:
            return (
                f"HTTP/1.1 302 Found\r\nLocation: {internal}/login?next=%2Fcart\r\n"
                f"Content-Location: {internal}/cart\r\ncontent-length: 0\r\n\r\n"
            ).encode()

        legacy.answer = answer
        async with serve(tmp_path, _legacy(legacy.url)) as proxy:
            response = await one(proxy.port, get("/cart", host="shop.example.com"))
    assert response.status == 302
    assert response.header("location") == "http://shop.example.com/login?next=%2Fcart"
    assert response.header("content-location") == "http://shop.example.com/cart"


async def test_a_redirect_elsewhere_is_left_alone(tmp_path: Path) -> None:
    """The rewrite touches only the upstream's own address (relative and foreign stay)."""

    def answer(seen: Seen) -> bytes:
        where = "/login" if seen.target == "/relative" else "https://idp.example.org/auth"
        return f"HTTP/1.1 302 Found\r\nLocation: {where}\r\ncontent-length: 0\r\n\r\n".encode()

    async with wire_upstream(answer) as legacy, serve(tmp_path, _legacy(legacy.url)) as proxy:
        relative = await one(proxy.port, get("/relative", host="shop.example.com"))
        foreign = await one(proxy.port, get("/foreign", host="shop.example.com"))
    assert relative.header("location") == "/login"
    assert foreign.header("location") == "https://idp.example.org/auth"
