"""The admin API of a running proxy: token, bodies, errors, audit, metrics, pin header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from strangler.serve import RunningProxy

from .conftest import compared, eventually
from .stack import (
    TOKEN,
    Site,
    admin_call,
    in_process,
    route_info,
    upstream_of,
    upstreams,
    write_config,
)

OVERRIDE = "/api/routes/customers/override"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[Site, RunningProxy, aiohttp.ClientSession]]:
    async with upstreams() as ups:
        site = write_config(tmp_path, ups, rollback={"mismatch_rate": 0.02})
        async with in_process(site) as running, aiohttp.ClientSession() as session:
            yield site, running, session


Stack = tuple[Site, RunningProxy, aiohttp.ClientSession]


async def test_writes_need_the_right_token(site: Stack) -> None:
    where, _, session = site
    for token, why in ((None, "missing bearer token"), ("nope", "wrong admin token")):
        status, body = await admin_call(session, where, "PUT", OVERRIDE, {"mode": "new"}, token)
        assert (status, body["error"].split(":")[0]) == (401, why)
        status, body = await admin_call(session, where, "DELETE", OVERRIDE, token=token)
        assert status == 401
    assert (await route_info(session, where))["mode"] == "legacy"  # nothing changed
    assert (await admin_call(session, where, "GET", "/api/audit"))[1]["entries"] == []

    status, body = await admin_call(session, where, "PUT", OVERRIDE, {"mode": "new"})
    assert status == 200 and body["mode"] == "new" and body["previous"] is None
    assert await upstream_of(session, where) == "customers"


async def test_no_token_configured_refuses_writes(tmp_path: Path) -> None:
    async with upstreams() as ups, aiohttp.ClientSession() as session:
        where = write_config(tmp_path, ups, token=None)
        async with in_process(where):
            for method in ("PUT", "DELETE"):
                status, body = await admin_call(session, where, method, OVERRIDE, {"mode": "new"})
                assert status == 403
                assert "no admin token is configured" in body["error"]
            assert (await route_info(session, where))["source"] == "config"


async def test_unknown_route_is_404(site: Stack) -> None:
    where, _, session = site
    status, body = await admin_call(
        session, where, "PUT", "/api/routes/nope/override", {"mode": "new"}
    )
    assert status == 404 and "no route named 'nope'" in body["error"]
    status, _ = await admin_call(session, where, "DELETE", "/api/routes/nope/override")
    assert status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "body"),
        ('{"mode": NaN}', "body"),
        ('["new"]', None),
        ('{"mode": "new", "colour": "red"}', "colour"),
        ('{"percent": 10}', "mode"),
        ('{"mode": "sideways"}', "mode"),
        ('{"mode": "canary"}', "percent"),
        ('{"mode": "canary", "percent": 150}', "percent"),
        ('{"mode": "canary", "percent": -1}', "percent"),
        ('{"mode": "canary", "percent": "10"}', "percent"),
        ('{"mode": "canary", "percent": true}', "percent"),
        ('{"mode": "new", "percent": 10}', "percent"),
        ('{"mode": "new", "force": "yes"}', "force"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    site: Stack, body: str, field: str | None
) -> None:
    where, _, session = site
    status, answer = await admin_call(session, where, "PUT", OVERRIDE, raw=body)
    assert status == 400, answer
    assert answer.get("field") == field
    if field is not None and field != "body":
        assert field in answer["error"]
    info = await route_info(session, where)
    assert (info["mode"], info["override"]) == ("legacy", None)  # nothing half-applied


async def test_canary_is_refused_while_shadow_mismatches_are_high_unless_forced(
    site: Stack,
) -> None:
    where, running, session = site
    await compared(running, "customers", 9, 1)  # 10% mismatches > 2%
    status, body = await admin_call(
        session, where, "PUT", OVERRIDE, {"mode": "canary", "percent": 5}
    )
    assert status == 409
    assert "mismatch rate 10.0% is above rollback.mismatch_rate 2.0%" in body["error"]
    assert (await route_info(session, where))["mode"] == "legacy"

    forced = {"mode": "canary", "percent": 5, "force": True}
    status, body = await admin_call(session, where, "PUT", OVERRIDE, forced)
    assert status == 200 and (body["mode"], body["percent"]) == ("canary", 5)
    assert body["shadow_match_rate"] == 0.9


async def test_routes_document_and_audit(site: Stack) -> None:
    where, _, session = site
    status, document = await admin_call(session, where, "GET", "/api/routes")
    assert status == 200
    assert document["config_version"] == 1 and document["last_reload_error"] is None
    (route,) = document["routes"]
    assert route["config"] == {
        "name": "customers",
        "match": {"path": "/api/customers/**"},
        "to": "customers",
        "mode": "legacy",
        "sticky": [],
        "fallback": False,
        "rollback": {"mismatch_rate": 0.02, "window": 60.0, "min_requests": 50},
    }
    assert (route["mode"], route["percent"], route["source"], route["override"]) == (
        "legacy",
        0,
        "config",
        None,
    )

    await admin_call(session, where, "PUT", OVERRIDE, {"mode": "canary", "percent": 20})
    await admin_call(session, where, "DELETE", OVERRIDE)
    status, audit = await admin_call(session, where, "GET", "/api/audit")
    entries: list[dict[str, Any]] = audit["entries"]
    assert [e["action"] for e in entries] == ["override.clear", "override.set"]
    assert entries[0]["previous"]["percent"] == 20 and entries[0]["current"] is None
    assert entries[1]["who"].startswith("token:") and TOKEN not in str(entries)
    status, limited = await admin_call(session, where, "GET", "/api/audit?limit=1")
    assert len(limited["entries"]) == 1


async def test_healthz_and_metrics(site: Stack) -> None:
    where, _, session = site
    await upstream_of(session, where)
    async with session.get(where.admin + "/healthz") as response:
        assert response.status == 200
    async with session.get(where.admin + "/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'strangler_requests_total{code="200",route="customers",upstream="monolith"} 1.0' in text
    assert (await route_info(session, where))["traffic"]["requests_per_min"] == 1


async def test_pin_header_is_honoured_only_when_configured(tmp_path: Path) -> None:
    async with upstreams() as ups, aiohttp.ClientSession() as session:
        plain = write_config(tmp_path, ups, name="plain.yaml")
        async with in_process(plain):
            assert await upstream_of(session, plain, **{"X-Strangler-Pin": "new"}) == "monolith"
        pinned = write_config(tmp_path, ups, name="pinned.yaml")
        text = pinned.config.read_text()
        pinned.config.write_text("pin_header: X-Strangler-Pin\n" + text)
        async with in_process(pinned):
            assert await upstream_of(session, pinned, **{"X-Strangler-Pin": "new"}) == "customers"
            assert await upstream_of(session, pinned) == "monolith"


async def test_an_override_left_by_a_removed_route_can_still_be_cleared(site: Stack) -> None:
    where, _, session = site
    await admin_call(session, where, "PUT", OVERRIDE, {"mode": "new"})
    where.config.write_text(where.config.read_text().replace("name: customers", "name: people"))

    async def reloaded() -> bool:
        _, document = await admin_call(session, where, "GET", "/api/routes")
        return [r["name"] for r in document["routes"]] == ["people"]

    await eventually(reloaded)
    status, body = await admin_call(session, where, "DELETE", OVERRIDE)
    assert status == 200 and body["previous"]["mode"] == "new"
    status, _ = await admin_call(session, where, "DELETE", OVERRIDE)
    assert status == 404
