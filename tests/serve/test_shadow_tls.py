"""The shadow client's own pools against a real HTTPS target (certificates made with the
openssl command line, tests/support/pki.py): renewed ``tls:`` files are used from the next
reload on, as the proxy's pools do, by both the one-at-a-time sends and the pipelined GET
channel; the channel sends the configured SNI."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from strangler.config import UpstreamConfig, parse_config_text
from strangler.message import HttpRequest
from strangler.shadow.client import ShadowClient, encode_get, get_parts
from strangler.shadow.failure import MirrorFailure
from strangler.shadow.pipeline import ShadowChannel
from strangler.shadow.pipeline_connection import Fields
from tests.support.pki import Pki, https_upstream, make_pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

LIMIT = 1 << 20
Failed = MirrorFailure | None


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Get:
    """One pipelined GET (a ``pipeline_connection.Request``) whose answer lands in a future."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.limit = LIMIT
        self.sent = time.monotonic()
        self.retried = False
        self.answer: asyncio.Future[tuple[int, bytes, Failed]] = (
            asyncio.get_running_loop().create_future()
        )
        self.on_answer = self._answered

    def _answered(
        self, _: object, status: int, __: Fields, body: bytes, error: Failed, ___: float
    ) -> None:
        if not self.answer.done():
            self.answer.set_result((status, body, error))


async def pipelined(
    channel: ShadowChannel, config: UpstreamConfig, path: str
) -> tuple[int, bytes, Failed]:
    parts = get_parts(channel.pool, config)
    assert parts is not None
    get = Get(encode_get(parts, path.encode(), []))
    channel.enqueue(get)
    return await asyncio.wait_for(get.answer, 10)


async def fresh_get(url: str, tls: dict[str, str]) -> tuple[int, bytes, Failed]:
    """``GET /a/1`` through the pipelined channel of a new shadow client to ``url``."""
    config = UpstreamConfig.model_validate({"url": url, "tls": tls})
    client = ShadowClient(4)
    try:
        return await pipelined(client.channel("svc", config), config, "/a/1")
    finally:
        client.close()


def install(source: Path, target: Path) -> None:
    """Replace ``target`` whole with ``source``'s bytes, as a renewal does."""
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


async def test_renewed_tls_files_reach_the_shadow_pools_at_the_next_reload(
    pki: Pki, tmp_path: Path
) -> None:
    """The CA bundle starts out wrong (the target's certificate fails verification), is
    renewed on disk, and the next reload's config (equal to the last) makes both the
    sends and the pipelined channel verify with the new one, without a restart."""
    install(pki.other_ca, tmp_path / "ca.crt")
    async with https_upstream(pki) as up:
        text = (
            "legacy: svc\nupstreams:\n"
            f"  svc: {{url: 'https://localhost:{up.port}', tls: {{ca: ca.crt}}, retries: 0}}\n"
        )
        client = ShadowClient(4)
        try:
            config = parse_config_text(text, base_dir=tmp_path).upstreams["svc"]
            before = await client.send("new", "svc", config, HttpRequest(path="/a/1"), LIMIT)
            before_get = await pipelined(client.channel("svc", config), config, "/a/2")
            # A reload that changes nothing keeps the pools (and their warm connections).
            same = parse_config_text(text, base_dir=tmp_path).upstreams["svc"]
            assert client.channel("svc", same) is client.channel("svc", config)

            install(pki.ca, tmp_path / "ca.crt")
            reloaded = parse_config_text(text, base_dir=tmp_path).upstreams["svc"]
            after = await client.send("new", "svc", reloaded, HttpRequest(path="/a/3"), LIMIT)
            after_get = await pipelined(client.channel("svc", reloaded), reloaded, "/a/4")
        finally:
            client.close()
    assert before.failed and "certificate verify failed" in str(before.exception)
    assert before_get[2] is not None and "certificate verify failed" in str(before_get[2])
    assert after.status == 200, after.exception
    assert b'"path": "/a/3"' in after.body
    assert after_get[2] is None and after_get[0] == 200
    assert b'"path": "/a/4"' in after_get[1]


async def test_the_pipelined_channel_sends_the_configured_server_name(pki: Pki) -> None:
    async with https_upstream(pki) as up:
        tls = {"ca": str(pki.ca), "server_name": "api.internal"}
        status, body, error = await fresh_get(f"https://127.0.0.1:{up.port}", tls)
    assert error is None and status == 200, error
    assert b'"path": "/a/1"' in body
    assert up.sni == ["api.internal"]


async def test_tls_files_that_did_not_load_fail_the_channel_instead_of_plain_http(
    pki: Pki, tmp_path: Path
) -> None:
    """An https:// target whose CA bundle is gone is never spoken to in clear text."""
    async with https_upstream(pki) as up:
        tls = {"ca": str(tmp_path / "gone.pem")}
        status, _, error = await fresh_get(f"https://localhost:{up.port}", tls)
    assert status == 0 and error is not None
    assert "gone.pem" in str(error)
    assert up.sni == []  # no handshake, and no plain-text request either
