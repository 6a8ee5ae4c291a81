"""Graveyard retention on a real target: deleted rows' positions older than the
retention go, newer ones and every live row's position stay."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from strangler.sync import retention, rowpos
from strangler.sync.adapters import AdapterSet
from strangler.sync.sink import Sink
from tests.sync.conftest import sync_config


def test_only_old_graveyard_entries_are_pruned(target_url: str) -> None:
    sink = Sink(
        "svc",
        target_url,
        AdapterSet(sync_config(target_url, "tests.sync.rowadapters:CustomerRows")),
    )
    sink.setup()
    now = time.time()
    day = 24 * 3600.0
    rows = [
        ("old-dead", True, now - 10 * day),
        ("new-dead", True, now - 1 * day),
        ("old-live", False, now - 10 * day),
    ]
    with sink.engine.begin() as conn:
        ids = rowpos.register(conn, {"customers": None, "main.customers": None})
        conn.execute(insert(rowpos.positions), [
            {"tbl": ids["customers"][0], "row_key": key, "pos_commit": 1, "pos_seq": 1,
             "src": ids["main.customers"][0], "deleted_at": at if dead else None}
            for key, dead, at in rows
        ])  # fmt: skip
    with sink.engine.begin() as conn:
        assert retention.prune_graveyard(conn, 7 * day) == 1
    with sink.engine.connect() as conn:
        left = sorted(r[0] for r in conn.execute(select(rowpos.positions.c.row_key)))
    assert left == ["new-dead", "old-live"]
    sink.close()
