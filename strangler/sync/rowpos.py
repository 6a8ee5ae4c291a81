"""Per-row positions, compact: which position last wrote each target row.

``strangler_row_tables``     id -> table name (target and source tables alike, each
                             stored once), and for a target table the name of its
                             integer key column when it has one
``strangler_positions``      (table id, row key) -> position that last wrote the row
                             (two integers), source table id, ``deleted_at``: NULL for
                             a live row, the time of the delete for the graveyard
``strangler_loaded_ranges``  key ranges the bulk load wrote straight into an empty
                             target range (``staging.py``): their rows have no entry

A row key is stored as its digits when it is the table's one integer key column
(``{"id":42}`` -> ``42``), else as its ``key_text``; callers only ever see
``key_text``. A row of a loaded range without an entry was written by the load at
the load's position, which is older than every streamed change (see ``snapshot.py``):
no entry and that position judge every event the same way, so none is stored. A
table kept by the stream (``highs.py``) has no entries at all: the stream's offsets,
stored with every batch, judge its events instead.

About 60 bytes of heap and 33-42 of index per entry, against ~180 in the layout before
(``strangler_row_positions``: names and ``key_text`` in every row, a float time);
``migrate`` moves an old table into this one on start. Runs inside the caller's
transaction, except that a new table name is registered in its own (PostgreSQL).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    any_,
    bindparam,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql

from strangler.errors import SyncError
from strangler.sync.model import Position
from strangler.sync.upsert import upsert

metadata = MetaData()

names = Table(
    "strangler_row_tables",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(300), nullable=False, unique=True),
    Column("key_name", Text, nullable=True),
)

positions = Table(
    "strangler_positions",
    metadata,
    # Fixed-width columns first: no alignment padding before the key text.
    Column("pos_commit", BigInteger, nullable=False),
    Column("pos_seq", BigInteger, nullable=False),
    Column("tbl", SmallInteger, primary_key=True),
    Column("src", SmallInteger, nullable=False),
    Column("row_key", Text, primary_key=True),
    Column("deleted_at", Float, nullable=True),
)
Index(
    "strangler_positions_graveyard",
    positions.c.deleted_at,
    postgresql_where=positions.c.deleted_at.is_not(None),
    sqlite_where=positions.c.deleted_at.is_not(None),
)

loaded_ranges = Table(
    "strangler_loaded_ranges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("source_table", String(300), nullable=False),
    Column("target_table", String(300), nullable=False),
    Column("key_column", Text, nullable=False),
    Column("low", BigInteger, nullable=True),
    Column("high", BigInteger, nullable=True),
)

State = tuple[Position, bool]
"""A stored position and whether the row is deleted."""


@dataclass
class RowState:
    """A target row's stored (or, within a batch, just written) position; made for
    every write the stale check lets through, so it lives in this compiled module."""

    position: Position
    deleted: bool

    def __init__(self, position: Position, deleted: bool) -> None:  # plain stores
        self.position = position
        self.deleted = deleted


_IDS: weakref.WeakKeyDictionary[Engine, dict[str, tuple[int, str | None]]] = (
    weakref.WeakKeyDictionary()
)
"""Per target database: committed dictionary rows (they never change once written)."""

_REGISTER = (
    "INSERT INTO strangler_row_tables (name, key_name)"
    " SELECT CAST(:name AS VARCHAR), CAST(:key_name AS TEXT) WHERE NOT EXISTS"
    " (SELECT 1 FROM strangler_row_tables WHERE name = CAST(:name AS VARCHAR))"
    " ON CONFLICT (name) DO NOTHING"
)


# ----------------------------------------------------------------- row keys


def int_key_name(key: str) -> str | None:
    """The column of a ``key_text`` that is one integer column, else None."""
    if not key.startswith('{"'):
        return None
    try:
        value = json.loads(key)
    except ValueError:
        return None
    if isinstance(value, dict) and len(value) == 1:
        ((name, inner),) = value.items()
        if type(inner) is int:
            return str(name)
    return None


_PREFIXES: dict[str, str] = {}
"""key column name -> ``{"name":``, the head of its ``key_text`` (made once, not per row)."""


def _prefix(key_name: str) -> str:
    prefix = _PREFIXES.get(key_name)
    if prefix is None:
        prefix = _PREFIXES[key_name] = "{" + json.dumps(key_name) + ":"
    return prefix


def stored_key(key: str, key_name: str | None) -> str:
    """``key_text`` -> the stored form (digits for the table's integer key)."""
    if key_name is not None:
        prefix = _prefix(key_name)
        if key.startswith(prefix) and key.endswith("}"):
            digits = key[len(prefix) : -1]
            bare = digits[1:] if digits.startswith("-") else digits
            if bare.isascii() and bare.isdigit():
                return digits
    return key


def key_of(stored: str, key_name: str | None) -> str:
    """The stored form -> ``key_text``."""
    if key_name is None or stored.startswith("{"):
        return stored
    return _prefix(key_name) + stored + "}"


# ---------------------------------------------------------------- dictionary


def _read_ids(conn: Connection, wanted: Iterable[str]) -> dict[str, tuple[int, str | None]]:
    query = select(names.c.name, names.c.id, names.c.key_name).where(
        names.c.name.in_(sorted(set(wanted)))
    )
    # Results go through a variable typed Any, here and below: SQLAlchemy 2.1 types a
    # Row as a tuple, and compiled code checks that it is one (README, "The compiled build").
    rows: Any = conn.execute(query)
    return {n: (int(i), k) for n, i, k in rows}


def lookup(conn: Connection, wanted: Iterable[str]) -> dict[str, tuple[int, str | None]]:
    """Ids (and key names) of the registered names among ``wanted``."""
    wanted = set(wanted)
    cache = _IDS.get(conn.engine) if conn.dialect.name == "postgresql" else None
    if cache is not None and wanted <= cache.keys():
        return {n: cache[n] for n in wanted}
    found = _read_ids(conn, wanted)
    if conn.dialect.name == "postgresql":
        # Rows seen here are committed: new names are registered in their own transaction.
        _IDS.setdefault(conn.engine, {}).update(found)
    return found


def register(conn: Connection, wanted: dict[str, str | None]) -> dict[str, tuple[int, str | None]]:
    """Ids of ``wanted`` (name -> key column name or None), registering new names.

    On PostgreSQL a new name is committed in a transaction of its own first, so the
    cache never holds an id a rolled-back batch made; SQLite (one writer at a time)
    registers inside the caller's transaction and caches nothing."""
    found = lookup(conn, wanted)
    missing = {n: k for n, k in wanted.items() if n not in found}
    if not missing:
        return found
    rows = [{"name": n, "key_name": k} for n, k in sorted(missing.items())]
    if conn.dialect.name == "postgresql":
        with conn.engine.begin() as own:
            own.execute(text(_REGISTER), rows)
        found.update(lookup(conn, missing))
    else:
        conn.execute(text(_REGISTER), rows)
        found.update(_read_ids(conn, missing))
    for name, (ident, _) in found.items():
        if ident > 32767:
            raise SyncError(f"too many table names in strangler_row_tables ({name}: {ident})")
    return found


# ------------------------------------------------------------------ positions


_LOAD_SQL = (
    "SELECT row_key, pos_commit, pos_seq, deleted_at IS NOT NULL FROM strangler_positions"
    " WHERE tbl = %(tbl)s AND row_key = ANY(%(keys)b::text[])"
)


def load(conn: Connection, table: str, keys: Iterable[str]) -> dict[str, State]:
    """``key_text`` -> stored state, for the keys of ``table`` that have an entry."""
    ids = lookup(conn, [table])
    if table not in ids:
        return {}
    tbl, key_name = ids[table]
    by_stored = {stored_key(k, key_name): k for k in keys}
    wanted = list(by_stored)
    out: dict[str, State] = {}
    binary = conn.dialect.driver == "psycopg"
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        if binary:  # the keys as one binary text[] (see upsert.py)
            rows: Any = conn.exec_driver_sql(_LOAD_SQL, {"tbl": tbl, "keys": chunk})
        else:
            column = positions.c.row_key
            match = (
                column == any_(bindparam("k", chunk, type_=postgresql.ARRAY(Text)))
                if conn.dialect.name == "postgresql"
                else column.in_(chunk)
            )
            rows = conn.execute(
                select(
                    column,
                    positions.c.pos_commit,
                    positions.c.pos_seq,
                    positions.c.deleted_at.is_not(None),
                ).where(positions.c.tbl == tbl, match)
            )
        for key, commit, seq, deleted in rows:
            out[by_stored[key]] = (Position(int(commit), int(seq)), bool(deleted))
    return out


def highest(conn: Connection, table: str) -> Position:
    """The highest position stored for a row of ``table`` (graveyard included);
    ``Position(0, 0)`` when it has none (rows of a loaded range have none)."""
    ids = lookup(conn, [table])
    if table not in ids:
        return Position(0, 0)
    # Any: compiled, the declared Row is taken for a tuple and checked (see README).
    result: Any = conn.execute(
        select(positions.c.pos_commit, positions.c.pos_seq)
        .where(positions.c.tbl == ids[table][0])
        .order_by(positions.c.pos_commit.desc(), positions.c.pos_seq.desc())
        .limit(1)
    )
    found = result.first()
    return Position(0, 0) if found is None else Position(int(found[0]), int(found[1]))


def save(conn: Connection, rows: list[dict[str, object]]) -> None:
    """rows: target_table, row_key (``key_text``), pos_commit, pos_seq, deleted,
    source_table. Upserted by (target table, row key)."""
    if not rows:
        return
    wanted: dict[str, str | None] = {}
    for row in rows:
        target = str(row["target_table"])
        if target not in wanted:
            wanted[target] = int_key_name(str(row["row_key"]))
        wanted.setdefault(str(row["source_table"]), None)
    ids = register(conn, wanted)
    now = time.time()
    out = [
        {
            "pos_commit": row["pos_commit"],
            "pos_seq": row["pos_seq"],
            "tbl": ids[str(row["target_table"])][0],
            "src": ids[str(row["source_table"])][0],
            "row_key": stored_key(str(row["row_key"]), ids[str(row["target_table"])][1]),
            "deleted_at": now if row["deleted"] else None,
        }
        for row in rows
    ]
    for start in range(0, len(out), 1000):
        upsert(conn, positions, ["tbl", "row_key"], out[start : start + 1000])


def live_rows_from(conn: Connection, source_table: str) -> list[tuple[str, str, Position]]:
    """(target table, ``key_text``, position) of every live target row that came from
    ``source_table``: entries, and the rows of its loaded ranges that have none."""
    ids = lookup(conn, [source_table])
    out: list[tuple[str, str, Position]] = []
    if source_table in ids:
        by_id = {i: (n, k) for n, (i, k) in _all_ids(conn).items()}
        found: Any = conn.execute(
            select(
                positions.c.tbl, positions.c.row_key, positions.c.pos_commit, positions.c.pos_seq
            ).where(positions.c.src == ids[source_table][0], positions.c.deleted_at.is_(None))
        )
        for tbl, key, commit, seq in found:
            name, key_name = by_id[int(tbl)]
            out.append((name, key_of(key, key_name), Position(int(commit), int(seq))))
    if conn.dialect.name == "postgresql":
        out.extend(_loaded_rows(conn, source_table))
    return out


def _all_ids(conn: Connection) -> dict[str, tuple[int, str | None]]:
    rows: Any = conn.execute(select(names))
    return {n: (int(i), k) for i, n, k in rows}


def _loaded_rows(conn: Connection, source_table: str) -> list[tuple[str, str, Position]]:
    ranges: Any = conn.execute(
        select(
            loaded_ranges.c.target_table,
            loaded_ranges.c.key_column,
            loaded_ranges.c.low,
            loaded_ranges.c.high,
        ).where(loaded_ranges.c.source_table == source_table)
    ).all()
    ids = lookup(conn, {r[0] for r in ranges})
    quote = conn.dialect.identifier_preparer.quote
    out: list[tuple[str, str, Position]] = []
    for target, column, low, high in ranges:
        tbl, key_name = ids.get(target, (-1, None))
        prefix = "{" + json.dumps(column) + ":"
        value = f"CAST(t.{quote(column)} AS TEXT)"
        stored = value if key_name == column else f":prefix || {value} || '}}'"
        schema, _, bare = target.rpartition(".")
        table = f"{quote(schema)}.{quote(bare)}" if schema else quote(bare)
        where = ["true"]
        where += [f"t.{quote(column)} >= :low"] if low is not None else []
        where += [f"t.{quote(column)} < :high"] if high is not None else []
        found: Any = conn.execute(
            text(
                f"SELECT {value} FROM {table} t WHERE {' AND '.join(where)}"
                " AND NOT EXISTS (SELECT 1 FROM strangler_positions p"
                f" WHERE p.tbl = :tbl AND p.row_key = {stored})"
            ),
            {"low": low, "high": high, "tbl": tbl, "prefix": prefix},
        )
        # The load's position is below every streamed change: (0, 0) says as much.
        out.extend((target, prefix + v + "}", Position(0, 0)) for (v,) in found)
    return out


# ------------------------------------------------------------------ migration


_OLD = "strangler_row_positions"


def migrate(conn: Connection) -> int:
    """Move the entries of the old layout (``strangler_row_positions``) into this one
    and drop it; entries moved (0 when there is no old table)."""
    if not inspect(conn).has_table(_OLD):
        return 0
    old = Table(_OLD, MetaData(), autoload_with=conn)
    rows: Any = conn.execute(select(old.c.target_table).distinct())
    targets = [str(n) for (n,) in rows]
    key_names: dict[str, str | None] = {}
    for target in targets:
        sample = conn.execute(
            select(old.c.row_key).where(old.c.target_table == target).limit(1)
        ).scalar_one()
        key_names[target] = int_key_name(str(sample))
    rows = conn.execute(select(old.c.source_table).distinct())
    sources = [str(n) for (n,) in rows]
    wanted = {**{s: None for s in sources}, **key_names}
    conn.execute(text(_REGISTER), [{"name": n, "key_name": k} for n, k in wanted.items()])
    ids = _read_ids(conn, wanted)
    moved = 0
    query = select(
        old.c.target_table,
        old.c.row_key,
        old.c.pos_commit,
        old.c.pos_seq,
        old.c.deleted,
        old.c.source_table,
        old.c.applied_at,
    )
    result: Any = conn.execute(query, execution_options={"yield_per": 10_000})
    for part in result.partitions():
        batch = [
            {
                "pos_commit": int(commit),
                "pos_seq": int(seq),
                "tbl": ids[target][0],
                "src": ids[source][0],
                "row_key": stored_key(key, ids[target][1]),
                "deleted_at": float(at) if deleted else None,
            }
            for target, key, commit, seq, deleted, source, at in part
        ]
        upsert(conn, positions, ["tbl", "row_key"], batch, update=False)
        moved += len(batch)
    old.drop(conn)
    return moved
