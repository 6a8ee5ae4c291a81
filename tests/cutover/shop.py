"""The sample shop with a movable customers context, for the end-to-end cutover tests.

The sample monolith (SQLite, seeded) and the customers service (SQLite) as real
aiohttp apps on loopback; the real proxy in this loop with routes ``customers``
(reads, new) and ``customer-writes`` (POST/PUT, following the owner) in context
``customers``; the real sync worker both ways (CUSTOMER -> customers + addresses
through ``adapters.customers:CustomerRows``, and back), judging each change by
the owner in the proxy's state store. Writers POST and PUT through the proxy and
keep every write that was acknowledged, so a test can look for each in both
databases afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import text

from sample_monolith.app import create_app as create_monolith
from sample_monolith.seed import seed
from sample_services.common import make_engine as make_service_engine
from sample_services.customers import db as service_db
from sample_services.customers.app import create_app as create_customers
from strangler.config import Config, load_config
from strangler.serve import RunningProxy, start_proxy
from strangler.sync.worker import Worker
from tests.support.net import free_port, serve_app

TOKEN = "t0ken-for-the-shop"


@dataclass(frozen=True)
class Databases:
    """Where the shop's data lives and how each side is captured (the ``sync:`` parts)."""

    monolith: str
    """SQLAlchemy URL of the monolith's database."""
    service: str
    table: str
    """The monolith's customer table as sync names it (``customer``, ``public.customer``)."""
    sources: list[dict[str, Any]]
    """``sync.sources``: ``shop`` captures the monolith, ``svc`` the service."""


def sqlite_databases(folder: Path) -> Databases:
    def source(name: str, database: str, tables: list[str]) -> dict[str, Any]:
        options = {"database": database, "tables": tables, "poll_interval": "20ms"}
        return {"name": name, "kind": "sqlite", "options": options}

    return Databases(
        f"sqlite:///{folder / 'shop.db'}",
        f"sqlite:///{folder / 'customers.db'}",
        "customer",
        [
            source("shop", "shop.db", ["customer"]),
            source("svc", "customers.db", ["customers", "addresses"]),
        ],
    )


def postgres_databases(pg: Any, monolith: str, service: str) -> Databases:
    """Two databases of a ``LogicalPostgres`` cluster, each captured by Debezium embedded."""

    def source(name: str, db: str, tables: list[str], offsets_in: str) -> dict[str, Any]:
        options = {
            "database": pg.url(db, driver="postgresql"),
            "tables": tables,
            "offsets": "target",
            "offset_target": offsets_in,
            "poll_interval_ms": 50,
        }
        return {"name": name, "kind": "debezium", "options": options}

    return Databases(
        pg.url(monolith),
        pg.url(service),
        "public.customer",
        [
            source("shop", monolith, ["public.customer"], "customers"),
            source("svc", service, ["public.customers", "public.addresses"], "monolith"),
        ],
    )


def shop_config(
    folder: Path, monolith: str, service: str, state: str, namespace: str, dbs: Databases
) -> Path:
    document: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "admin": {"listen": f"127.0.0.1:{free_port()}", "token": TOKEN},
        "state": {"url": state, "namespace": namespace},
        "legacy": "monolith",
        "upstreams": {
            "monolith": {"url": monolith, "timeout": "10s"},
            "customers": {"url": service, "timeout": "10s"},
        },
        "routes": [
            {
                "name": "customers",
                "match": {"path": "/api/customers/**", "methods": ["GET", "HEAD"]},
                "to": "customers",
                "mode": "new",
                "adapter": "adapters.customers:CustomerApi",
            },
            {
                "name": "customer-writes",
                "match": {"path": "/api/customers/**", "methods": ["POST", "PUT"]},
                "to": "customers",
                "adapter": "adapters.customers:CustomerApi",
            },
        ],
        "contexts": {
            "customers": {
                "routes": ["customers", "customer-writes"],
                "tables": [dbs.table],
                "hold_timeout": "5s",
                "max_lag": "3s",
            }
        },
        "sync": {
            "listen": f"127.0.0.1:{free_port()}",
            "sources": dbs.sources,
            "targets": {"customers": dbs.service, "monolith": dbs.monolith},
            "tables": [
                {
                    "source": dbs.table,
                    "target": "customers",
                    "from_source": "shop",
                    "adapter": "adapters.customers:CustomerRows",
                    "reverse": {"source": "svc", "target": "monolith"},
                }
            ],
        },
    }
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Shop:
    folder: Path
    dbs: Databases
    config: Config
    proxy: RunningProxy
    worker: Worker | None
    """The sync worker in this loop, or None when it runs as ``strangler sync`` (process)."""
    process: asyncio.subprocess.Process | None = None

    async def start_worker(self, config: str = "routes.yaml") -> None:
        """Run ``strangler sync -c routes.yaml`` (or ``config`` in the folder) as a real
        process (Redis state only)."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "strangler",
            "sync",
            "-c",
            str(self.folder / config),
            cwd=str(self.folder),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None,
            start_new_session=True,
        )

    async def kill_worker(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.process = None

    @property
    def url(self) -> str:
        return self.proxy.proxy_url

    @property
    def admin(self) -> str:
        return self.proxy.admin_url

    def monolith_rows(self) -> list[tuple[int, str]]:
        return _rows(self.dbs.monolith, "SELECT cust_id, cust_nm FROM customer")

    def service_rows(self) -> list[tuple[int, str]]:
        return _rows(self.dbs.service, "SELECT id, name FROM customers")


def _rows(url: str, sql: str) -> list[tuple[int, str]]:
    engine = make_service_engine(url)
    try:
        with engine.connect() as conn:
            return [(int(i), str(n)) for i, n in conn.execute(text(sql))]
    finally:
        engine.dispose()


@contextlib.asynccontextmanager
async def shop(
    folder: Path,
    *,
    state: str = "memory://",
    namespace: str = "shop",
    process: bool = False,
    dbs: Databases | None = None,
) -> AsyncIterator[Shop]:
    """The shop, aligned. ``process``: the worker runs as ``strangler sync`` (needs Redis);
    ``dbs``: where the data lives (default: SQLite files in ``folder``)."""
    dbs = dbs or sqlite_databases(folder)
    await asyncio.to_thread(seed, dbs.monolith, customers=60, orders=40)
    engine = make_service_engine(dbs.service)
    await asyncio.to_thread(service_db.metadata.create_all, engine)
    engine.dispose()
    async with (
        serve_app(create_monolith(dbs.monolith)) as monolith,
        serve_app(create_customers(dbs.service)) as service,
    ):
        path = shop_config(folder, monolith, service, state, namespace, dbs)
        config = load_config(path)
        workers: list[Worker] = []

        async def sync_status() -> dict[str, Any]:
            return workers[0].snapshot() if workers else {}

        proxy = await start_proxy(config, config_path=path, sync_status=sync_status)
        assert config.sync is not None
        stop = asyncio.Event()
        task = None
        if process:
            found = Shop(folder, dbs, config, proxy, None)
            await found.start_worker()
        else:
            worker = Worker(
                config.sync,
                base_dir=folder,
                contexts={n: c.tables for n, c in config.contexts.items()},
                owners=proxy.control.store,
            )
            workers.append(worker)
            task = asyncio.create_task(worker.run(stop))
            found = Shop(folder, dbs, config, proxy, worker)
        try:
            await until_aligned(found)
            yield found
        finally:
            stop.set()
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 20)
            if found.process is not None:
                await found.kill_worker()
            await proxy.close(1.0)


async def until_aligned(found: Shop, timeout: float = 120.0) -> None:
    """Wait until both databases hold the same customers (ids and names)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        legacy = sorted(await asyncio.to_thread(found.monolith_rows))
        service = sorted(await asyncio.to_thread(found.service_rows))
        if legacy == service:
            return
        if loop.time() > deadline:
            missing = set(legacy) ^ set(service)
            raise AssertionError(f"databases differ after {timeout}s: {sorted(missing)[:10]}")
        await asyncio.sleep(0.1)


@dataclass
class Writer:
    """POSTs new customers and PUTs new names on its own ones, through the proxy."""

    name: str
    created: dict[int, str] = field(default_factory=dict)
    """Acknowledged: customer id -> the latest name acknowledged for it."""
    creates: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    answered_by: dict[str, int] = field(default_factory=dict)

    async def run(self, session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
        rng = random.Random(self.name)
        for n in itertools.count():
            if stop.is_set():
                return
            if self.created and rng.random() < 0.4:
                ident = rng.choice(sorted(self.created))
                name = f"{self.name}-{n}-renamed"
                method, path, body = "PUT", f"/api/customers/{ident}", {"CUST_NM": name}
            else:
                ident, name = 0, f"{self.name}-{n}"
                body = {"CUST_NM": name, "EMAIL_ADDR": f"{self.name}.{n}@example.com"}
                method, path = "POST", "/api/customers"
            try:
                async with session.request(method, url + path, json=body) as response:
                    answer = await response.json(content_type=None)
                    upstream = response.headers.get("X-Strangler-Upstream", "?")
                    if response.status >= 300:
                        self.failures.append(f"{method} {path}: {response.status} {answer}")
                        continue
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.failures.append(f"{method} {path}: {exc!r}")
                continue
            self.answered_by[upstream] = self.answered_by.get(upstream, 0) + 1
            if method == "POST":
                ident = int(answer["CUST_ID"])
                self.creates.append(name)
            self.created[ident] = name
            await asyncio.sleep(rng.uniform(0.0, 0.02))
