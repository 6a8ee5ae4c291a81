"""Kafka topics as the REVERSE source, end to end: the production shape of the way back.

The service's PostgreSQL is captured by Debezium (embedded, relayed by a producer as
Kafka Connect would) onto ONE single-partition topic on a real Kafka-protocol broker
(Tansu) — the service's tables and ``strangler_watermarks`` routed together by
``ByLogicalTableRouter``, the documented layout — and ``strangler sync`` reads it with a
``kind: kafka`` source. The monolith's PostgreSQL flows forward through an embedded
Debezium source. One worker runs both directions; the contexts' owners live in a state
store and are moved by the same hold / drain / flip steps the cutover takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryStateStore
from strangler.devstack.localstack import LogicalPostgres, TansuBroker
from strangler.devstack.relay import DebeziumRelay
from strangler.errors import ConfigError
from strangler.sync.drain import drain_tables
from strangler.sync.sources.debezium_config import DebeziumOptions, connector_properties
from strangler.sync.sources.kafka import KafkaSource
from strangler.sync.watermark import WATERMARK_DDL
from strangler.sync_config import SyncConfig
from tests.cdc.harness import WorkerThread, execute, rows, wait_until
from tests.cdc.test_two_way_debezium import MONOLITH, SERVICE

pytestmark = pytest.mark.slow

CONTEXTS = {"items": ("public.legacy_items",), "orders": ("public.legacy_orders",)}
TOPIC = "svc.changes"
"""Every captured table of the service's database, watermarks included: one partition."""
N = 60


def config(pg: LogicalPostgres, bootstrap: str) -> dict[str, Any]:
    reverse = {"source": "svc_k", "target": "monolith"}
    return {
        "sources": [
            {"name": "shop_k", "kind": "debezium", "options": {
                "database": pg.url("monolith_rk", driver="postgresql"),
                "tables": ["public.legacy_items", "public.legacy_orders"],
                "offsets": "target", "offset_target": "service", "poll_interval_ms": 50}},
            {"name": "svc_k", "kind": "kafka", "monolith": pg.url("service_rk"), "options": {
                "bootstrap_servers": bootstrap, "topics": [TOPIC], "group_id": "svc-k",
                "max_poll_interval_ms": 10_000, "session_timeout_ms": 6_000,
                "heartbeat_interval_ms": 500}},
        ],
        "targets": {"service": pg.url("service_rk"), "monolith": pg.url("monolith_rk")},
        "tables": [
            {"source": "public.legacy_items", "target": "service", "from_source": "shop_k",
             "adapter": {"table": "items", "key": ["id"],
                         "rename": {"item_id": "id", "nm": "name", "price_cents": "price",
                                    "st": "status"},
                         "cast": {"price": "cents"},
                         "values": {"status": {"A": "active", "X": "retired"}}},
             "reverse": reverse},
            {"source": "public.legacy_orders", "target": "service", "from_source": "shop_k",
             "adapter": {"table": "orders", "key": ["id"],
                         "rename": {"ord_no": "id", "item": "item_id", "qty": "quantity"}},
             "reverse": reverse},
        ],
        "batch_size": 200,
    }  # fmt: skip


class Stack:
    def __init__(self, pg: LogicalPostgres, broker: TansuBroker, folder: Path) -> None:
        self.monolith = pg.dsn("monolith_rk")
        self.service = pg.dsn("service_rk")
        self.config = config(pg, broker.bootstrap)
        self.sync = SyncConfig.model_validate(self.config)
        self.store = MemoryStateStore()
        self.worker = WorkerThread(self.config, CONTEXTS, self.store)
        options = DebeziumOptions(
            database=pg.url("service_rk", driver="postgresql"), tables=("public.items",
            "public.orders"), topic_prefix="svc", offsets="file",
            offset_file=str(folder / "svc-relay.offsets"),
            properties={
                "transforms": "route",
                "transforms.route.type": "io.debezium.transforms.ByLogicalTableRouter",
                "transforms.route.topic.regex": r"svc\.public\..*",
                "transforms.route.topic.replacement": TOPIC,
                "transforms.route.key.enforce.uniqueness": "false",
            },
        )  # fmt: skip
        self.relay = DebeziumRelay(
            connector_properties("svc_k_relay", options), broker.bootstrap, partitions=1
        )

    def counts(self, source: str) -> dict[str, int]:
        return self.worker.counts(source)

    def owner(self, context: str) -> Ownership:
        return asyncio.run(self.store.ownerships()).get(context) or Ownership(context)

    def set_owner(self, ownership: Ownership) -> None:
        asyncio.run(self.store.set_ownership(ownership))

    def drain(self, context: str, owner: str, *, probe: bool = False) -> str:
        drained = asyncio.run(
            drain_tables(self.sync, context, CONTEXTS[context], owner, 120.0, probe=probe)  # type: ignore[arg-type]
        )
        return drained.position

    def cutover(self, context: str, to: str) -> str:
        """The cutover's data steps: hold, drain the old owner, flip."""
        current = self.owner(context)
        holding = current.holding(to, f"c-{context}-{to}", "test").draining()  # type: ignore[arg-type]
        self.set_owner(holding)
        position = self.drain(context, current.owner)
        self.set_owner(holding.moved("test"))
        return position

    def explain(self) -> object:
        worker = self.worker.worker.snapshot() if self.worker.worker else None
        return {"worker": worker, "relayed": self.relay.sent, "relay": self.relay.failure}

    def dead_letters(self, dsn: str) -> list[str]:
        return [e for (e,) in rows(dsn, "SELECT error FROM strangler_dead_letters ORDER BY 1")]


@pytest.fixture(scope="module")
def stack(
    logical_pg: LogicalPostgres, broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    s = Stack(logical_pg, broker, tmp_path_factory.mktemp("svc-relay"))
    execute(s.monolith, MONOLITH, WATERMARK_DDL)
    # The watermark table exists before Debezium creates its filtered publication.
    execute(s.service, SERVICE, WATERMARK_DDL)
    s.relay.ensure_topics([TOPIC])
    s.relay.start()
    s.worker.start()
    try:
        wait_until(
            lambda: s.worker.worker is not None and bool(_kafka(s).assigned),
            120,
            "the kafka source to join its group",
            s.explain,
        )
        # A watermark round trip on each stream: Debezium, the relay and the group all run.
        s.drain("items", "legacy", probe=True)
        s.drain("items", "service", probe=True)
        yield s
    finally:
        s.worker.stop()
        s.relay.stop()
        assert s.worker.error is None, s.worker.error


def _kafka(s: Stack) -> KafkaSource:
    assert s.worker.worker is not None
    source = s.worker.worker.sources["svc_k"]
    assert isinstance(source, KafkaSource)
    return source


def test_legacy_owns_the_service_write_through_kafka_is_reported_and_no_echo(
    stack: Stack,
) -> None:
    for i in range(1, N + 1):
        execute(stack.monolith, "INSERT INTO legacy_items VALUES (%s, %s, %s, 'A')",
                params=(i, f"item{i}", str(i * 100 + 25)))  # fmt: skip
    # Someone writes the service's orders table while legacy still owns `orders`.
    execute(stack.service, "INSERT INTO orders VALUES (900, 1, 2)")
    wait_until(
        lambda: (
            rows(stack.service, "SELECT count(*) FROM items") == [(N,)]
            and stack.counts("svc_k").get("non_owner", 0) == 1
        ),
        120,
        "the monolith's items in the service and the service's order reported",
        stack.explain,
    )
    # A round trip through the topic: every echo of the worker's writes has been read.
    stack.drain("items", "service", probe=True)
    svc = stack.counts("svc_k")
    # The worker's N forward writes came back through Kafka and were dropped as its own.
    assert svc.get("own_write", 0) == N, svc
    assert (svc.get("applied", 0), svc.get("non_owner", 0), svc.get("dead_letter", 0)) == (
        0,
        1,
        0,
    ), svc
    assert rows(stack.monolith, "SELECT count(*) FROM legacy_orders") == [(0,)]
    assert stack.dead_letters(stack.monolith) == [
        "written by the non-owner: public.legacy_orders changed on the service side;"
        " context orders is owned by legacy"
    ]


def test_after_the_cutover_the_service_writes_reach_the_monolith_through_kafka(
    stack: Stack,
) -> None:
    position = stack.cutover("items", "service")
    assert position.startswith("shop_k@")
    before_svc, before_shop = stack.counts("svc_k"), stack.counts("shop_k")
    for i in range(1, N + 1):
        execute(stack.service, "UPDATE items SET price = price + 1 WHERE id = %s", params=(i,))
        if i % 3 == 0:
            execute(stack.service, "UPDATE items SET status = 'retired' WHERE id = %s",
                    params=(i,))  # fmt: skip
    execute(stack.service, "INSERT INTO items VALUES (1000, 'svc-made', 9.99, 'active')")
    changes = N + N // 3 + 1
    wait_until(
        lambda: stack.counts("svc_k").get("applied", 0) - before_svc.get("applied", 0) == changes,
        120,
        "the service's changes applied to the monolith",
        stack.explain,
    )
    stack.drain("items", "legacy", probe=True)  # the echoes came back through Debezium
    svc, shop = stack.counts("svc_k"), stack.counts("shop_k")
    # Mapped back: price as cents text, status as its legacy code.
    assert rows(stack.monolith, "SELECT nm, price_cents, st FROM legacy_items WHERE"
                                " item_id IN (3, 1000) ORDER BY item_id") == [
        ("item3", "425", "X"), ("svc-made", "999", "A")]  # fmt: skip
    assert rows(stack.monolith, "SELECT count(*), sum(price_cents::int) FROM legacy_items") == [
        (N + 1, sum(i * 100 + 125 for i in range(1, N + 1)) + 999)
    ]
    # 0 echoes: every reverse write came back through the monolith's capture and was
    # dropped as the worker's own — not applied forward, not reported as a non-owner's.
    # (The sink folds a row's changes within one batch into one write: fewer echoes.)
    assert 0 < shop.get("own_write", 0) - before_shop.get("own_write", 0) <= changes, shop
    assert shop.get("applied") == before_shop.get("applied"), shop
    assert shop.get("non_owner", 0) == 0 and svc.get("non_owner") == 1, (shop, svc)
    assert svc.get("dead_letter", 0) == 0 and shop.get("dead_letter", 0) == 0


def test_a_drain_through_the_kafka_source_then_the_non_owner_is_the_service(
    stack: Stack,
) -> None:
    # A burst on the owner's (service) side right before the cutover back: the drain
    # must not return before every one of them is in the monolith.
    for i in range(2000, 2000 + N):
        execute(stack.service, "INSERT INTO items VALUES (%s, %s, 1.50, 'active')",
                params=(i, f"late{i}"))  # fmt: skip
    position = stack.cutover("items", "legacy")
    assert position.startswith("svc_k@"), position
    assert rows(stack.monolith, "SELECT count(*) FROM legacy_items WHERE item_id >= 2000") == [(N,)]
    assert stack.owner("items").owner == "legacy"
    # Legacy owns again: its writes flow forward, the service's are reported.
    execute(stack.monolith, "UPDATE legacy_items SET nm = 'legacy-again' WHERE item_id = 2")
    execute(stack.service, "UPDATE items SET name = 'stray' WHERE id = 2001")
    wait_until(
        lambda: (
            rows(stack.service, "SELECT name FROM items WHERE id = 2") == [("legacy-again",)]
            and stack.counts("svc_k").get("non_owner", 0) == 2
        ),
        120,
        "the monolith's write forward and the service's stray write reported",
        stack.explain,
    )
    assert rows(stack.monolith, "SELECT nm FROM legacy_items WHERE item_id = 2001") == [
        ("late2001",)
    ]
    assert [e for e in stack.dead_letters(stack.monolith) if "legacy_items" in e] == [
        "written by the non-owner: public.legacy_items changed on the service side;"
        " context items is owned by legacy"
    ]
    assert stack.counts("shop_k").get("non_owner", 0) == 0


def test_a_kafka_source_of_a_context_must_name_the_database_it_captures() -> None:
    # No stack needed: the drain stops before it touches anything, saying what to set.
    bare = config(LogicalPostgres(), "127.0.0.1:1")  # never started
    del bare["sources"][1]["monolith"]
    with pytest.raises(ConfigError) as raised:
        asyncio.run(drain_tables(SyncConfig.model_validate(bare), "items", CONTEXTS["items"],
                                 "service", 1.0))  # fmt: skip
    assert str(raised.value) == (
        "sync.sources.svc_k.monolith: a kafka source of a context needs the URL of the"
        " database it captures (the drain writes its watermark there)"
    )
