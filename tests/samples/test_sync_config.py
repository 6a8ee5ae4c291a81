"""The top-level routes.yaml's ``sync:`` section, run for real with `strangler sync`.

A seeded SQLite monolith next to a copy of routes.yaml; the worker snapshots it
through the row adapters into the two services' databases, then streams a
change made through the monolith's own API; `strangler verify` finds nothing
out of line and a legacy client reading through the adapter sees the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

from adapters.customers import CustomerApi
from sample_monolith.app import create_app as monolith_app
from sample_monolith.seed import seed
from sample_services.catalog.db import create_schema as catalog_schema
from sample_services.common import make_engine
from sample_services.customers.app import create_app as customers_app
from sample_services.customers.db import create_schema as customers_schema
from tests.samples.exchange import adapted, direct, legacy_request
from tests.support.net import free_port, serve_app

ROOT = Path(__file__).resolve().parents[2]


def _sync_status(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sync", timeout=2) as resp:
        data = json.loads(resp.read())
    assert isinstance(data, dict)
    return data


async def _wait_applied(port: int, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            totals = _sync_status(port)["totals"]
            assert isinstance(totals, dict)
            if totals["applied"] >= at_least and not totals["dead_lettered"]:
                return
        assert time.monotonic() < deadline, "the sync worker did not catch up"
        await asyncio.sleep(0.2)


async def test_routes_yaml_sync_section_keeps_services_aligned(tmp_path: Path) -> None:
    port = free_port()
    text = (ROOT / "routes.yaml").read_text()
    (tmp_path / "routes.yaml").write_text(text.replace("127.0.0.1:8082", f"127.0.0.1:{port}"))
    seed(f"sqlite:///{tmp_path / 'shop.db'}", customers=120, orders=200, products=30, seed=5)
    for name, create in (("customers", customers_schema), ("catalog", catalog_schema)):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        create(engine)
        engine.dispose()

    worker = subprocess.Popen(
        [sys.executable, "-m", "strangler", "sync", "-c", "routes.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await _wait_applied(port, 120 + 30)  # the snapshot: every customer and product
        async with (
            serve_app(monolith_app(f"sqlite:///{tmp_path / 'shop.db'}")) as monolith,
            serve_app(customers_app(f"sqlite:///{tmp_path / 'customers.db'}")) as service,
            aiohttp.ClientSession() as session,
        ):
            change = json.dumps({"CREDIT_LIMIT_CENTS": "777755", "ADDR_CITY": "Franklin"})
            request = legacy_request("PUT", "/api/customers/42", change.encode())
            assert (await direct(session, monolith, request)).status == 200
            await _wait_applied(port, 120 + 30 + 1)  # the streamed update

            read = legacy_request("GET", "/api/customers/42")
            legacy = await direct(session, monolith, read)
            via_service = await adapted(session, service, CustomerApi(), read)
            assert via_service == legacy
            assert legacy.body["CREDIT_LIMIT_CENTS"] == "777755"

        verify = subprocess.run(
            [sys.executable, "-m", "strangler", "verify", "-c", "routes.yaml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "0 missing, 0 extra, 0 different" in verify.stdout
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
