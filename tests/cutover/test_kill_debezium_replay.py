"""SIGKILL a ``strangler sync`` process running Debezium embedded after a cutover, once its
streams have passed the cutover's watermarks but before Debezium saved its own offsets
(saved only every ten minutes here: the window between the target's commit and Debezium's,
held open). The restarted worker replays from Debezium's older offsets. The target stored
each stream's flip with its offsets, so every replayed change is judged by the owner in
force at its position: the monolith's writes made before the cutover are not reported as
the non-owner's (nor applied twice), and the service's writes after it still flow back."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import create_engine, text

from strangler.devstack.localstack import LogicalPostgres
from strangler.sync.drain import drain_tables
from tests.control.conftest import RedisServer

from .shop import TOKEN, Shop, postgres_databases, shop, until_aligned

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[LogicalPostgres]:
    with LogicalPostgres(databases=("shop_k", "customers_k")) as pg:
        yield pg


async def _post(session: aiohttp.ClientSession, found: Shop, name: str) -> str:
    body = {"CUST_NM": name, "EMAIL_ADDR": f"{name}@example.com"}
    async with session.post(f"{found.url}/api/customers", json=body) as response:
        assert response.status < 300, await response.text()
        return response.headers.get("X-Strangler-Upstream", "?")


async def _posted_until(
    session: aiohttp.ClientSession, found: Shop, check: Callable[[], bool]
) -> None:
    deadline = asyncio.get_running_loop().time() + 120.0
    for n in itertools.count():
        await _post(session, found, f"warm-up-{n}")
        await until_aligned(found)
        if await asyncio.to_thread(check):
            return
        assert asyncio.get_running_loop().time() < deadline, "Debezium never saved its offsets"
        await asyncio.sleep(0.5)


def _steady(read: Callable[[], str | None], rounds: int) -> Callable[[], bool]:
    """A check that is true once ``read()`` returned the same value ``rounds`` times running."""
    seen: list[str | None] = []

    def check() -> bool:
        seen.append(read())
        return len(seen) > rounds and len(set(seen[-rounds - 1 :])) == 1

    return check


async def _sync_status(session: aiohttp.ClientSession, listen: str) -> dict[str, Any]:
    async with session.get(f"http://{listen}/api/sync") as response:
        found: dict[str, Any] = await response.json()
        return found


def _saved(url: str, source: str) -> str | None:
    """The id of Debezium's saved offsets of ``source`` (a new row at every save)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT id FROM strangler_debezium_offsets WHERE offset_key LIKE :key"),
                {"key": f'%"{source}"%'},
            ).first()
            return None if found is None else str(found[0])
    finally:
        engine.dispose()


def _letters(url: str) -> list[tuple[str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = "SELECT source, error FROM strangler_dead_letters ORDER BY id"
            return [(str(s), str(e)) for s, e in conn.execute(text(sql))]
    finally:
        engine.dispose()


async def test_a_worker_killed_before_debezium_saved_its_offsets_replays_by_the_owner_then(
    tmp_path: Path, cluster: LogicalPostgres, redis_up: RedisServer, namespace: str
) -> None:
    dbs = postgres_databases(cluster, "shop_k", "customers_k")
    async with (
        shop(tmp_path, state=redis_up.url, namespace=namespace, process=True, dbs=dbs) as found,
        aiohttp.ClientSession() as session,
    ):
        document = yaml.safe_load((tmp_path / "routes.yaml").read_text(encoding="utf-8"))
        for source in document["sync"]["sources"]:
            source["options"]["offset_flush_ms"] = 600_000
        slow = tmp_path / "unflushed.yaml"
        slow.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        await found.kill_worker()
        saved = await asyncio.to_thread(_saved, dbs.service, "shop")
        await found.start_worker(slow.name)
        # Debezium saves its offsets once or twice as it starts (at start and at the first
        # batch marked processed, which the pipelined hand-over marks later), then not for
        # ten minutes: wait for the first save, then until three rounds of writes saved none.
        await _posted_until(session, found, lambda: _saved(dbs.service, "shop") != saved)
        await _posted_until(session, found, _steady(lambda: _saved(dbs.service, "shop"), 3))

        before = [await _post(session, found, f"legacy-{i}") for i in range(5)]
        await until_aligned(found)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{found.admin}/api/contexts/customers/cutover"
        deadline = asyncio.get_running_loop().time() + 120.0
        while True:  # a worker just started may still be over max_lag: refused, retried
            async with session.post(url, json={"to": "service"}, headers=headers) as response:
                status, body = response.status, await response.json()
            lagging = status == 409 and "sync lag" in str(body.get("error"))
            if not lagging or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        assert status == 200 and body["result"] == "done", body
        after = [await _post(session, found, f"service-{i}") for i in range(5)]
        await until_aligned(found)
        # Killed: the targets hold offsets (and owners) past the watermarks; Debezium's
        # own offsets and the replication slots are still from before the cutover.
        await found.kill_worker()
        await found.start_worker()
        await _post(session, found, "after-restart")
        await until_aligned(found)
        # A watermark through the monolith's stream: every replayed change was judged.
        assert found.config.sync is not None
        await drain_tables(
            found.config.sync, "customers", (dbs.table,), "legacy", 120.0, probe=True
        )
        replayed = await _sync_status(session, document["sync"]["listen"])

    assert set(before) == {"monolith"} and set(after) == {"customers"}
    # No replayed change reported as the non-owner's, none applied the wrong way ...
    assert _letters(dbs.service) == []
    assert _letters(dbs.monolith) == []
    # ... and the replay happened: the monolith's writes before the cutover came again.
    shop_status = next(s for s in replayed["sources"] if s["name"] == "shop")
    assert (shop_status["non_owner"], shop_status["stale"] >= 5) == (0, True), shop_status
