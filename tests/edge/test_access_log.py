"""The access log (``access_log:``): one JSON line per request, after known traffic."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from strangler.proxy.accesslog import FLUSH_LINES, AccessLog

from .configs import route, two_upstreams
from .support import get, one, serve, wire_upstream


async def _lines(path: Path, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines()]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.05)


async def test_one_json_line_per_request_with_what_happened(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    async with wire_upstream() as legacy, wire_upstream() as new:
        orders = route("orders", "/api/orders/**", "new")
        config = two_upstreams(legacy.url, new.url, orders, access_log=str(log))
        async with serve(tmp_path, config) as proxy:
            first = await one(proxy.port, get("/api/x", extra="X-Request-Id: req-1\r\n"))
            second = await one(
                proxy.port,
                b"POST /api/orders/7 HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 2\r\n\r\n{}",
            )
            bad = await one(proxy.port, b"GET /api/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            lines = await _lines(log, 3)
    assert [first.status, second.status, bad.status] == [200, 200, 400]
    assert len(lines) == 3, lines
    # One line each, in whatever order the workers flushed them.
    by_status_method = {(line["status"], line["method"]): line for line in lines}
    plain = by_status_method[200, "GET"]
    order = by_status_method[200, "POST"]
    refused = by_status_method[400, "GET"]
    assert {k: plain[k] for k in ("request_id", "method", "path", "route", "mode")} == {
        "request_id": "req-1",
        "method": "GET",
        "path": "/api/x",
        "route": "-",
        "mode": "-",
    }
    assert (plain["decision"], plain["upstream"], plain["status"]) == ("legacy", "legacy", 200)
    assert plain["bytes_in"] == 0 and plain["bytes_out"] > 0
    assert plain["fallback"] is False and plain["shadow"] is None
    assert plain["duration_us"] >= 0 and plain["time"].endswith("Z")
    assert (order["route"], order["mode"], order["decision"], order["upstream"]) == (
        "orders",
        "new",
        "new",
        "new",
    )
    assert (order["method"], order["bytes_in"], order["status"]) == ("POST", 2, 200)
    assert order["request_id"] == second.header("x-request-id")
    assert (refused["status"], refused["upstream"]) == (400, "-")
    assert refused["request_id"] == bad.header("x-request-id")


def _logged(lines: AccessLog, *paths: str) -> None:
    for path in paths:
        lines.line(b"r-" + path.encode(), "GET", path, None, "-", "legacy", "legacy", 200,
                   0.001, 0, 10, False, False)  # fmt: skip


async def test_lines_are_whole_in_order_and_written_at_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    lines = AccessLog(str(path), asyncio.get_running_loop())
    _logged(lines, *(f"/a/{i}" for i in range(FLUSH_LINES + 5)))  # one flush past the size
    written = len(path.read_text().splitlines())
    lines.close()  # the rest: at close, before the timer
    found = [json.loads(line) for line in path.read_text().splitlines()]
    assert written == FLUSH_LINES
    assert [line["path"] for line in found] == [f"/a/{i}" for i in range(FLUSH_LINES + 5)]
    assert found[0]["request_id"] == "r-/a/0" and found[0]["duration_us"] == 1000


async def test_a_log_moved_away_or_deleted_is_reopened_at_its_path(tmp_path: Path) -> None:
    """logrotate's default (``create``): the file is renamed, and the next lines go to a new
    file at the configured path, without a signal; likewise after a delete."""
    path = tmp_path / "access.log"
    lines = AccessLog(str(path), asyncio.get_running_loop())
    try:
        _logged(lines, "/before")
        lines.flush()
        path.rename(tmp_path / "access.log.1")
        _logged(lines, "/after")
        lines.flush()
        path.unlink()
        _logged(lines, "/deleted")
    finally:
        lines.close()
    rotated = [
        json.loads(line)["path"] for line in (tmp_path / "access.log.1").read_text().splitlines()
    ]
    assert rotated == ["/before"]
    assert [json.loads(line)["path"] for line in path.read_text().splitlines()] == ["/deleted"]


async def test_each_line_carries_its_own_request_whatever_came_before(tmp_path: Path) -> None:
    """The repeating part of a line is cached: a change in any of its fields shows."""
    path = tmp_path / "access.log"
    lines = AccessLog(str(path), asyncio.get_running_loop())
    requests: list[tuple[Any, ...]] = [
        ("GET", "/a", "orders", "canary", "new", "new", 200, 0.0004, 0, 10, False, False),
        ("GET", "/b", "orders", "canary", "new", "legacy", 502, 2.5, 0, 123_456, True, False),
        ("POST", "/c", "orders", "canary", "new", "new", 201, 0.001, 5000, 10, False, True),
        ("GET", '/d"\\é', "commandes-é", "new", "new", "new", 1234, 0.0, 999, 1000, False, False),
        ("GET", "/a", "orders", "canary", "new", "new", 200, 0.0004, 0, 10, False, False),
        ("GET", "/e", None, "-", "legacy", "legacy", 404, 0.0, 0, 0, False, False),
    ]
    for i, request in enumerate(requests):
        lines.line(f"r{i}".encode(), *request)
    lines.close()
    raw = path.read_bytes()
    assert raw.isascii()
    found = [json.loads(line) for line in raw.decode().splitlines()]
    fields = ("method", "path", "route", "mode", "decision", "upstream", "status")
    more = ("duration_us", "bytes_in", "bytes_out", "fallback", "shadow")
    got = [tuple(line[k] for k in fields + more) for line in found]
    assert got == [
        (*r[:2], r[2] if r[2] is not None else "-", *r[3:7], round(r[7] * 1e6), *r[8:11],
         "mirrored" if r[11] else None)
        for r in requests
    ]  # fmt: skip
    assert [line["request_id"] for line in found] == [f"r{i}" for i in range(len(requests))]
