"""The sample migration's routes.yaml in shadow, through the real proxy and shadow comparison.

The top-level routes.yaml (ports and upstream URLs pointed at loopback) keeps
products in ``shadow``: with ``adapters.catalog:ProductApi`` and the file's
compare rules every comparison matches. With the customers route put in shadow
on the first adapter draft (``CustomerApiWholeUnits``) the comparison finds the
deliberate mismatch, and only in ``body.CREDIT_LIMIT_CENTS`` (only customers
whose limit has cents can mismatch). Clients are answered by the monolith throughout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.samples.conftest import Migration
from tests.serve.support import strangler_serve
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def _config(migration: Migration, port: int, admin: int, *, draft: bool) -> str:
    text = (ROOT / "routes.yaml").read_text()
    text = text.replace("listen: 0.0.0.0:8080", f"listen: 127.0.0.1:{port}")
    text = text.replace("listen: 127.0.0.1:8081", f"listen: 127.0.0.1:{admin}")
    for local, real in (
        ("http://127.0.0.1:9000", migration.monolith),
        ("http://127.0.0.1:9101", migration.customers),
        ("http://127.0.0.1:9102", migration.catalog),
    ):
        text = text.replace(local, real)
    # A loaded test machine must not turn slow shadow copies into errors.
    text = text.replace("timeout: 2s", "timeout: 15s")
    if draft:
        text = text.replace("mode: canary\n    percent: 10", "mode: shadow", 1)
        text = text.replace(
            "adapter: adapters.customers:CustomerApi\n",
            "adapter: adapters.customers:CustomerApiWholeUnits\n",
            1,
        )
    return text


async def _shadow(session: aiohttp.ClientSession, admin: str, route: str, want: int) -> Any:
    deadline = time.monotonic() + 30
    while True:
        async with session.get(f"{admin}/api/routes/{route}/shadow") as resp:
            report = await resp.json()
        if sum(report["counts"].values()) >= want or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_shadow_finds_only_the_deliberate_mismatch(
    migration: Migration, tmp_path: Path
) -> None:
    port, admin_port = free_port(), free_port()
    config = tmp_path / "routes.yaml"
    config.write_text(_config(migration, port, admin_port, draft=True))
    async with (
        strangler_serve(config, port, admin_port) as proxy,
        aiohttp.ClientSession() as session,
    ):
        with_cents = 0
        for i in range(1, 81):
            async with session.get(f"{proxy.proxy}/api/customers/{i}") as resp:
                assert resp.headers["X-Strangler-Upstream"] == "monolith"
                with_cents += not (await resp.json())["CREDIT_LIMIT_CENTS"].endswith("00")
        product_paths = [f"/api/products/{i}" for i in range(1, 41)]
        product_paths += ["/api/products", "/api/products?category=KT"]
        for path in product_paths:
            async with session.get(proxy.proxy + path) as resp:
                assert resp.status == 200
                assert resp.headers["X-Strangler-Upstream"] == "monolith"

        # Every copy is accounted for (match, mismatch, or error/dropped if the machine is
        # overloaded); what was compared must show the deliberate mismatch and nothing else.
        products = await _shadow(session, proxy.admin, "products", len(product_paths))
        assert products["counts"].get("match", 0) >= 1
        assert products["counts"].get("mismatch", 0) == 0 and products["fields"] == []

        customers = await _shadow(session, proxy.admin, "customers", 80)
        assert [f["field"] for f in customers["fields"]] == ["body.CREDIT_LIMIT_CENTS"]
        mismatches = customers["fields"][0]["mismatches"]
        assert customers["counts"]["mismatch"] == mismatches
        assert 0 < mismatches <= with_cents
        assert customers["counts"].get("match", 0) <= 80 - with_cents
