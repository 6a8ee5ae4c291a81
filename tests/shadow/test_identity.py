"""Identity for mirrored requests through the real mirror: declared rewrites, hooks."""

from __future__ import annotations

import asyncio

import aiohttp

from strangler.message import HttpRequest, make_headers
from strangler.shadow.identity import CredentialMap, IdMap
from tests.shadow import identity_ids
from tests.shadow.conftest import Lab, drain, route_config


async def gets(url: str, paths: list[str], headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        for path in paths:
            async with session.get(url + path, headers=headers) as resp:
                await resp.read()


async def test_declared_rewrite_and_an_id_hook_change_only_what_the_new_side_gets(
    lab: Lab,
) -> None:
    identity_ids.LOOKUPS.clear()
    shadow = {
        "mirror": {
            "headers": {
                "set": {"X-Api-Key": "new-key"},
                "remove": ["Cookie"],
                "rename": {"X-Legacy-Tenant": "X-Tenant"},
            },
            "query": {"remove": ["api_key"], "set": {"v": "2"}, "rename": {"q": "search"}},
            "hook": "tests.shadow.identity_ids:hook",
        }
    }
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url, shadow=shadow))
    headers = {"Cookie": "sid=1", "X-Legacy-Tenant": "acme"}
    paths = ["/api/customers/1042?api_key=k&q=ada", "/api/customers/1042", "/api/customers/9"]
    await gets(url, paths, headers)
    await drain(mirror)
    legacy = {s["path"] for s in lab.legacy.seen}
    new = list(lab.new.seen)
    assert legacy == set(paths)  # the client's side is untouched
    assert [s["path"] for s in new] == [
        "/api/customers/ord-7f3a?search=ada&v=2",
        "/api/customers/ord-7f3a?v=2",
        "/api/customers/9?v=2",
    ]
    first = new[0]["headers"]
    assert first["X-Api-Key"] == "new-key" and first["X-Tenant"] == "acme"
    assert "Cookie" not in first and "X-Legacy-Tenant" not in first
    assert identity_ids.LOOKUPS == ["1042", "9"]  # cached: one lookup per id


async def test_a_hook_that_fails_makes_the_mirror_an_error_with_the_reason(lab: Lab) -> None:
    shadow = {"mirror": {"hook": "tests.shadow.identity_ids:no_such_hook"}}
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url, shadow=shadow))
    await gets(url, ["/api/customers/1"], {})
    await drain(mirror)
    data = await lab.store.read("customers")
    assert data.counts["error"] == 1
    assert "no_such_hook" in (data.samples[0].error or "")
    assert lab.new.seen == []


async def test_credential_map_mints_once_per_credential_even_when_concurrent() -> None:
    minted: list[str] = []

    async def mint(legacy: str) -> str:
        minted.append(legacy)
        return "Token new-" + legacy.rsplit(" ", 1)[-1]

    credentials = CredentialMap(mint)
    request = HttpRequest(headers=make_headers({"Authorization": "Token a"}), path="/x")
    answers = await asyncio.gather(*(credentials(request) for _ in range(5)))
    assert {a.headers["Authorization"] for a in answers} == {"Token new-a"}
    assert minted == ["Token a"]
    other = await credentials(request.with_headers(Authorization="Token b"))
    assert other.headers["Authorization"] == "Token new-b" and len(minted) == 2
    plain = await IdMap(lambda legacy: asyncio.sleep(0, result=None))(request)
    assert plain is request
