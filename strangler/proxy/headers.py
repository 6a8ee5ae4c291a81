"""Header rewriting on the data plane: what goes upstream and what goes back.

Headers travel as the raw ``(name, value)`` byte pairs the parser produced; they
are never decoded into a dict on the hot path. Both directions drop the
hop-by-hop headers (RFC 9110 §7.6.1) and any header the ``Connection`` header
names, and re-frame the body themselves (``Content-Length`` or chunked), so a
framing header from one side never leaks to the other.

Upstream requests get ``Host`` per the upstream's ``host`` setting and
``X-Forwarded-For/-Proto/-Host`` appended. Client responses get
``X-Strangler-Route``, ``X-Strangler-Upstream`` and the request's ``X-Request-Id``;
copies of those from an upstream are dropped so a service cannot spoof them.
An upstream's reason phrase is kept, and a ``Location``/``Content-Location``
pointing at the upstream's own address can be rewritten (``relocate``).

Nothing here does I/O or keeps state between requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from typing import Protocol

RawHeaders = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Headers the proxy writes itself on the way up: never copied from the client.
_SKIP_UP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
}
# ... and on the way down (the two locations are rewritten, not dropped).
_LOCATIONS = frozenset({b"location", b"content-location"})
_SKIP_DOWN = (
    HOP_BY_HOP
    | _LOCATIONS
    | {b"content-length", b"x-strangler-route", b"x-strangler-upstream", b"x-request-id"}
)

_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"upgrade"})

STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus
}


def status_line(status: int, reason: bytes = b"") -> bytes:
    """The status line; with the upstream's ``reason`` phrase when it sent one."""
    if reason:
        return b"HTTP/1.1 %d %s\r\n" % (status, reason)
    line = STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


def connection_tokens(headers: RawHeaders) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (lower-case), beyond keep-alive/close."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token and token not in (b"keep-alive", b"close", b"upgrade"):
                    tokens.add(token)
    return frozenset(tokens)


def has_connection_header(headers: RawHeaders) -> bool:
    return any(len(n) == 10 and n.lower() == b"connection" for n, _ in headers)


class HeaderView(Mapping[str, str]):
    """Read-only ``.get(lower_case_name)`` over raw headers, for the router's matcher.

    Lookups scan the list (a request has a handful of headers and routes ask
    for one or two), which is cheaper than building a dict for every request."""

    __slots__ = ("_raw",)

    def __init__(self, raw: RawHeaders) -> None:
        self._raw = raw

    def __getitem__(self, key: str) -> str:
        wanted = key.lower().encode("latin-1")
        for name, value in self._raw:
            if len(name) == len(wanted) and name.lower() == wanted:
                return value.decode("latin-1")
        raise KeyError(key)

    def get(self, key: str, default: object = None) -> str | None:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1").lower() for name, _ in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class Peer(Protocol):
    """The client as the forwarded headers name it (a client connection is one)."""

    ip_bytes: bytes
    scheme: bytes
    """``b"http"`` or ``b"https"`` (the TLS listener)."""


def upgrade_lines(protocol: bytes) -> bytes:
    """The head's last lines for a tunnelled upgrade (``framing`` of :func:`upstream_head`)."""
    return b"connection: upgrade\r\nupgrade: " + protocol + b"\r\n"


def upstream_head(
    method: bytes, target: bytes, headers: RawHeaders, host: bytes, peer: Peer, framing: bytes
) -> bytes:
    """The request head sent upstream.

    ``host`` is the Host to send (the upstream's or the client's); ``framing`` is the
    head's last lines: ``b"content-length: N\\r\\n"``, ``b"transfer-encoding:
    chunked\\r\\n"``, ``b""``, or :func:`upgrade_lines` for a tunnel."""
    client_ip, proto = peer.ip_bytes, peer.scheme
    out = [method, b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    drop: frozenset[bytes] | None = None
    xff = xfp = xfh = b""
    client_host = b""
    for name, value in headers:
        lname = name.lower()
        if lname in _SKIP_UP:
            if lname == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                drop = connection_tokens(headers)
            elif lname == b"x-forwarded-for":
                xff = xff + b", " + value if xff else value
            elif lname == b"x-forwarded-proto":
                xfp = xfp + b", " + value if xfp else value
            elif lname == b"x-forwarded-host":
                xfh = xfh + b", " + value if xfh else value
            elif lname == b"host":
                client_host = value
            continue
        out += (name, b": ", value, b"\r\n")
    if drop:
        out = _without(out, drop, 6)
    out += (b"x-forwarded-for: ", xff + b", " + client_ip if xff else client_ip, b"\r\n")
    out += (b"x-forwarded-proto: ", xfp + b", " + proto if xfp else proto, b"\r\n")
    if client_host:
        out += (b"x-forwarded-host: ", xfh + b", " + client_host if xfh else client_host, b"\r\n")
    elif xfh:
        out += (b"x-forwarded-host: ", xfh, b"\r\n")
    out += (framing, b"\r\n")
    return b"".join(out)


def _without(parts: list[bytes], drop: frozenset[bytes], fixed: int) -> list[bytes]:
    """Remove ``name: value\\r\\n`` quadruples whose name is in ``drop``, after the
    first ``fixed`` parts (the request or status line): the rare path."""
    kept = parts[:fixed]
    for i in range(fixed, len(parts), 4):
        if parts[i].lower() not in drop:
            kept += parts[i : i + 4]
    return kept


def client_host_of(headers: RawHeaders) -> bytes:
    for name, value in headers:
        if len(name) == 4 and name.lower() == b"host":
            return value
    return b""


def response_head(
    status: int,
    headers: RawHeaders,
    tags: bytes,
    framing: bytes,
    close: bool,
    request_id: bytes = b"",
) -> bytes:
    """The response head sent to the client.

    ``tags`` is the pre-built ``X-Strangler-Route``/``-Upstream`` lines; ``framing``
    as for :func:`upstream_head`; ``close`` adds ``connection: close``."""
    out = [status_line(status)]
    drop: frozenset[bytes] | None = None
    for name, value in headers:
        lname = name.lower()
        if lname in _SKIP_DOWN:
            if lname == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                drop = connection_tokens(headers)
            elif lname in _LOCATIONS:
                out += (name, b": ", value, b"\r\n")
            continue
        out += (name, b": ", value, b"\r\n")
    if drop:
        out = _without(out, drop, 1)
    out += (tags, framing)
    if request_id:
        out += (b"x-request-id: ", request_id, b"\r\n")
    if close:
        out.append(b"connection: close\r\n")
    out.append(b"\r\n")
    return b"".join(out)


_CHUNKED = b"transfer-encoding: chunked\r\n"


def relay_head(
    status: int,
    headers: RawHeaders,
    tags: bytes,
    close: bool,
    no_body: bool,
    reason: bytes = b"",
    request_id: bytes = b"",
    relocate: Callable[[bytes], bytes] | None = None,
) -> tuple[bytes, bool]:
    """An upstream response head for the client, in one pass: (head, re-chunk body?).

    The body keeps the upstream's ``Content-Length`` when it sent one (and no
    chunking); otherwise it is sent chunked. ``no_body`` (HEAD, 204, 304, 1xx)
    keeps a Content-Length as information and sends no body. ``reason`` is the
    upstream's reason phrase; ``relocate`` rewrites a ``Location`` or
    ``Content-Location`` value (the upstream's address to the client's)."""
    out = [status_line(status, reason)]
    drop: frozenset[bytes] | None = None
    length: bytes | None = None
    chunked = False
    for name, value in headers:
        lname = name.lower()
        if lname in _SKIP_DOWN:
            if lname == b"content-length":
                length = value.strip()
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                drop = connection_tokens(headers)
            elif lname in _LOCATIONS:
                out += (name, b": ", relocate(value) if relocate else value, b"\r\n")
            continue
        out += (name, b": ", value, b"\r\n")
    if drop:
        out = _without(out, drop, 1)
    out.append(tags)
    if request_id:
        out += (b"x-request-id: ", request_id, b"\r\n")
    rechunk = False
    if length is not None and not chunked and length.isdigit():
        if status != 204:
            out += (b"content-length: ", length, b"\r\n")
    elif not no_body:
        out.append(_CHUNKED)
        rechunk = True
    out.append(b"connection: close\r\n\r\n" if close else b"\r\n")
    return b"".join(out), rechunk


def relocated(value: bytes, origin: bytes, client: bytes) -> bytes:
    """``value`` with the upstream's ``origin`` (scheme, authority, path prefix) replaced
    by ``client`` (the client's scheme and host), as NGINX's ``proxy_redirect default``;
    any other value (relative, another host) is returned as it is."""
    if not value.startswith(origin):
        return value
    rest = value[len(origin) :]
    if rest[:1] not in (b"", b"/", b"?", b"#"):
        return value  # http://upstream:80 is not http://upstream:8080
    return client + (rest if rest[:1] == b"/" else b"/" + rest)


def strangler_tags(route: str, upstream: str) -> bytes:
    return b"x-strangler-route: %s\r\nx-strangler-upstream: %s\r\n" % (
        route.encode("latin-1", "replace"),
        upstream.encode("latin-1", "replace"),
    )


def body_framing(headers: RawHeaders) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked?) as an upstream response declares them."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        n = len(name)
        if n == 14 and name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif n == 17 and name.lower() == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return length, chunked
