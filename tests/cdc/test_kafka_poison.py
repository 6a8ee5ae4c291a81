"""Poison records on a real Kafka-protocol broker (Tansu) read by the ``kafka`` source:
a garbage value and a half envelope produced between good change events are
dead-lettered with their topic/partition@offset and reason, in the same transaction
as the offsets that move past them; the good events apply; the worker's status shows
them; a replay of the topic from offset 0 stores them once and re-applies nothing."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from strangler.devstack.localstack import TansuBroker
from tests.cdc.harness import WorkerThread, execute, rows, wait_until

pytestmark = pytest.mark.slow

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def service() -> Iterator[str]:
    name = f"strangler_poison_{secrets.token_hex(4)}"
    execute(PG_ADMIN, f'CREATE DATABASE "{name}"')
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        execute(dsn, "CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT)")
        yield dsn
    finally:
        execute(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def change(ident: int, lsn: int) -> bytes:
    source = {"schema": "public", "table": "tags", "lsn": lsn, "ts_ms": 1_700_000_000_000}
    after = {"id": ident, "label": f"t{ident}"}
    return json.dumps({"op": "c", "before": None, "after": after, "source": source}).encode()


def key(ident: int) -> bytes:
    return json.dumps({"id": ident}).encode()


HALF = b'{"op": "c", "after": {"id": 9, "label": "no source"}}'
GARBAGE = b"\x00\xff\xfe definitely not an envelope"


def test_poison_on_the_topic_is_dead_lettered_and_good_events_flow_on(
    broker: TansuBroker, service: str
) -> None:
    topic = f"poison{secrets.token_hex(3)}.public.tags"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        for value, k, partition in (
            (change(1, 100), key(1), 0),
            (GARBAGE, key(7), 0),
            (HALF, key(9), 0),
            (change(2, 101), key(2), 0),
            (change(3, 102), key(3), 1),
        ):
            producer.send(topic, value=value, key=k, partition=partition).get(30)
    finally:
        producer.close()

    config: dict[str, Any] = {
        "sources": [
            {"name": "legacy", "kind": "kafka",
             "options": {"bootstrap_servers": broker.bootstrap, "topics": [topic],
                         "group_id": f"poison-{topic}", "max_poll_interval_ms": 10_000,
                         "session_timeout_ms": 6_000, "heartbeat_interval_ms": 500}},
        ],
        "targets": {"svc": service.replace("postgresql://", "postgresql+psycopg://")},
        "tables": [{"source": "public.tags", "target": "svc",
                    "adapter": {"table": "tags", "key": ["id"]}}],
    }  # fmt: skip
    want_offsets = {f"{topic}/0": 4, f"{topic}/1": 1}

    def offsets() -> dict[str, int]:
        try:
            found = rows(service, 'SELECT partition, "offset" FROM strangler_sync_offsets')
        except psycopg.errors.UndefinedTable:
            return {}  # the worker has not set up the target yet
        return {p: int(o) for p, o in found}

    def dead() -> list[tuple[Any, ...]]:
        return rows(
            service,
            "SELECT location, encoding, op, error FROM strangler_raw_dead_letters ORDER BY id",
        )

    worker = WorkerThread(config).start()
    try:
        wait_until(lambda: offsets() == want_offsets, 90, "the topic to be read to its end")
        assert rows(service, "SELECT id, label FROM tags ORDER BY id") == [
            (1, "t1"),
            (2, "t2"),
            (3, "t3"),
        ]
        stored = dead()
        assert [(s[0], s[1], s[2]) for s in stored] == [
            (f"{topic}/0@1", "base64", "unknown"),
            (f"{topic}/0@2", "utf-8", "c"),
        ]
        assert "UTF-8" in stored[0][3] and "no source block" in stored[1][3]

        def status() -> dict[str, Any] | None:
            assert worker.worker is not None
            (source,) = worker.worker.snapshot()["sources"]
            return source if source["unparseable_open"] == 2 else None

        wait_until(lambda: status() is not None, 30, "the status to show the poison")
        source = status()
        assert source is not None
        assert (source["dead_lettered"], source["unparseable"], source["applied"]) == (2, 2, 3)
    finally:
        worker.stop()
    assert worker.error is None, worker.error

    # Forget the resume points: the whole topic is read again from offset 0.
    execute(service, "DELETE FROM strangler_sync_offsets")
    execute(service, "CREATE TABLE write_audit AS SELECT id FROM tags WHERE false")
    execute(
        service,
        "CREATE FUNCTION audit() RETURNS trigger AS $$ BEGIN INSERT INTO write_audit"
        " VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit AFTER INSERT OR UPDATE ON tags FOR EACH ROW EXECUTE FUNCTION audit()",
    )
    worker = WorkerThread(config).start()
    try:
        # The offsets commit with the batch; the worker counts it a moment later.
        def replayed() -> bool:
            counts = worker.counts("legacy")
            return counts.get("stale", 0) + counts.get("applied", 0) >= 3

        wait_until(lambda: offsets() == want_offsets and replayed(), 90, "the replay to catch up")
        counts = worker.counts("legacy")
        assert counts.get("stale", 0) == 3 and counts.get("applied", 0) == 0, counts
        assert dead() == stored, "replayed poison is stored once"
        assert rows(service, "SELECT COUNT(*) FROM write_audit") == [(0,)]
    finally:
        worker.stop()
    assert worker.error is None, worker.error
    with psycopg.connect(service) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tags").fetchone() == (3,)
