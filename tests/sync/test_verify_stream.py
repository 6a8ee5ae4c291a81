"""``verify`` streaming both sides (PostgreSQL -> PostgreSQL): checksummed key ranges,
row-by-row only where they differ; rows counted, so a non-unique key is caught; under
live traffic only the rows that differed are read again."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from strangler.sync.verify import Verifier
from strangler.sync_config import SyncConfig


def config(url: str, **table: object) -> SyncConfig:
    target = url.replace("postgresql://", "postgresql+psycopg://")
    return SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "kafka", "monolith": url,
                     "options": {"bootstrap_servers": "127.0.0.1:9", "topics": ["x"]}}],
        "targets": {"svc": target},
        "tables": [{"source": "public.pgbench_accounts", "target": "svc", "adapter": {
            "table": "accounts", "key": ["id"],
            "rename": {"aid": "id", "bid": "branch", "abalance": "balance"}}, **table}],
    })  # fmt: skip


@pytest.fixture
def accounts(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int,"
                     " abalance int, filler text)")  # fmt: skip
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, branch int, balance int,"
                     " filler text)")  # fmt: skip
        conn.execute("INSERT INTO pgbench_accounts SELECT g, g % 7, g * 3, 'x'"
                     " FROM generate_series(1, 65000) g")  # fmt: skip
        conn.execute("INSERT INTO accounts SELECT aid, bid, abalance, filler"
                     " FROM pgbench_accounts")  # fmt: skip
    return pg_url


def test_drift_in_a_few_ranges_is_found_row_by_row(accounts: str) -> None:
    with psycopg.connect(accounts, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET balance = -1 WHERE id = 30001")
        conn.execute("DELETE FROM accounts WHERE id = 5")
        conn.execute("INSERT INTO accounts VALUES (99999, 1, 1, 'x')")
        conn.execute("UPDATE accounts SET filler = NULL WHERE id = 64000")
    report = Verifier(config(accounts)).run(lag_window=0)
    assert sorted((d.kind, d.key["id"]) for d in report.drift) == [
        ("different", 30001), ("different", 64000), ("extra", 99999), ("missing", 5)
    ]  # fmt: skip
    counts = report.rows["svc.accounts"]
    assert (counts.source_rows, counts.target_rows) == (65000, 65000)
    assert report.compared == 65001

    repaired = Verifier(config(accounts)).run(lag_window=0, repair=True)
    assert repaired.repaired == 4
    assert Verifier(config(accounts)).run(lag_window=0).drift == []


def test_a_non_unique_source_key_is_reported_as_duplicate_rows(accounts: str) -> None:
    with psycopg.connect(accounts, autocommit=True) as conn:
        conn.execute("CREATE TABLE history (tid int, delta int)")
        conn.execute("CREATE TABLE tx (tid int PRIMARY KEY, delta int)")
        conn.execute("INSERT INTO history VALUES (1, 5), (1, 7), (2, 1)")
        conn.execute("INSERT INTO tx VALUES (1, 7), (2, 1)")  # one of tid 1's rows is lost
    cfg = SyncConfig.model_validate({
        **config(accounts).model_dump(exclude={"tables"}),
        "tables": [{"source": "public.history", "target": "svc", "source_key": ["tid"],
                    "adapter": {"table": "tx", "key": ["tid"]}}],
    })  # fmt: skip
    report = Verifier(cfg).run(lag_window=0)
    assert [d.kind for d in report.drift].count("duplicate") == 1
    counts = report.rows["svc.tx"]
    assert (counts.source_rows, counts.target_rows) == (3, 2)


def test_under_live_traffic_only_lasting_drift_is_reported(accounts: str) -> None:
    with psycopg.connect(accounts, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET balance = -1 WHERE id IN (10, 40000)")

    def catch_up() -> None:  # the sync worker applying row 10 during the window
        time.sleep(0.5)
        with psycopg.connect(accounts, autocommit=True) as conn:
            conn.execute("UPDATE accounts SET balance = 30 WHERE id = 10")

    thread = threading.Thread(target=catch_up)
    thread.start()
    report = Verifier(config(accounts)).run(lag_window=1.5)
    thread.join()
    assert [(d.kind, d.key["id"]) for d in report.drift] == [("different", 40000)]
