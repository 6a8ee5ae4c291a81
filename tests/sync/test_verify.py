"""``verify`` against a PostgreSQL monolith (as the kafka/debezium sources capture it):
rows mapped through the adapter match the target, drift is found row by row, and
``repair`` writes the monolith's truth back through the sink."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from pathlib import Path

import psycopg
from sqlalchemy import text

from strangler.sync.adapters import AdapterSet
from strangler.sync.model import ChangeEvent, Position
from strangler.sync.sink import Sink
from strangler.sync.verify import Verifier
from strangler.sync_config import SyncConfig


def config(monolith: str, target: str) -> SyncConfig:
    return SyncConfig.model_validate({
        "sources": [{"name": "shop", "kind": "kafka", "monolith": monolith,
                     "options": {"bootstrap_servers": "127.0.0.1:9",
                                 "topics": ["shop.public.orders"], "group_id": "g"}}],
        "targets": {"svc": target},
        "tables": [{"source": "public.orders", "target": "svc", "adapter": {
            "table": "orders", "key": ["id"], "rename": {"ord_no": "id"},
            "values": {"state": {"O": "open", "S": "shipped"}}}}],
    })  # fmt: skip


def test_verify_reads_a_postgresql_monolith_and_repairs_drift(pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (ord_no INTEGER PRIMARY KEY, total NUMERIC(10, 2),"
            " placed DATE, paid_at TIMESTAMPTZ, state CHAR(1))"
        )
        for i in range(1, 301):
            conn.execute(
                "INSERT INTO orders VALUES (%s, %s, %s, %s, %s)",
                (i, Decimal(i) / 4, dt.date(2024, 1, 1) + dt.timedelta(days=i),
                 dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(hours=i), "OS"[i % 2]),
            )  # fmt: skip
    target = f"sqlite:///{tmp_path / 'svc.db'}"
    cfg = config(pg_url, target)
    sink = Sink("svc", target, AdapterSet(cfg))
    with sink.engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, total NUMERIC,"
                          " placed DATE, paid_at TIMESTAMP, state TEXT)"))  # fmt: skip
    sink.setup()
    # What the Debezium stream would have delivered (decimal.handling.mode=string).
    events = [
        ChangeEvent("shop", "public.orders", "c", {"ord_no": i}, None,
                    {"ord_no": i, "total": str(Decimal(i) / 4), "state": "OS"[i % 2],
                     "placed": dt.date(2024, 1, 1) + dt.timedelta(days=i),
                     "paid_at": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(hours=i)},
                    Position(i, i), 0)
        for i in range(1, 301)
    ]  # fmt: skip
    sink.apply("shop", events, {"shop.public.orders/0": 300})

    clean = Verifier(cfg).run(lag_window=0)
    assert (clean.compared, clean.drift) == (300, [])

    with sink.engine.begin() as conn:
        conn.execute(text("UPDATE orders SET total = 99 WHERE id = 150"))
        conn.execute(text("DELETE FROM orders WHERE id = 7"))
    drift = Verifier(cfg).run(lag_window=0.05, repair=True)
    assert sorted((d.kind, dict(d.key)["id"]) for d in drift.drift) == [
        ("different", 150),
        ("missing", 7),
    ]
    assert "total: 99 != 37.5" in str(next(d for d in drift.drift if d.kind == "different"))
    assert drift.repaired == 2
    assert Verifier(cfg).run(lag_window=0).drift == []
    sink.close()


def test_changes_in_flight_within_the_lag_window_are_not_drift(pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (ord_no INTEGER PRIMARY KEY, state CHAR(1))")
        conn.execute("INSERT INTO orders VALUES (1, 'O'), (2, 'S')")
    target = f"sqlite:///{tmp_path / 'svc.db'}"
    cfg = config(pg_url, target)
    sink = Sink("svc", target, AdapterSet(cfg))
    with sink.engine.begin() as target_conn:
        target_conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, state TEXT)"))
    sink.setup()

    def change(ident: int, state: str, pos: int) -> ChangeEvent:
        row = {"ord_no": ident, "state": state}
        return ChangeEvent("shop", "public.orders", "c", {"ord_no": ident}, None, row,
                           Position(pos, pos), 0)  # fmt: skip

    sink.apply("shop", [change(1, "O", 1)], {})  # order 2 is still on its way
    late = threading.Timer(0.3, lambda: sink.apply("shop", [change(2, "S", 2)], {}))
    late.start()
    report = Verifier(cfg).run(lag_window=1.5)
    late.join()
    assert report.drift == []
    sink.close()
