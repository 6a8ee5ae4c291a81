"""``strangler sync`` as a real process: SQLite monolith -> PostgreSQL service database.

Killed with SIGKILL at random points while 10,000 changes stream through, restarted
each time: ``verify`` then finds no drift and the write audit shows no row version
written twice. SIGTERM finishes the batch in hand: what is committed matches the
monolith as of the stored offset exactly. ``/api/sync`` reports the stream.
``verify`` finds rows changed behind the worker's back and ``--repair`` fixes them."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sync.stack import Stack


@pytest.fixture
def stack(tmp_path: Path, pg_url: str) -> Iterator[Stack]:
    made = Stack(tmp_path, pg_url)
    yield made
    made.close()


def monolith_state_at(stack: Stack, upto: int) -> dict[int, int]:
    """id -> version in the monolith as of change ``upto`` (replaying the change table)."""
    state: dict[int, int] = {}
    with sqlite3.connect(stack.monolith) as db:
        rows = db.execute(
            "SELECT envelope FROM strangler_changes WHERE id <= ? ORDER BY id", (upto,)
        ).fetchall()
    for (text,) in rows:
        envelope = json.loads(text)
        if envelope["op"] == "d":
            state.pop(envelope["before"]["id"], None)
        else:
            state[envelope["after"]["id"]] = envelope["after"]["version"]
    return state


def wait_for_capture(stack: Stack) -> None:
    """Until the worker has installed its triggers and finished the snapshot."""
    deadline = time.monotonic() + 30
    while stack.applied_offset() < 0:
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.1)


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_and_applies_nothing_twice(stack: Stack) -> None:
    stack.write(400, seed=1)  # existing rows: the snapshot
    stack.start()
    wait_for_capture(stack)
    writer = threading.Thread(
        target=stack.write, args=(10_000,), kwargs={"seed": 2, "pause": 0.004}
    )
    writer.start()
    rng = random.Random(11)
    offsets_at_kill = []
    for _ in range(10):
        time.sleep(rng.uniform(0.8, 2.0))
        stack.kill()
        offsets_at_kill.append(stack.applied_offset())
        stack.start()
    writer.join()
    stack.wait_caught_up()

    assert offsets_at_kill == sorted(offsets_at_kill)
    assert any(0 < o < stack.changes() for o in offsets_at_kill)  # killed mid-stream
    assert stack.duplicate_writes() == []
    expected = {i: v for i, v in stack.versions.items() if i in stack.live}
    assert dict(stack.query("SELECT id, version FROM customers")) == expected
    verify = stack.cli("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "0 missing, 0 extra, 0 different" in verify.stdout


@pytest.mark.slow
def test_sigterm_mid_stream_commits_whole_batches_and_reports_status(stack: Stack) -> None:
    stack.start()
    wait_for_capture(stack)
    writer = threading.Thread(target=stack.write, args=(6_000,), kwargs={"seed": 3, "pause": 0.002})
    writer.start()
    deadline = time.monotonic() + 30
    while stack.applied_offset() < 500 and time.monotonic() < deadline:
        time.sleep(0.05)

    status = stack.api("/api/sync")
    (source,) = status["sources"]
    assert (source["name"], source["kind"], source["state"]) == ("mono", "sqlite", "running")
    assert source["applied"] > 0 and source["dead_letter"] == 0
    assert isinstance(source["lag_seconds"], float)
    assert status["totals"]["dead_lettered"] == 0 and status["totals"]["parked"] == 0
    metrics = stack.api("/metrics")
    assert 'strangler_sync_events_total{op="c",outcome="applied",table="main.customers"}' in metrics
    assert 'strangler_sync_lag_seconds{source="mono"}' in metrics
    assert stack.api("/healthz") == {"ok": True}

    assert stack.terminate() == 0
    stopped_at = stack.applied_offset()
    writer.join()
    assert stopped_at > 0
    # Exactly the monolith as of the stored offset: no half batch, nothing ahead of it.
    assert dict(stack.query("SELECT id, version FROM customers")) == monolith_state_at(
        stack, stopped_at
    )

    stack.start()
    stack.wait_caught_up()
    assert stack.duplicate_writes() == []
    assert stack.cli("verify").returncode == 0


@pytest.mark.slow
def test_verify_finds_drift_behind_the_workers_back_and_repair_fixes_it(stack: Stack) -> None:
    stack.write(300, seed=4)
    stack.start()
    stack.wait_caught_up()
    some = sorted(stack.live)[:3]
    stack.query("SELECT 1")  # connection check
    import psycopg

    with psycopg.connect(stack.target_url, autocommit=True) as conn:
        conn.execute("UPDATE customers SET name = 'tampered' WHERE id = %s", (some[0],))
        conn.execute("DELETE FROM customers WHERE id = %s", (some[1],))
        conn.execute("INSERT INTO customers VALUES (999, 'ghost', 'active', 1, 1)")

    found = stack.cli("verify")
    assert found.returncode == 1
    assert f'different svc.customers {{"id":{some[0]}}}' in found.stdout
    assert "name: 'tampered'" in found.stdout
    assert f'missing   svc.customers {{"id":{some[1]}}}' in found.stdout
    assert 'extra     svc.customers {"id":999}' in found.stdout

    repaired = stack.cli("verify", "--repair")
    assert repaired.returncode == 0 and "repaired 3" in repaired.stdout
    assert stack.cli("verify").returncode == 0

    # The repaired row still takes the next real change (its position was kept).
    with sqlite3.connect(stack.monolith) as db:
        db.execute("UPDATE customers SET nm = 'after repair', version = version + 1 WHERE id = ?",
                   (some[0],))  # fmt: skip
    stack.wait_caught_up()
    assert stack.query(f"SELECT name FROM customers WHERE id = {some[0]}") == [("after repair",)]


@pytest.mark.slow
def test_replay_from_the_start_changes_nothing_and_counts_stale(stack: Stack) -> None:
    stack.start()
    wait_for_capture(stack)
    stack.write(1_000, seed=5)
    stack.wait_caught_up()
    assert stack.terminate() == 0
    before = stack.query("SELECT id, name, status, balance, version FROM customers ORDER BY id")
    writes = stack.query("SELECT COUNT(*) FROM write_audit")

    import psycopg

    with psycopg.connect(stack.target_url, autocommit=True) as conn:
        conn.execute("UPDATE strangler_sync_offsets SET \"offset\" = 0 WHERE partition = 'changes'")
    stack.start()
    stack.wait_caught_up()
    deadline = time.monotonic() + 30
    while stack.api("/api/sync")["sources"][0]["stale"] < 1_000:
        assert time.monotonic() < deadline, stack.api("/api/sync")
        time.sleep(0.1)

    source = stack.api("/api/sync")["sources"][0]
    assert source["applied"] == 0 and source["stale"] == 1_000
    assert (
        stack.query("SELECT id, name, status, balance, version FROM customers ORDER BY id")
        == before
    )
    assert stack.query("SELECT COUNT(*) FROM write_audit") == writes


@pytest.mark.slow
def test_poison_row_is_dead_lettered_and_retry_dead_drains_after_the_fix(stack: Stack) -> None:
    stack.start()
    wait_for_capture(stack)
    with sqlite3.connect(stack.monolith) as db:
        db.execute("INSERT INTO customers VALUES (1, 'first', 'A', '100', 1)")
        db.execute("UPDATE customers SET st = 'X', version = 2 WHERE id = 1")  # no such code
        db.execute("UPDATE customers SET nm = 'later', version = 3 WHERE id = 1")
        db.execute("INSERT INTO customers VALUES (2, 'other key', 'I', '5', 1)")
    stack.wait_caught_up()
    totals = stack.api("/api/sync")["totals"]
    assert (totals["dead_lettered"], totals["parked"]) == (1, 1)
    assert stack.query("SELECT id, name FROM customers ORDER BY id") == [
        (1, "first"),
        (2, "other key"),
    ]
    assert stack.terminate() == 0

    still = stack.cli("sync", "--retry-dead")
    assert still.returncode == 1 and "still dead 1, parked 1" in still.stdout

    stack.routes.write_text(
        stack.routes.read_text().replace(
            "{A: active, I: inactive}", "{A: active, I: inactive, X: suspended}"
        )
    )
    fixed = stack.cli("sync", "--retry-dead")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "applied 2" in fixed.stdout and "still dead 0, parked 0" in fixed.stdout
    assert stack.query("SELECT name, status, version FROM customers WHERE id = 1") == [
        ("later", "suspended", 3)
    ]
    assert stack.duplicate_writes() == []
