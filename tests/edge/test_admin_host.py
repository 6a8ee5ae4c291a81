"""The admin listener answers only the host names it is configured for (DNS rebinding:
a page on attacker.example whose name now resolves to 127.0.0.1 must not read the API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import get, one, serve, wire_upstream


@pytest.mark.xfail(
    strict=True,
    reason="issue 14: admin listener answers any Host (DNS rebinding)"
    " — fix lands after the proxy restructuring",
)
async def test_admin_refuses_a_host_it_is_not_configured_for(tmp_path: Path) -> None:
    async with wire_upstream() as legacy:
        config = {"legacy": "legacy", "upstreams": {"legacy": {"url": legacy.url}}}
        async with serve(tmp_path, config) as proxy:
            mine = await one(
                proxy.admin_port, get("/api/routes", host=f"127.0.0.1:{proxy.admin_port}")
            )
            rebound = await one(proxy.admin_port, get("/api/routes", host="attacker.example"))
    assert mine.status == 200  # the configured address still works
    assert 400 <= rebound.status < 500, (rebound.status, rebound.body[:200])
    assert b"routes" not in rebound.body
