"""The demo's running pieces, started in-process in one asyncio loop, and torn down.

The sample monolith (seeded deterministically), the customers service, the CDC
worker (the real ``strangler sync`` worker, snapshot then streaming) and the
proxy (a generated admin token), loaded from a routes.yaml the demo writes into
the work folder, so an operator can read it, edit it (it is hot-reloaded) and
point ``strangler status -c`` at it. Where the databases, the state and the
change capture live is the backend's business (:mod:`strangler.demo.backends`):
SQLite files and memory:// by default, real servers with ``--stack local``.

The stack only starts, stops and reads things (row counts, a service row); the
steps in :mod:`strangler.demo.migration` decide what they prove. The one thing
it adds to the sample apps is a fault switch in front of the customers service
(:class:`FaultSwitch`), so the demo can simulate a bad deploy without any
product code knowing about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import Engine, func, select

from sample_monolith import db as monolith_db
from sample_monolith.app import create_app as create_monolith
from sample_monolith.seed import seed
from sample_services.common import make_engine as make_service_engine
from sample_services.customers import db as service_db
from sample_services.customers.app import create_app as create_customers
from strangler.config import load_config
from strangler.demo.backends import Backend, EmbeddedBackend, StackError
from strangler.demo.config import DemoPorts, render_routes_yaml
from strangler.demo.sync import DemoSync
from strangler.serve import RunningProxy, bind_listener, start_proxy

LEGACY = "monolith"
SEED_CUSTOMERS = 2000
SEED_ORDERS = 4000

Stopper = Callable[[], Awaitable[None]]


@dataclass
class FaultSwitch:
    """While ``status`` is set, the wrapped app answers every request with it."""

    status: int | None = None

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.status is not None:
            return web.json_response(
                {"error": "simulated failure (strangler demo)"}, status=self.status
            )
        return await handler(request)


def port_or_free(port: int, host: str = "127.0.0.1") -> int:
    """``port`` if it can be bound now, else (or for 0) a free one."""
    for candidate in (port, 0) if port else (0,):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise StackError(f"no free port on {host}")


async def _host(app: web.Application, port: int = 0) -> tuple[str, Stopper]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    sock = bind_listener("127.0.0.1", port)
    await web.SockSite(runner, sock).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", runner.cleanup


def _count(engine: Engine, tables: dict[str, Any]) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for name, t in tables.items()
        }


@dataclass
class DemoStack:
    """Everything ``strangler demo`` runs, on loopback, in this process."""

    workdir: Path
    backend: Backend = field(default_factory=EmbeddedBackend)
    proxy_port: int = 0
    admin_port: int = 0
    keep_workdir: bool = True
    legacy: str = LEGACY
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    fault: FaultSwitch = field(default_factory=FaultSwitch)
    monolith_url: str = ""
    service_url: str = ""
    proxy: RunningProxy | None = None
    sync: DemoSync | None = None
    adapter: str = "draft"
    _stoppers: list[Stopper] = field(default_factory=list)
    _ports: DemoPorts | None = None

    # ------------------------------------------------------------- locations

    @property
    def monolith_db(self) -> str:
        return self.backend.monolith_db

    @property
    def service_db(self) -> str:
        return self.backend.service_db

    @property
    def routes_yaml(self) -> Path:
        return self.workdir / "routes.yaml"

    @property
    def proxy_url(self) -> str:
        assert self.proxy is not None
        return self.proxy.proxy_url

    @property
    def admin_url(self) -> str:
        assert self.proxy is not None
        return self.proxy.admin_url

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.routes_yaml.unlink(missing_ok=True)
        self._stoppers.append(self.backend.stop)
        await self.backend.start(self.workdir)
        await asyncio.to_thread(
            seed, self.monolith_db, customers=SEED_CUSTOMERS, orders=SEED_ORDERS
        )
        await self.backend.capture()
        self._monolith_engine = monolith_db.make_engine(self.monolith_db)
        self._stoppers.append(self._dispose_engines)

        self.monolith_url, stop = await _host(create_monolith(self.monolith_db))
        self._stoppers.append(stop)
        service = create_customers(self.service_db)
        service.middlewares.append(self.fault.middleware)
        self.service_url, stop = await _host(service)
        self._stoppers.append(stop)
        self._service_engine = make_service_engine(self.service_db)

        proxy_sock = bind_listener("127.0.0.1", port_or_free(self.proxy_port))
        self._ports = DemoPorts(
            proxy=proxy_sock.getsockname()[1],
            admin=port_or_free(self.admin_port),
            monolith=int(self.monolith_url.rsplit(":", 1)[1]),
            customers=int(self.service_url.rsplit(":", 1)[1]),
            sync=port_or_free(0),
        )
        self._write_config()
        config = await asyncio.to_thread(load_config, self.routes_yaml)
        if config.sync is None:
            raise StackError(f"{self.routes_yaml} has no sync: section")
        self.proxy = await start_proxy(
            config,
            config_path=self.routes_yaml,
            proxy_sock=proxy_sock,
            admin_port=self._ports.admin,
            sync_status=self._sync_status,
        )
        self._stoppers.append(lambda: self._close_proxy())
        # The worker judges each change by its context's owner, read from the proxy's
        # state store (with memory:// it must be the very same store object).
        contexts = {name: c.tables for name, c in config.contexts.items()}
        self.sync = DemoSync(config.sync, self.workdir, contexts, self.proxy.control.store)
        await self.sync.start()
        self._stoppers.append(self.sync.stop)

    async def _sync_status(self) -> dict[str, Any]:
        return await self.sync.api_status() if self.sync is not None else {}

    async def _close_proxy(self) -> None:
        if self.proxy is not None:
            await self.proxy.close(grace=1.0)

    async def _dispose_engines(self) -> None:
        for name in ("_monolith_engine", "_service_engine"):
            engine = getattr(self, name, None)
            if engine is not None:
                engine.dispose()

    async def close(self) -> None:
        stoppers, self._stoppers = self._stoppers, []
        for stop in reversed(stoppers):
            with contextlib.suppress(Exception):
                await stop()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------- config

    def _write_config(self) -> None:
        assert self._ports is not None
        text = render_routes_yaml(
            self._ports,
            token=self.admin_token,
            adapter=self.adapter,
            state=self.backend.state_yaml(),
            sync_sources=self.backend.sync_sources_yaml(),
            service_db=self.service_db,
            monolith_db=self.monolith_db,
            way_back=self.backend.way_back,
        )
        self.routes_yaml.write_text(text, encoding="utf-8")
        self.routes_yaml.chmod(0o600)  # it holds the admin token

    async def use_adapter(self, adapter: str) -> bool:
        """Rewrite routes.yaml with another customers adapter and hot-reload it."""
        self.adapter = adapter
        self._write_config()
        assert self.proxy is not None and self.proxy.watcher is not None
        return await self.proxy.watcher.reload()

    # ------------------------------------------------------------- reads

    async def monolith_counts(self) -> dict[str, int]:
        tables = {
            "CUSTOMER": monolith_db.customer,
            "ORDERS": monolith_db.orders,
            "ORDER_LINES": monolith_db.order_lines,
            "PRODUCT": monolith_db.product,
        }
        return await asyncio.to_thread(_count, self._monolith_engine, tables)

    async def service_counts(self) -> dict[str, int]:
        tables = {"customers": service_db.customers, "addresses": service_db.addresses}
        return await asyncio.to_thread(_count, self._service_engine, tables)

    async def customer_ids(self) -> list[int]:
        def read() -> list[int]:
            with self._monolith_engine.connect() as conn:
                rows = conn.execute(
                    select(monolith_db.customer.c.cust_id).order_by(monolith_db.customer.c.cust_id)
                )
                return [int(r[0]) for r in rows]

        return await asyncio.to_thread(read)

    async def service_customer(self, cust_id: int) -> dict[str, Any] | None:
        """The customers service's own row for ``cust_id`` (read from its database)."""

        def read() -> dict[str, Any] | None:
            table = service_db.customers
            with self._service_engine.connect() as conn:
                row = conn.execute(select(table).where(table.c.id == cust_id)).first()
            return dict(row._mapping) if row is not None else None

        return await asyncio.to_thread(read)

    def break_service(self, status: int | None) -> None:
        """Make the customers service answer ``status`` to everything (None: heal it)."""
        self.fault.status = status

    async def cli(self, argv: list[str]) -> tuple[int, str]:
        """Run the real ``strangler`` CLI in a subprocess against this stack's admin API."""
        env = dict(os.environ, STRANGLER_ADMIN_TOKEN=self.admin_token)
        args = [*argv, "--admin", self.admin_url]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "strangler",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        return int(proc.returncode or 0), out.decode(errors="replace")


def make_workdir(path: str | None) -> tuple[Path, bool]:
    """The demo's folder and whether to keep it afterwards (a given folder is kept)."""
    if path:
        return Path(path).resolve(), True
    return Path(tempfile.mkdtemp(prefix="strangler-demo-")), False
