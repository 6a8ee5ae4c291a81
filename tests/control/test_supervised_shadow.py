"""Shadow results through the supervisor's socket read back as the memory store keeps them.

A real :class:`StateServer` on a Unix socket (polled by a thread, as the supervisor
polls it between signals) and two :class:`SupervisedShadowStore` clients standing for
two workers; what they merge is compared with one in-process MemoryShadowStore fed
the same batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from strangler.control.supervised_server import StateServer
from strangler.errors import StateStoreError
from strangler.shadow.compare import Comparison, Difference
from strangler.shadow.outcome import MATCH, MISMATCH, ShadowOutcome
from strangler.shadow.store import WINDOWS, Batch, MemoryShadowStore, Sample
from strangler.shadow.supervised_store import SupervisedShadowStore, shadow_ops


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StateServer]:
    served = StateServer(tmp_path / "state.sock", shadow_ops(MemoryShadowStore()))
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            served.poll(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield served
    stop.set()
    thread.join()
    served.close()


@pytest.fixture
async def workers(server: StateServer) -> AsyncIterator[tuple[SupervisedShadowStore, ...]]:
    stores = (SupervisedShadowStore(server.path), SupervisedShadowStore(server.path))
    yield stores
    for store in stores:
        await store.close()


def _sample(i: int) -> Sample:
    return Sample(
        route="customers",
        at=time.time(),
        outcome=MISMATCH,
        request={"method": "GET", "target": f"/api/customers/{i}", "headers": {}, "body": ""},
        legacy={"status": 200, "headers": {}, "body": '{"name": "Ann"}'},
        new={"status": 200, "headers": {}, "body": '{"name": "Bob"}'},
        differences=({"path": "body.name", "kind": "value", "legacy": "Ann", "new": "Bob"},),
        sent={"legacy": {"method": "GET"}, "new": {"method": "GET"}},
        endpoint="GET /api/customers/{id}",
        signature="body.name",
    )


def _batch(first: int, generation: str = "g1") -> Batch:
    batch = Batch(generation=generation, max_fields=50)
    now = time.time()
    mismatch = Comparison(
        MISMATCH,
        differences=(Difference("body.name", "value", "Ann", "Bob"),),
        noise=(Difference("body.at", "value", 1, 2),),
        warnings=(Difference("body.tags", "order"),),
        reached=frozenset({"routes.customers.shadow.compare.ignore[0]"}),
    )
    for i in range(first, first + 3):
        batch.add(mismatch, _sample(i), now, "GET /api/customers/{id}")
    batch.add(Comparison(MATCH), None, now, "GET /api/customers/{id}")
    batch.match(now, 4, "GET /api/customers")
    batch.counts[ShadowOutcome.DROPPED] += 2
    batch.noise.add("body.at")
    return batch


def _comparable(data: dict[str, Any]) -> dict[str, Any]:
    """A read's JSON with the trend summed: its buckets are relative to the time read."""
    trend = data.pop("trend")
    data["trend_totals"] = (sum(m for _, m, _ in trend), sum(mm for _, _, mm in trend))
    return data


async def test_two_workers_batches_read_back_as_one_memory_store_keeps_them(
    workers: tuple[SupervisedShadowStore, ...],
) -> None:
    a, b = workers
    local = MemoryShadowStore()
    for store, batch in ((a, _batch(0)), (b, _batch(10)), (a, _batch(20, "g2"))):
        await store.merge("customers", batch)
        await local.merge("customers", batch)
    await b.merge("orders", Batch(counts={MATCH: 1}))
    await local.merge("orders", Batch(counts={MATCH: 1}))

    for window in WINDOWS:
        for samples in (0, 2, 100):
            served = await b.read("customers", samples, window)
            kept = await local.read("customers", samples, window)
            assert _comparable(served.to_dict()) == _comparable(kept.to_dict())
    served = await a.read("customers")
    assert served.counts["mismatch"] == 9 and served.counts["dropped"] == 6
    assert [s.request["target"] for s in served.samples[:2]] == [
        "/api/customers/22",
        "/api/customers/21",
    ]
    assert served.generation == "g2"
    assert await a.noise("customers") == frozenset({"body.at"})
    assert await a.routes() == ["customers", "orders"]

    assert (await a.read("customers", 0)).counts["mismatch"] == 9  # encoded once, shared
    await b.reset("customers")
    assert await a.routes() == ["orders"]
    assert (await a.read("customers")).compared == 0
    assert (await a.read("customers", 0)).compared == 0  # the shared encoding is gone too


async def test_a_bad_window_is_refused_and_the_connection_stays_usable(
    workers: tuple[SupervisedShadowStore, ...],
) -> None:
    a, _ = workers
    with pytest.raises(StateStoreError, match="window"):
        await a.read("customers", 0, "week")  # type: ignore[arg-type]
    await a.merge("customers", Batch(counts={MATCH: 1}))
    assert (await a.read("customers")).counts["match"] == 1


async def test_a_worker_without_its_supervisor_gets_a_state_store_error(tmp_path: Path) -> None:
    """What the recorder turns into "results lost" and the shadow API into a 503."""
    store = SupervisedShadowStore(tmp_path / "gone.sock")
    with pytest.raises(StateStoreError, match="supervisor"):
        await store.merge("customers", Batch(counts={MATCH: 1}))
    await store.close()
