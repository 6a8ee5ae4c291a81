"""Through the real proxy: a legacy client cannot tell ``legacy`` from ``new``.

Two `strangler serve` processes in front of the same sample migration, one with
the customers and products routes in ``legacy`` (the monolith answers), one with
them in ``new`` (the services answer through their adapters). Every migrated
endpoint must give the same status and JSON (``AS_OF_TS`` aside) on both, and
the ``X-Strangler-Upstream`` header shows who really answered.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.samples.conftest import Migration
from tests.samples.exchange import Answer
from tests.samples.test_equivalence import CUSTOMER_READS, CUSTOMER_WRITES, PRODUCT_READS
from tests.serve.support import strangler_serve
from tests.support.net import free_port

CONFIG = """\
listen: 127.0.0.1:{port}
admin: {{listen: "127.0.0.1:{admin}"}}
legacy: monolith
upstreams:
  monolith: {{url: "{m.monolith}"}}
  customers: {{url: "{m.customers}"}}
  catalog: {{url: "{m.catalog}"}}
routes:
  - name: customers
    match: {{path: /api/customers/**}}
    to: customers
    mode: {mode}
    adapter: adapters.customers:CustomerApi
  - name: products
    match: {{path: /api/products/**}}
    to: catalog
    mode: {mode}
    adapter: adapters.catalog:ProductApi
"""


async def _ask(
    session: aiohttp.ClientSession, base: str, method: str, target: str, body: bytes = b""
) -> tuple[Answer, str]:
    headers = {"Content-Type": "application/json"} if body else {}
    async with session.request(method, base + target, data=body, headers=headers) as resp:
        answer = Answer(resp.status, await resp.json()).normalised()
        return answer, resp.headers.get("X-Strangler-Upstream", "")


async def test_legacy_and_new_answer_alike(migration: Migration, tmp_path: Path) -> None:
    proxies = {}
    for mode in ("legacy", "new"):
        port, admin = free_port(), free_port()
        path = tmp_path / f"{mode}.yaml"
        path.write_text(CONFIG.format(port=port, admin=admin, m=migration, mode=mode))
        proxies[mode] = (path, port, admin)

    async with (
        strangler_serve(*proxies["legacy"]) as legacy,
        strangler_serve(*proxies["new"]) as new,
        aiohttp.ClientSession() as session,
    ):
        reads = [("customers", t) for t in CUSTOMER_READS] + [("catalog", t) for t in PRODUCT_READS]
        for service, target in reads:
            old_answer, old_by = await _ask(session, legacy.proxy, "GET", target)
            new_answer, new_by = await _ask(session, new.proxy, "GET", target)
            assert (old_by, new_by) == ("monolith", service), target
            assert new_answer == old_answer, target
        for method, target, payload in CUSTOMER_WRITES:
            body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            old_answer, _ = await _ask(session, legacy.proxy, method, target, body)
            new_answer, new_by = await _ask(session, new.proxy, method, target, body)
            assert new_by == "customers"
            assert new_answer == old_answer, f"{method} {target} {payload!r}"
        # Orders never moved: both proxies send them to the monolith.
        for proxy in (legacy, new):
            answer, by = await _ask(session, proxy.proxy, "GET", "/api/orders/1")
            assert (answer.status, by) == (200, "monolith")
