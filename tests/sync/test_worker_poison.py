"""``strangler sync`` with the SQLite source meeting records it cannot parse: a malformed
envelope written straight into the change table between good changes is dead-lettered
(raw text, location, reason) with the offset that moves past it; the good changes
apply; ``/api/sync`` and ``/metrics`` show it; a replay from offset 0 stores it once."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.sync.stack import Stack
from tests.sync.test_worker import wait_for_capture

HALF = '{"op": "u", "after": {"id": 1, "nm": "x"}}'
"""A half envelope: an op and a row, but no source block to order it by."""


@pytest.fixture
def stack(tmp_path: Path, pg_url: str) -> Iterator[Stack]:
    made = Stack(tmp_path, pg_url)
    yield made
    made.close()


def raw_dead_letters(stack: Stack) -> list[tuple[Any, ...]]:
    return stack.query(
        "SELECT location, source_table, op, raw_value, error FROM strangler_raw_dead_letters"
        " WHERE resolved_at IS NULL ORDER BY id"
    )


def wait_for(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_malformed_change_is_dead_lettered_and_the_others_flow_on(stack: Stack) -> None:
    stack.start()
    wait_for_capture(stack)
    with sqlite3.connect(stack.monolith) as db:
        db.execute("INSERT INTO customers VALUES (1, 'first', 'A', '100', 1)")
        db.execute("INSERT INTO strangler_changes (tbl, key, envelope)"
                   " VALUES ('customers', '{\"id\": 1}', 'this is {not json')")  # fmt: skip
        db.execute(
            "INSERT INTO strangler_changes (tbl, key, envelope) VALUES ('customers', ?, ?)",
            ('{"id": 1}', HALF),
        )
        db.execute("UPDATE customers SET nm = 'second', version = 2 WHERE id = 1")
        db.execute("INSERT INTO customers VALUES (2, 'other', 'I', '5', 1)")
    stack.wait_caught_up()

    assert stack.query("SELECT id, name, version FROM customers ORDER BY id") == [
        (1, "second", 2),
        (2, "other", 1),
    ]
    dead = raw_dead_letters(stack)
    assert [(d[0], d[1], d[2], d[3]) for d in dead] == [
        ("changes#2", "unknown", "unknown", "this is {not json"),
        ("changes#3", "unknown", "u", '{"op": "u", "after": {"id": 1, "nm": "x"}}'),
    ]
    assert "not JSON" in dead[0][4] and "no source block" in dead[1][4]
    assert stack.applied_offset() == stack.changes() == 5, "the offset moved past them"

    def poison_visible() -> Any:
        status = stack.api("/api/sync")
        (source,) = status["sources"]
        return status if source["unparseable_open"] == 2 else None

    status = wait_for(poison_visible, "/api/sync to show the stored poison")
    (source,) = status["sources"]
    assert (source["dead_lettered"], source["unparseable"], source["applied"]) == (2, 2, 3)
    assert status["totals"]["dead_lettered"] == 2 and status["totals"]["parked"] == 0
    metrics = stack.api("/metrics")
    events = [line for line in metrics.splitlines() if "sync_events_total{" in line]
    for op in ("u", "unknown"):
        line = f'strangler_sync_events_total{{op="{op}",outcome="dead_letter",table="unknown"}} 1.0'
        assert line in events, events
    assert stack.terminate() == 0

    # Replay everything: the poison is met again but stored once; nothing re-applied.
    with psycopg.connect(stack.target_url, autocommit=True) as conn:
        conn.execute('UPDATE strangler_sync_offsets SET "offset" = 0')
    stack.start()
    stack.wait_caught_up()
    assert stack.terminate() == 0
    assert raw_dead_letters(stack) == dead
    assert stack.duplicate_writes() == []

    # Still not parseable: --retry-dead leaves them and says so.
    still = stack.cli("sync", "--retry-dead")
    assert still.returncode == 1 and "still dead 2" in still.stdout, still.stdout + still.stderr
    assert len(raw_dead_letters(stack)) == 2
