"""The image's other entry point: `strangler sync` (and `strangler verify`) in a container.

The sample's SQLite monolith sits in a mounted folder; the services' databases are on
the host's PostgreSQL. The worker in the container snapshots the monolith into them
through the row adapters, streams a change made afterwards, answers its HEALTHCHECK,
`strangler verify` run in the same container finds nothing out of line, and SIGTERM
stops it with exit 0.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text, update

from sample_monolith import db as legacy_db
from sample_monolith.seed import seed
from sample_services.catalog.db import create_schema as catalog_schema
from sample_services.common import make_engine
from sample_services.customers.db import create_schema as customers_schema
from tests.deploy.engine import container, docker
from tests.samples.conftest import postgres_databases
from tests.support.net import free_port

# The first test also waits for scripts/image: the compiled wheel alone takes minutes on a
# loaded machine (later runs reuse it while the sources are the same).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROUTES = """\
version: 1
listen: 127.0.0.1:{unused}
legacy: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:{unused}"}}
routes: []
sync:
  listen: 127.0.0.1:{port}
  sources:
    - name: shop
      kind: sqlite
      options: {{database: /data/shop.db, tables: [customer, product]}}
  targets:
    customers: {customers}
    catalog: {catalog}
  tables:
    - {{source: customer, target: customers, adapter: "adapters.customers:CustomerRows"}}
    - {{source: product, target: catalog, adapter: "adapters.catalog:ProductRows"}}
"""


def _applied(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sync", timeout=2) as answer:
            totals = json.loads(answer.read())["totals"]
    except OSError:
        return -1
    assert not totals["dead_lettered"], totals
    return int(totals["applied"])


def _wait_applied(port: int, at_least: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while _applied(port) < at_least:
        assert time.monotonic() < deadline, "the worker in the container did not catch up"
        time.sleep(0.2)


def _customer_name(url: str, customer: int) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT name FROM customers WHERE id = :id")
            row = conn.execute(query, {"id": customer}).first()
    finally:
        engine.dispose()
    return None if row is None else str(row[0])


async def test_the_sync_worker_image_keeps_postgres_services_aligned(
    image: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)  # the worker (uid 10001) writes its capture table and journal here
    shop = data / "shop.db"
    seed(f"sqlite:///{shop}", customers=60, orders=100, products=20, seed=3)
    shop.chmod(0o666)
    port = free_port()
    with postgres_databases("customers", "catalog") as urls:
        for name, create in (("customers", customers_schema), ("catalog", catalog_schema)):
            engine = make_engine(urls[name])
            create(engine)
            engine.dispose()
        config = tmp_path / "routes.yaml"
        config.write_text(ROUTES.format(unused=free_port(), port=port, **urls))
        config.chmod(0o644)
        health = f"STRANGLER_HEALTHCHECK_URL=http://127.0.0.1:{port}/healthz"
        with container(
            "-e", health,
            "-v", f"{config}:/etc/strangler/routes.yaml:ro",
            "-v", f"{data}:/data",
            "--", "sync", "-c", "/etc/strangler/routes.yaml",
            image=image,
        ) as worker:  # fmt: skip
            await asyncio.to_thread(_wait_applied, port, 60 + 20)  # the snapshot
            assert _customer_name(urls["customers"], 42) is not None

            legacy = legacy_db.make_engine(f"sqlite:///{shop}")
            with legacy.begin() as conn:
                conn.execute(
                    update(legacy_db.customer)
                    .where(legacy_db.customer.c.cust_id == 42)
                    .values(cust_nm="Ada Container")
                )
            legacy.dispose()
            await asyncio.to_thread(_wait_applied, port, 60 + 20 + 1)  # streamed
            assert _customer_name(urls["customers"], 42) == "Ada Container"

            await asyncio.to_thread(worker.wait_healthy)
            verify = worker.exec("strangler", "verify", "-c", "/etc/strangler/routes.yaml")
            assert "0 missing, 0 extra, 0 different" in verify, verify

            await asyncio.to_thread(docker, "kill", "--signal", "TERM", worker.id)
            assert await asyncio.to_thread(worker.wait) == 0, worker.logs()
