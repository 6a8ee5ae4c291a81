"""Responses the proxy writes itself: short JSON errors naming the route and upstream.

Every one carries ``X-Strangler-Route`` and ``X-Strangler-Upstream`` like a
proxied response does, so a client (or an operator with curl) can always tell
which route and which side a failure belongs to. Nothing here does I/O.
"""

from __future__ import annotations

import json

from strangler.proxy.headers import status_line, strangler_tags

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def error_response(
    status: int,
    message: str,
    route: str = "-",
    upstream: str = "-",
    *,
    close: bool = False,
    head_only: bool = False,
    request_id: bytes = b"",
) -> bytes:
    """A complete HTTP/1.1 response with a JSON body ``{"error", "route", "upstream"}``."""
    body = json.dumps(
        {"error": message, "status": status, "route": route, "upstream": upstream},
        separators=(",", ":"),
    ).encode()
    head = b"".join(
        (
            status_line(status),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            strangler_tags(route, upstream),
            b"x-request-id: %s\r\n" % request_id if request_id else b"",
            b"connection: close\r\n" if close else b"",
            b"\r\n",
        )
    )
    return head if head_only else head + body
