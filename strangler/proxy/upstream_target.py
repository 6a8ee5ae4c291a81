"""Where and how to reach one upstream: its address, TLS options and URL parts.

An ``https://`` url connects over TLS with the upstream's ``tls:`` keys
(:mod:`strangler.tls`); files that do not load leave ``tls_error`` set, and each
connect fails with it. :func:`open_connection` connects within
``connect_timeout`` and maps socket and TLS errors to :mod:`strangler.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from strangler.config import UpstreamConfig
from strangler.errors import StranglerError, UpstreamConnectError, UpstreamTimeout
from strangler.tls import upstream_context, upstream_server_name

log = logging.getLogger(__name__)

P = TypeVar("P", bound=asyncio.BaseProtocol)


class UpstreamTarget:
    """One upstream's address, TLS context and the URL parts requests are rewritten with."""

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        self.name = name
        self.config = config
        parts = urlsplit(config.url)
        self.address = (
            parts.hostname or "127.0.0.1",
            parts.port or (443 if parts.scheme == "https" else 80),
        )
        self.ssl: ssl.SSLContext | None = None
        self.server_name: str | None = None
        self.tls_error: str | None = None
        """Why the upstream's ``tls:`` files did not load (each connect fails with it)."""
        self.tls_stamps = tls_stamps(config)
        if parts.scheme == "https":
            self.server_name = upstream_server_name(config.tls, self.address[0])
            try:
                self.ssl = upstream_context(config.tls)
            except StranglerError as exc:
                self.tls_error = str(exc)
                log.error("upstream %s: %s", name, exc)
        self.host_header = parts.netloc.encode("latin-1")
        self.prefix = parts.path.rstrip("/").encode("latin-1")
        self.origin = config.url.encode("latin-1")
        """The upstream's URL (scheme, authority, path prefix): redirects to it are rewritten."""

    def tls_changed(self) -> bool:
        """The upstream's ``tls:`` files changed on disk since they were loaded."""
        return self.tls_stamps is not None and tls_stamps(self.config) != self.tls_stamps


async def open_connection(
    loop: asyncio.AbstractEventLoop, target: UpstreamTarget, factory: Callable[[], P]
) -> P:
    """A new connection to ``target``. Raises UpstreamError."""
    timeout = target.config.connect_timeout
    try:
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                factory, *target.address, ssl=target.ssl, server_hostname=target.server_name
            ),
            timeout,
        )
    except TimeoutError as exc:
        raise UpstreamTimeout(target.name, f"no connection within {timeout:g}s") from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UpstreamConnectError(target.name, f"cannot connect: {reason}") from exc
    return conn


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle: asyncio only does so for sockets created with proto=IPPROTO_TCP,
    and a head and body sent as two segments would otherwise wait for a delayed ACK."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def tls_stamps(config: UpstreamConfig) -> tuple[tuple[int, int] | None, ...] | None:
    """(mtime, size) of each ``tls:`` file, or None without files."""
    tls = config.tls
    paths = [p for p in (tls.ca, tls.cert, tls.key) if p] if tls is not None else []
    if not paths:
        return None
    stamps: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_mtime_ns, st.st_size))
    return tuple(stamps)
