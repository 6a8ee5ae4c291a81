"""TLS on the public listener of a real `strangler serve`: certificates made here with the
openssl command line, rotated on disk while a client connection stays open."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.serve.conftest import routes_yaml
from tests.serve.support import strangler_serve, upstreams
from tests.support.net import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def make_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost and its key."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def install(cert: Path, key: Path, folder: Path) -> None:
    """Put a pair in place the way a renewal does: each file replaced whole."""
    for source, target in ((key, folder / "tls.key"), (cert, folder / "tls.crt")):
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def fingerprint(der: bytes | None) -> str:
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


class Client:
    """One keep-alive HTTPS connection to the proxy, trusting the given certificates."""

    def __init__(self, port: int, trusted: list[Path]) -> None:
        self.port = port
        self.context = ssl.create_default_context()
        for cert in trusted:
            self.context.load_verify_locations(cafile=str(cert))
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> str:
        """Connect; returns the fingerprint of the certificate the proxy presented."""
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.context, server_hostname="localhost"
        )
        return fingerprint(self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True))

    async def get(self, path: str) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await self.writer.wait_closed()


async def test_tls_listener_serves_and_rotates_its_certificate_without_dropping(
    tmp_path: Path,
) -> None:
    first, second, third = (make_pair(tmp_path, n) for n in ("first", "second", "third"))
    install(*first, tmp_path)
    port, admin_port = free_port(), free_port()
    async with upstreams() as up:
        path = tmp_path / "routes.yaml"
        text = routes_yaml(port=port, admin_port=admin_port, legacy_url=up.legacy, new_url=up.new)
        path.write_text(text + "tls: {cert: tls.crt, key: tls.key}\n")
        async with strangler_serve(path, port, admin_port, "--workers", "1") as serve:
            trusted = [first[0], second[0], third[0]]
            old = Client(port, trusted)
            assert await old.connect() == fingerprint(der(first[0]))
            status, body = await old.get("/api/customers/1")
            assert status == 200 and b'"legacy"' in body

            # Plain HTTP on the TLS port gets no answer from an upstream.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/customers/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"legacy" not in await asyncio.wait_for(reader.read(), 10)
            writer.close()

            # Renewal on disk: new connections get the new certificate...
            install(*second, tmp_path)

            async def presents(cert: Path) -> None:
                for _ in range(100):
                    client = Client(port, trusted)
                    seen = await client.connect()
                    await client.close()
                    if seen == fingerprint(der(cert)):
                        return
                    await asyncio.sleep(0.1)
                raise AssertionError(f"the proxy never presented {cert.name}")

            await presents(second[0])
            # ...and the connection opened before it keeps working.
            status, body = await old.get("/api/customers/2")
            assert status == 200 and b'"legacy"' in body

            # A broken pair (the key of another certificate) is refused: still the second.
            shutil.copyfile(third[1], tmp_path / "tls.key")
            serve.send(signal.SIGHUP)
            await asyncio.sleep(2.5)  # past the file check: neither path may load it
            client = Client(port, trusted)
            assert await client.connect() == fingerprint(der(second[0]))
            await client.close()

            # Fixed and signalled: the third certificate.
            install(*third, tmp_path)
            serve.send(signal.SIGHUP)
            await presents(third[0])
            status, _ = await old.get("/api/customers/3")
            assert status == 200
            await old.close()
