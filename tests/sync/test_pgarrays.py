"""Arrays built whole (``pgarrays.py``) read back by a real PostgreSQL exactly as
psycopg's own dumper's, and written through the sink's ``unnest`` upsert."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import MetaData, Table, create_engine

from strangler.sync.pgarrays import Int4Array, Int8Array, TextArray, array
from strangler.sync.upsert import upsert

BUILT = [
    ([1, -5, 0, 2**31 - 1, -(2**31)], Int4Array),
    ([1, 2**31, -(2**63), 2**63 - 1], Int8Array),
    (["a", "héllo wörld", "", "x" * 84, "quote ' and \" and {,}", "null"], TextArray),
]
LEFT_TO_PSYCOPG = [[], [1, None], ["a", None], [None, None], [1.5, 2.0], [2**64], [b"x"]]


@pytest.mark.parametrize(("values", "kind"), BUILT)
def test_a_built_array_reads_back_as_psycopgs_own(
    pg_url: str, values: list[Any], kind: type
) -> None:
    built = array(values)
    assert isinstance(built, kind)
    with psycopg.connect(pg_url) as conn:
        mine = conn.execute("SELECT %b", (built,)).fetchone()
        theirs = conn.execute("SELECT %b", (values,)).fetchone()
    assert mine is not None and theirs is not None
    assert mine[0] == theirs[0] == values


@pytest.mark.parametrize("values", LEFT_TO_PSYCOPG)
def test_nulls_and_other_types_are_left_to_psycopg(values: list[Any]) -> None:
    assert array(values) is None


def test_the_unnest_upsert_writes_built_and_psycopg_arrays_alike(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t (id int PRIMARY KEY, big bigint, name char(6), note text,"
            " price numeric(8, 2))"
        )
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    table = Table("t", MetaData(), autoload_with=engine)
    rows = [
        {"id": 1, "big": 2**40, "name": "ab", "note": None, "price": None},
        {"id": 2, "big": -1, "name": "é", "note": "x", "price": None},
    ]
    with engine.begin() as conn:
        upsert(conn, table, ["id"], rows)
        upsert(conn, table, ["id"], [{"id": 2, "big": 7, "name": "z", "note": "y", "price": None}])
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT id, big, name, note FROM t ORDER BY id").fetchall()
    engine.dispose()
    assert found == [(1, 2**40, "ab    ", None), (2, 7, "z     ", "y")]
