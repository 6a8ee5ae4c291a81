"""Schema changes without harm, into a real target (SQLite and PostgreSQL): a new source
column the mapping does not use is left out (or added by option), and a column the
mapping needs but the target lacks stops that table only — parked, one alert, no dead
letters — until the target has it, then the table resumes in order by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from strangler.sync import ledger, schema
from strangler.sync.adapters import AdapterSet
from strangler.sync.model import ChangeEvent, Position
from strangler.sync.sink import Sink
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig

DDL = (
    "CREATE TABLE accounts (aid INTEGER PRIMARY KEY, balance INTEGER)",
    "CREATE TABLE tellers (tid INTEGER PRIMARY KEY, balance INTEGER)",
)


def make_sink(target_url: str, accounts: dict[str, Any]) -> Sink:
    config = SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "sqlite",
                     "options": {"database": "m.db", "tables": ["accounts"]}}],
        "targets": {"svc": target_url},
        "tables": [
            {"source": "accounts", "target": "svc", **accounts},
            {"source": "tellers", "target": "svc",
             "adapter": {"table": "tellers", "key": ["tid"], "rename": {"tbalance": "balance"}}},
        ],
    })  # fmt: skip
    sink = Sink("svc", target_url, AdapterSet(config), retries=1)
    with sink.engine.begin() as conn:
        for ddl in DDL:
            conn.execute(text(ddl))
    sink.setup()
    return sink


ACCOUNTS = {"adapter": {"table": "accounts", "key": ["aid"], "rename": {"abalance": "balance"}}}

_seq = iter(range(1, 1_000_000))


def account(aid: int, balance: int, **extra: Any) -> ChangeEvent:
    n = next(_seq)
    return ChangeEvent("mono", "public.accounts", "u", {"aid": aid}, None,
                       {"aid": aid, "abalance": balance, **extra}, Position(n, n), n)  # fmt: skip


def teller(tid: int, balance: int) -> ChangeEvent:
    n = next(_seq)
    return ChangeEvent("mono", "public.tellers", "u", {"tid": tid}, None,
                       {"tid": tid, "tbalance": balance}, Position(n, n), n)  # fmt: skip


def rows(sink: Sink, sql: str) -> list[tuple[Any, ...]]:
    with sink.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def changes(sink: Sink) -> list[tuple[str, str, str]]:
    with sink.engine.connect() as conn:
        found = schema.recent(conn)
    return sorted((c["target_table"], c["column_name"], c["action"]) for c in found)


@pytest.fixture
def plain(target_url: str) -> Iterator[Sink]:
    sink = make_sink(target_url, ACCOUNTS)
    yield sink
    sink.close()


def test_a_new_column_the_mapping_does_not_use_is_left_out_and_recorded_once(plain: Sink) -> None:
    batch = [account(i, 10 * i, email=None if i % 2 else f"u{i}@x") for i in range(1, 51)]
    result = plain.apply("mono", batch, {"changes": 50})
    assert result.total("applied") == 50 and result.total("dead_letter") == 0
    assert rows(plain, "SELECT count(*), sum(balance) FROM accounts") == [(50, 12750)]
    assert changes(plain) == [("accounts", "email", "ignored")]


def test_a_new_column_can_be_added_to_the_target_by_option(target_url: str) -> None:
    sink = make_sink(target_url, {**ACCOUNTS, "new_columns": "add"})
    try:
        sink.apply("mono", [account(1, 5, email=None), account(2, 6, email="a@b")], {"c": 2})
        sink.apply("mono", [account(1, 7, email="c@d")], {"c": 3})
        assert rows(sink, "SELECT aid, balance, email FROM accounts ORDER BY aid") == [
            (1, 7, "c@d"), (2, 6, "a@b")
        ]  # fmt: skip
        assert ("accounts", "email", "added") in changes(sink)
    finally:
        sink.close()


def test_a_needed_column_missing_stops_that_table_only_then_it_resumes_in_order(
    target_url: str, tmp_path: Path
) -> None:
    needs = {"adapter": {"table": "accounts", "key": ["aid"],
                         "rename": {"abalance": "balance", "bid": "branch_id"}}}  # fmt: skip
    sink = make_sink(target_url, needs)
    try:
        first = [account(i, i, bid=1) for i in range(1, 201)] + [teller(1, 100)]
        result = sink.apply("mono", first, {"c": 1})
        second = [account(i, i + 1000, bid=2) for i in range(1, 201)] + [teller(1, 200)]
        result2 = sink.apply("mono", second, {"c": 2})
        # The healthy table went on; the stopped one parked everything, dead-lettered nothing.
        assert rows(sink, "SELECT tid, balance FROM tellers") == [(1, 200)]
        assert rows(sink, "SELECT count(*) FROM accounts") == [(0,)]
        assert result.total("parked") + result2.total("parked") == 400
        assert result.total("dead_letter") + result2.total("dead_letter") == 0
        with sink.engine.connect() as conn:
            assert ledger.counts(conn)["dead_lettered"] == 0
            (stopped,) = schema.stopped_list(conn)
        assert stopped["source_table"] == "public.accounts"
        assert "no column 'branch_id'" in stopped["reason"]
        assert changes(sink) == [("accounts", "branch_id", "stopped")]
        # What an operator sees in GET /api/sync: the stopped table, with why.
        status = Worker(sink.adapters.config, base_dir=tmp_path).snapshot()
        (target,) = status["targets"]
        assert [t["source_table"] for t in target["stopped_tables"]] == ["public.accounts"]
        assert target["schema_changes"][0]["action"] == "stopped"

        with sink.engine.begin() as conn:
            conn.execute(text("ALTER TABLE accounts ADD COLUMN branch_id INTEGER"))
        time.sleep(schema.RECHECK + 0.2)
        sink.apply("mono", [teller(1, 300), account(7, 7777, bid=3)], {"c": 3})
        # Parked versions applied in order, then the new event: every row at its latest.
        assert rows(sink, "SELECT count(*), sum(balance) FROM accounts WHERE aid <> 7") == [
            (199, sum(i + 1000 for i in range(1, 201) if i != 7))
        ]
        assert rows(sink, "SELECT balance, branch_id FROM accounts WHERE aid = 7") == [(7777, 3)]
        with sink.engine.connect() as conn:
            assert schema.stopped_list(conn) == []
            assert ledger.counts(conn) == {"dead_lettered": 0, "parked": 0, "unparseable": 0}
        assert ("accounts", "branch_id", "resumed") in changes(sink)
    finally:
        sink.close()
