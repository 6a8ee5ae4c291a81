"""The production path end to end: Debezium (embedded, relayed by a kafka-python
producer) -> Kafka topics on a real Kafka-protocol broker (Tansu) -> the ``kafka``
source's consumer group -> adapters -> the service's PostgreSQL database.

One relay and one broker serve the whole module; each test starts its own workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from strangler.devstack.localstack import LogicalPostgres, TansuBroker
from strangler.devstack.relay import DebeziumRelay
from strangler.sync.sources.debezium_config import DebeziumOptions, connector_properties
from strangler.sync.sources.kafka import KafkaSource
from tests.cdc.harness import (
    MONOLITH_DDL,
    SERVICE_DDL,
    TABLES,
    WorkerThread,
    execute,
    mappings,
    rows,
    service_diff,
    service_matches,
    wait_until,
)

pytestmark = pytest.mark.slow

TOPICS = [f"legacy.{t}" for t in TABLES]


class Stack:
    def __init__(self, pg: LogicalPostgres, broker: TansuBroker, folder: Path) -> None:
        self.monolith = pg.dsn("monolith_k")
        self.service = pg.dsn("service_k")
        options = DebeziumOptions(
            database=pg.url("monolith_k", driver="postgresql"), tables=TABLES,
            topic_prefix="legacy", offsets="file", offset_file=str(folder / "relay.offsets"),
        )  # fmt: skip
        self.relay = DebeziumRelay(
            connector_properties("relay", options), broker.bootstrap, partitions=3
        )
        self.config: dict[str, Any] = {
            "sources": [
                {"name": "legacy", "kind": "kafka",
                 "options": {"bootstrap_servers": broker.bootstrap, "topics": TOPICS,
                             "group_id": "customers-service", "max_poll_interval_ms": 10_000,
                             "session_timeout_ms": 6_000, "heartbeat_interval_ms": 500}},
            ],
            "targets": {"svc": pg.url("service_k")},
            "tables": mappings("svc"),
            "batch_size": 200,
        }  # fmt: skip
        self.workers: list[WorkerThread] = []

    def worker(self) -> WorkerThread:
        """A started worker that has joined the group (a member leaving mid-join can
        leave Tansu's group rebalancing for a long time)."""
        worker = WorkerThread(self.config).start()
        self.workers.append(worker)
        wait_until(lambda: bool(self.assigned(worker)), 60, "the worker to join its group")
        return worker

    def status(self) -> object:
        workers = [w.worker.snapshot()["sources"] for w in self.workers[-2:] if w.worker]
        return {"workers": workers, "relayed": self.relay.sent, "relay": self.relay.failure}

    @staticmethod
    def assigned(worker: WorkerThread) -> frozenset[str]:
        assert worker.worker is not None
        source = worker.worker.sources["legacy"]
        assert isinstance(source, KafkaSource)
        return source.assigned

    def matches(self) -> bool:
        return service_matches(self.monolith, self.service)

    def wait_aligned(self, timeout: float, what: str) -> None:
        wait_until(self.matches, timeout, what, lambda: self.explain())

    def explain(self) -> str:
        return f"{service_diff(self.monolith, self.service)}; worker: {self.status()}"

    def stored_offsets(self) -> dict[str, int]:
        found = rows(self.service, "SELECT partition, \"offset\" FROM strangler_sync_offsets"
                                   " WHERE source = 'legacy'")  # fmt: skip
        return {p: int(o) for p, o in found}

    def writes(self) -> list[tuple[Any, ...]]:
        return rows(self.service, "SELECT tbl, id, count(*) FROM write_audit GROUP BY tbl, id"
                                  " ORDER BY tbl, id")  # fmt: skip


@pytest.fixture(scope="module")
def stack(
    logical_pg: LogicalPostgres, broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    s = Stack(logical_pg, broker, tmp_path_factory.mktemp("relay"))
    execute(s.monolith, MONOLITH_DDL)
    execute(s.service, SERVICE_DDL)
    for i in range(1, 31):
        execute(s.monolith, "INSERT INTO customers VALUES (%s, %s, 'A', %s, %s, 'n')",
                params=(i, f"c{i}", str(i * 7), f"city{i % 4}"))  # fmt: skip
    s.relay.ensure_topics(TOPICS)
    s.relay.start()
    try:
        yield s
    finally:
        s.relay.stop()


def test_changes_flow_from_debezium_through_the_topic_into_the_service(stack: Stack) -> None:
    worker = stack.worker()
    try:
        stack.wait_aligned(120, "the snapshot through Kafka")
        execute(
            stack.monolith,
            "INSERT INTO customers VALUES (100, 'new', 'I', '12345', 'Porto', 'x')",
            "UPDATE customers SET st = 'I', city = 'Bern' WHERE id = 2",
            "DELETE FROM customers WHERE id = 3",
            "INSERT INTO payments VALUES (1, 10.010000, '2020-05-05 05:05:05.5+00',"
            " '2020-05-05', '2020-05-05 05:05:05.123456')",
            "INSERT INTO tags VALUES (1, 'x'), (2, 'y')",
            "TRUNCATE tags",
        )
        stack.wait_aligned(60, "the streamed changes through Kafka")
        assert rows(stack.service, "SELECT status, balance FROM customers WHERE id = 100") == [
            ("inactive", Decimal("123.45"))
        ]
        assert rows(stack.service, "SELECT count(*) FROM customers WHERE id = 3") == [(0,)]
        assert set(stack.stored_offsets()) <= {f"{t}/{p}" for t in TOPICS for p in range(3)}
        assert stack.stored_offsets(), "the resume points live in the target database"
    finally:
        worker.stop()


def test_replaying_the_topics_from_offset_zero_changes_nothing(stack: Stack) -> None:
    worker = stack.worker()
    stack.wait_aligned(60, "everything so far")
    worker.stop()
    writes, offsets = stack.writes(), stack.stored_offsets()
    # Forget the resume points: the source must start every partition from offset 0.
    execute(stack.service, "DELETE FROM strangler_sync_offsets WHERE source = 'legacy'")
    worker = stack.worker()
    try:
        # The offsets commit with each batch; the worker counts it a moment later.
        wait_until(
            lambda: stack.stored_offsets() == offsets and seen(worker) >= 36,
            60,
            "the replay to catch up",
        )
        counts = worker.counts("legacy")
        # Every row change came back stale; only the TRUNCATE (one copy per partition)
        # re-runs, and it finds nothing older than itself to delete.
        assert counts.get("stale", 0) >= 36, counts
        assert counts.get("applied", 0) <= 3, counts
        assert stack.writes() == writes
        assert stack.matches()
    finally:
        worker.stop()


def seen(worker: WorkerThread) -> int:
    """Changes the worker has counted as applied or stale (it counts a batch just after
    committing it, so a test that saw the data must wait for the count too)."""
    counts = worker.counts("legacy")
    return counts.get("applied", 0) + counts.get("stale", 0)


def test_a_restarted_worker_resumes_from_the_stored_offsets(stack: Stack) -> None:
    worker = stack.worker()
    stack.wait_aligned(60, "everything so far")
    worker.stop()
    writes = dict(((t, i), n) for t, i, n in stack.writes())
    execute(stack.monolith, "UPDATE customers SET nm = 'while-stopped' WHERE id = 4",
            "INSERT INTO customers VALUES (101, 'later', 'A', '1', 'Oslo', 'x')")  # fmt: skip
    worker = stack.worker()
    try:
        stack.wait_aligned(60, "the changes made while stopped")
        wait_until(lambda: seen(worker) >= 2, 30, "the worker to count them")
        counts = worker.counts("legacy")
        assert counts.get("stale", 0) == 0, counts
        assert counts.get("applied", 0) == 2, counts
        after = dict(((t, i), n) for t, i, n in stack.writes())
        assert after.pop(("customers", 4)) == writes.pop(("customers", 4)) + 1
        assert after.pop(("customers", 101)) == 1
        assert after == writes
    finally:
        worker.stop()


def test_two_workers_in_one_group_share_the_partitions(stack: Stack) -> None:
    first, second = stack.worker(), stack.worker()
    try:
        wait_until(lambda: len(stack.assigned(first) | stack.assigned(second)) == 9, 60,
                   "the partitions to be shared")  # fmt: skip
        stack.wait_aligned(60, "everything so far")
        execute(stack.monolith, "INSERT INTO customers SELECT g, 'bulk', 'A', g::text, 'Riga', 'x'"
                                " FROM generate_series(1000, 1299) g")  # fmt: skip
        stack.wait_aligned(90, "the bulk insert")
        wait_until(lambda: seen(first) + seen(second) >= 300, 30, "the workers to count them")
        applied = [w.counts("legacy").get("applied", 0) for w in (first, second)]
        assert sum(applied) >= 300 and all(n > 0 for n in applied), applied
        bulk = [n for t, i, n in stack.writes() if t == "customers" and i >= 1000]
        assert bulk == [1] * 300, "every new row written exactly once"
    finally:
        first.stop()
        second.stop()
