"""Certificates made with the openssl command line for the TLS tests, and an HTTPS upstream.

:func:`make_pki` makes a CA for the upstream, another that signed nothing of it, and a CA
for client certificates; :func:`https_upstream` is an aiohttp server over TLS answering
what it saw (path, forwarded proto, the client certificate's CN) and recording each
handshake's server name.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.support.net import free_port

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl("req", "-x509", *_EC, "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return cert, key


def make_leaf(folder: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    """A certificate for ``san`` signed by ``ca``, and its key."""
    cert, key, csr = folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.csr"
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-new", *_EC, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return cert, key


@dataclass
class Pki:
    folder: Path
    ca: Path
    """Signed the upstream's certificate."""
    other_ca: Path
    """Signed nothing the upstream presents."""
    client: tuple[Path, Path]
    """A client certificate signed by ``client_ca``."""
    client_ca: Path
    server: tuple[Path, Path]


def make_pki(folder: Path) -> Pki:
    ca = make_ca(folder, "upstream-ca")
    other = make_ca(folder, "other-ca")
    client_ca = make_ca(folder, "client-ca")
    server = make_leaf(folder, "upstream", ca, "IP:127.0.0.1,DNS:localhost,DNS:api.internal")
    client = make_leaf(folder, "strangler-client", client_ca, "DNS:strangler")
    return Pki(folder, ca[0], other[0], client, client_ca[0], server)


@dataclass
class HttpsUpstream:
    port: int
    sni: list[str | None] = field(default_factory=list)
    """The server name of every handshake the upstream saw (None: no SNI)."""


@asynccontextmanager
async def https_upstream(pki: Pki, client_ca: Path | None = None) -> AsyncIterator[HttpsUpstream]:
    """An aiohttp server over TLS answering what it saw: the forwarded proto and the
    client certificate's CN; ``client_ca``: a client certificate it signed is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki.server)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))
    running = HttpsUpstream(free_port())

    def sni(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        running.sni.append(name)

    context.sni_callback = sni

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/moved":
            origin = f"https://{request.host}"
            return web.Response(status=302, headers={"Location": f"{origin}/elsewhere"})
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
        return web.json_response(
            {
                "path": request.path,
                "proto": request.headers.get("X-Forwarded-Proto"),
                "client_cn": subject.get("commonName"),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", running.port, ssl_context=context)
    await site.start()
    try:
        yield running
    finally:
        await runner.cleanup()
