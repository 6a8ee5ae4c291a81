"""HTTPS upstreams: the real proxy in front of a real aiohttp server speaking TLS, with
certificates made here with the openssl command line (tests/support/pki.py: a CA for the
upstream, another that signed nothing of it, a CA for client certificates)."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strangler.config import UpstreamConfig, parse_config, parse_config_text
from strangler.errors import ConfigError
from strangler.message import HttpRequest
from strangler.proxy.circuit import OPEN
from strangler.proxy.registry import Upstreams
from strangler.proxy.server import ProxyServer, bind
from strangler.routing.router import Router
from strangler.runtime import Runtime
from strangler.shadow.client import ShadowClient
from strangler.tls_config import UpstreamTlsConfig
from tests.support.pki import Pki, https_upstream, make_pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@asynccontextmanager
async def proxy(
    upstream: dict[str, Any], listener: ssl.SSLContext | None = None
) -> AsyncIterator[ProxyServer]:
    """The real proxy with one (legacy) upstream; TLS on its listener with ``listener``."""
    config = parse_config({"legacy": "legacy", "upstreams": {"legacy": upstream}})
    server = ProxyServer(Runtime(Router(config)))
    await server.start(bind("127.0.0.1", 0), ssl=listener)
    try:
        yield server
    finally:
        await server.close(1.0)


async def get(url: str, trust: Path | None = None) -> tuple[int, str, dict[str, str]]:
    context = ssl.create_default_context(cafile=str(trust)) if trust else None
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=context or False, allow_redirects=False) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def test_proxied_over_tls_with_a_custom_ca_and_the_url_host_as_sni(pki: Pki) -> None:
    async with https_upstream(pki) as up:
        url = f"https://localhost:{up.port}"
        async with proxy({"url": url, "tls": {"ca": str(pki.ca)}}) as server:
            status, body, _ = await get(f"http://127.0.0.1:{server.port}/api/orders/1")
    assert status == 200, body
    assert '"path": "/api/orders/1"' in body
    assert up.sni == ["localhost"]  # one handshake, named after the url's host


async def test_the_system_cas_do_not_trust_a_private_ca(pki: Pki) -> None:
    """Without ``tls.ca`` an https:// upstream is verified against the system's CAs."""
    async with (
        https_upstream(pki) as up,
        proxy({"url": f"https://localhost:{up.port}"}) as server,
    ):
        status, body, _ = await get(f"http://127.0.0.1:{server.port}/x")
    assert status == 502
    assert "certificate verify failed" in body


async def test_the_wrong_ca_is_a_connect_failure_that_opens_the_circuit(pki: Pki) -> None:
    async with https_upstream(pki) as up:
        upstream = {
            "url": f"https://localhost:{up.port}",
            "tls": {"ca": str(pki.other_ca)},
            "retries": 0,
            "circuit": {"failures": 2, "cooldown": "60s"},
        }
        async with proxy(upstream) as server:
            base = f"http://127.0.0.1:{server.port}"
            answers = [await get(f"{base}/api/{i}") for i in range(3)]
            circuit = server.forwarder.upstreams.pool(server.config, "legacy").circuit
            assert circuit.state is OPEN
    assert [status for status, _, _ in answers] == [502, 502, 502]
    assert "certificate verify failed" in answers[0][1]
    assert "circuit open" in answers[2][1]
    assert len(up.sni) == 2  # the third request never reached the upstream


async def test_mtls_upstream_works_with_the_client_certificate_and_not_without(pki: Pki) -> None:
    cert, key = pki.client
    async with https_upstream(pki, client_ca=pki.client_ca) as up:
        url = f"https://localhost:{up.port}"
        with_cert = {"url": url, "tls": {"ca": str(pki.ca), "cert": str(cert), "key": str(key)}}
        async with proxy(with_cert) as server:
            status, body, _ = await get(f"http://127.0.0.1:{server.port}/api/me")
        assert status == 200, body
        assert '"client_cn": "strangler-client"' in body

        without = {"url": url, "tls": {"ca": str(pki.ca)}, "retries": 0}
        async with proxy(without) as server:
            status, body, _ = await get(f"http://127.0.0.1:{server.port}/api/me")
        assert status == 502
        assert "strangler-client" not in body


async def test_sni_and_the_checked_name_are_server_name_when_set(pki: Pki) -> None:
    async with https_upstream(pki) as up:
        url = f"https://127.0.0.1:{up.port}"
        tls = {"ca": str(pki.ca), "server_name": "api.internal"}
        async with proxy({"url": url, "tls": tls}) as server:
            status, body, _ = await get(f"http://127.0.0.1:{server.port}/api/1")
        assert status == 200, body
        assert up.sni == ["api.internal"]

        # A name the certificate does not carry is refused.
        tls = {"ca": str(pki.ca), "server_name": "billing.internal"}
        async with proxy({"url": url, "tls": tls, "retries": 0}) as server:
            status, body, _ = await get(f"http://127.0.0.1:{server.port}/api/1")
        assert status == 502
        assert up.sni[-1] == "billing.internal"


async def test_verify_false_accepts_any_certificate(pki: Pki) -> None:
    async with https_upstream(pki) as up:
        upstream = {"url": f"https://localhost:{up.port}", "tls": {"verify": False}}
        async with proxy(upstream) as server:
            status, body, _ = await get(f"http://127.0.0.1:{server.port}/api/1")
    assert status == 200, body


async def test_forwarded_proto_and_redirects_say_https_behind_the_tls_listener(pki: Pki) -> None:
    listener = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    listener.load_cert_chain(*pki.server)
    async with https_upstream(pki) as up:
        upstream = {"url": f"https://localhost:{up.port}", "tls": {"ca": str(pki.ca)}}
        async with proxy(upstream, listener) as server:
            base = f"https://localhost:{server.port}"
            status, body, _ = await get(f"{base}/api/1", trust=pki.ca)
            assert status == 200, body
            assert '"proto": "https"' in body
            status, _, headers = await get(f"{base}/moved", trust=pki.ca)
            assert status == 302
            assert headers["Location"] == f"https://localhost:{server.port}/elsewhere"
        async with proxy(upstream) as server:
            status, body, _ = await get(f"http://127.0.0.1:{server.port}/api/1")
            assert '"proto": "http"' in body


def test_tls_files_that_do_not_load_are_config_errors(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    shutil.copy(pki.ca, tmp_path / "ca.crt")
    shutil.copy(pki.client[0], tmp_path / "client.crt")
    shutil.copy(pki.server[1], tmp_path / "other.key")
    text = """\
legacy: a
upstreams:
  a:
    url: https://a.internal
    tls: {ca: missing.pem}
  b:
    url: https://b.internal
    tls:
      ca: junk.pem
      cert: client.crt
      key: other.key
  c:
    url: http://c.internal
    tls: {ca: ca.crt}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, base_dir=tmp_path)
    found = {(p.line, p.key): p.message for p in caught.value.problems}
    assert set(found) == {
        (5, "upstreams.a.tls.ca"),
        (9, "upstreams.b.tls.ca"),
        (10, "upstreams.b.tls.cert"),
        (14, "upstreams.c.tls"),
    }
    assert "'missing.pem': cannot read" in found[5, "upstreams.a.tls.ca"]
    assert "'junk.pem': not a PEM CA bundle" in found[9, "upstreams.b.tls.ca"]
    assert "with the key 'other.key'" in found[10, "upstreams.b.tls.cert"]
    assert "https://" in found[14, "upstreams.c.tls"]

    # Relative paths are the routes.yaml folder's, made absolute when loaded.
    good = "legacy: a\nupstreams:\n  a: {url: https://a.internal, tls: {ca: ca.crt}}\n"
    config = parse_config_text(good, base_dir=tmp_path)
    tls = config.upstreams["a"].tls
    assert tls is not None and tls.ca == str(tmp_path / "ca.crt")


async def test_the_shadow_client_reaches_an_https_target_with_its_tls_keys(pki: Pki) -> None:
    """Mirrors use pools of their own, built the same way: the client certificate goes too."""
    cert, key = pki.client
    async with https_upstream(pki, client_ca=pki.client_ca) as up:
        tls = {"ca": str(pki.ca), "cert": str(cert), "key": str(key)}
        target = UpstreamConfig.model_validate({"url": f"https://localhost:{up.port}", "tls": tls})
        client = ShadowClient(4)
        try:
            seen = await client.send("new", "svc", target, HttpRequest(path="/api/9"), 1 << 20)
            # The same name with other settings: a new pool, verified with the system's CAs.
            untrusted = target.model_copy(
                update={"tls": UpstreamTlsConfig(cert=str(cert), key=str(key))}
            )
            refused = await client.send(
                "new", "svc", untrusted, HttpRequest(path="/api/9"), 1 << 20
            )
        finally:
            client.close()
    assert seen.status == 200, seen.exception
    assert b'"client_cn": "strangler-client"' in seen.body
    assert refused.failed and refused.status is None
    assert "certificate verify failed" in str(refused.exception)


async def test_a_reload_after_the_tls_files_change_makes_a_fresh_pool(
    pki: Pki, tmp_path: Path
) -> None:
    """A renewed CA bundle or client certificate is used from the next reload (SIGHUP) on;
    a reload that changes nothing keeps the pool and its warm connections."""
    shutil.copy(pki.ca, tmp_path / "ca.crt")
    text = "legacy: a\nupstreams:\n  a: {url: 'https://a.internal', tls: {ca: ca.crt}}\n"
    upstreams = Upstreams(asyncio.get_running_loop())
    try:
        first = upstreams.pool(parse_config_text(text, base_dir=tmp_path), "a")
        same = upstreams.pool(parse_config_text(text, base_dir=tmp_path), "a")
        assert same is first
        renewed = tmp_path / "ca.new"
        renewed.write_bytes(pki.ca.read_bytes() + pki.other_ca.read_bytes())
        os.replace(renewed, tmp_path / "ca.crt")
        fresh = upstreams.pool(parse_config_text(text, base_dir=tmp_path), "a")
        assert fresh is not first and first.closed
    finally:
        upstreams.close()
