"""The initial load's write side: rows COPYed into a temporary staging table per target
table and merged set-wise, with their positions; and a rename-only declarative mapping
compiled into column picks over row tuples. Runs inside the chunk's transaction.

``passthrough``: when such a mapping also keeps every column's type and the key is one
integer column, the chunk is not read into Python at all: ``COPY (SELECT ...) TO
STDOUT`` on the monolith is piped block by block into ``COPY ... FROM STDIN`` on the
staging table, the row key text computed in the SELECT (the text ``key_text`` gives
an integer key). Same rows, same values: each value leaves and enters as its type's
own text form (both sessions in ISO dates), never converted on the way."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.sync.adapters import DeclarativeAdapter
from strangler.sync.codec import key_text
from strangler.sync.keys import split_table
from strangler.sync.model import Position, RowUpsert


class Stage:
    """Per target table: a temporary staging table filled by COPY, merged set-wise."""

    def __init__(
        self, conn: psycopg.Connection[Any], source_table: str, position: Position, source: str
    ):
        self.conn = conn
        self.source_table = source_table
        self.position = position
        self.source = source
        self._pending: dict[str, tuple[list[str], list[str], list[list[Any]]]] = {}
        """table -> (key columns, columns, rows: values in column order + row key text)."""
        self._made: dict[str, tuple[list[str], list[str]]] = {}

    def add(self, write: RowUpsert) -> None:
        keys = list(write.key)
        slot = self._pending.get(write.table)
        if slot is None:
            columns = keys + [c for c in write.values if c not in keys]
            slot = self._pending[write.table] = (keys, columns, [])
        row = {**write.values, **write.key}
        slot[2].append([*(row.get(c) for c in slot[1]), key_text(write.key)])

    def add_rows(
        self, table: str, keys: list[str], columns: list[str], rows: list[list[Any]]
    ) -> None:
        """Rows already in ``columns`` order, each ending with its row key text."""
        slot = self._pending.setdefault(table, (keys, columns, []))
        slot[2].extend(rows)

    def pipe(
        self, plan: Passthrough, source: psycopg.Connection[Any], low: int | None, high: int | None
    ) -> int:
        """COPY the source rows of key range [low, high) across; rows copied. Into the
        target table itself when it has no row in that range (the usual first load),
        with the positions then written from it; else into the staging table."""
        target = sql.Identifier(*split_table(plan.table))
        empty = self.conn.execute(
            sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {}{})").format(
                target, key_range(plan.keys[0], low, high)
            )
        ).fetchone()
        direct = bool(empty and empty[0])
        key_text_sql = sql.SQL("{} || {}::text || '}}'").format(
            sql.Literal("{" + json.dumps(plan.keys[0]) + ":"), sql.Identifier(plan.key_pick)
        )
        select = sql.SQL("SELECT {}{} FROM {}{}").format(
            sql.SQL(", ").join(map(sql.Identifier, plan.picks)),
            sql.SQL("") if direct else sql.SQL(", ") + key_text_sql,
            plan.source,
            key_range(plan.key_pick, low, high),
        )
        columns = sql.SQL(", ").join(map(sql.Identifier, plan.columns))
        if direct:
            into = sql.SQL("COPY {} ({}) FROM STDIN").format(target, columns)
        else:
            stage = self._stage(plan.table, list(plan.keys), list(plan.columns))
            into = sql.SQL("COPY {} ({}, strangler_row_key) FROM STDIN").format(
                sql.Identifier(stage), columns
            )
        for conn in (source, self.conn):
            conn.execute("SET LOCAL DateStyle = ISO, YMD")
            conn.execute("SET LOCAL IntervalStyle = postgres")
        with (
            source.cursor() as reading,
            reading.copy(sql.SQL("COPY ({}) TO STDOUT").format(select)) as out,
            self.conn.cursor() as writing,
        ):
            with writing.copy(into) as copy:
                for block in out:
                    copy.write(block)
            copied = max(0, writing.rowcount)
        if direct:
            own_key = sql.SQL("{} || {}::text || '}}'").format(
                sql.Literal("{" + json.dumps(plan.keys[0]) + ":"), sql.Identifier(plan.keys[0])
            )
            self._positions(plan.table, own_key, target, key_range(plan.keys[0], low, high))
        return copied

    def _positions(
        self, table: str, row_key: sql.Composable, rows: sql.Composable, where: sql.Composable
    ) -> None:
        """Every row of ``rows`` (``where``) gets the load's position in ``table``."""
        self.conn.execute(
            sql.SQL(
                "INSERT INTO strangler_row_positions (target_table, row_key, pos_commit,"
                " pos_seq, deleted, source_table, applied_at)"
                " SELECT %s, {}, %s, %s, false, %s, %s FROM {}{}"
                " ON CONFLICT (target_table, row_key) DO NOTHING"
            ).format(row_key, rows, where),
            (table, self.position.commit, self.position.seq, self.source_table, time.time()),
        )

    def flush(self) -> None:
        for table, (keys, columns, rows) in self._pending.items():
            stage = self._stage(table, keys, columns)
            copy_sql = sql.SQL("COPY {} ({}, strangler_row_key) FROM STDIN").format(
                sql.Identifier(stage), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with self.conn.cursor().copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        self._pending.clear()

    def _stage(self, table: str, keys: list[str], columns: list[str]) -> str:
        stage = f"strangler_stage_{abs(hash(table)) % 10**8}"
        if table not in self._made:
            self.conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
                ).format(
                    sql.Identifier(stage),
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.Identifier(*split_table(table)),
                )
            )
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN strangler_row_key text").format(
                    sql.Identifier(stage)
                )
            )
            self._made[table] = (keys, columns)
        return stage

    def merge(self) -> None:
        """Stage -> target (newest wins within the stage: one row per key) + positions."""
        for table, (keys, columns) in self._made.items():
            stage = sql.Identifier(f"strangler_stage_{abs(hash(table)) % 10**8}")
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            conflict = sql.SQL(", ").join(map(sql.Identifier, keys))
            sets = [c for c in columns if c not in keys]
            action = (
                sql.SQL("DO UPDATE SET ")
                + sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in sets
                )
                if sets
                else sql.SQL("DO NOTHING")
            )
            self.conn.execute(
                sql.SQL("INSERT INTO {t} ({n}) SELECT {n} FROM {s} ON CONFLICT ({k}) ").format(
                    t=sql.Identifier(*split_table(table)), n=names, s=stage, k=conflict
                )
                + action
            )
            self._positions(table, sql.Identifier("strangler_row_key"), stage, sql.SQL(""))


def key_range(column: str, low: int | None, high: int | None) -> sql.Composable:
    """`` WHERE low <= column < high`` as literals (COPY takes no parameters)."""
    where: list[sql.Composable] = []
    if low is not None:
        where.append(sql.SQL("{} >= {}").format(sql.Identifier(column), low))
    if high is not None:
        where.append(sql.SQL("{} < {}").format(sql.Identifier(column), high))
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")


@dataclass(frozen=True)
class Compiled:
    """A rename-only declarative mapping as column picks over the source row tuple."""

    table: str
    keys: list[str]
    columns: list[str]
    picks: list[int]
    key_picks: list[int]

    def row(self, values: tuple[Any, ...]) -> list[Any]:
        key = {k: values[i] for k, i in zip(self.keys, self.key_picks, strict=True)}
        return [*(values[i] for i in self.picks), key_text(key)]


@dataclass(frozen=True)
class Passthrough:
    """A chunk that can go from the monolith to the staging table as COPY text."""

    source: sql.Composable
    table: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    """Target columns, in the order of ``picks``."""
    picks: tuple[str, ...]
    """Source columns."""
    key_pick: str


_TYPES = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
    " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY a.attnum"
)


def passthrough(
    adapter: Any, source: psycopg.Connection[Any], target: psycopg.Connection[Any], table: str
) -> Passthrough | None:
    """The pass-through plan for ``table`` under ``adapter``, or None when a value would
    need converting (a cast, a value map, another type, a non-integer or composite key)."""
    schema, name = split_table(table)
    src = dict(source.execute(_TYPES, (schema, name)).fetchall())
    compiled = compile_mapping(adapter, list(src))
    if compiled is None or len(compiled.keys) != 1:
        return None
    dst = dict(target.execute(_TYPES, split_table(compiled.table)).fetchall())
    names = list(src)
    picks = tuple(names[i] for i in compiled.picks)
    if any(dst.get(c) != src[p] for c, p in zip(compiled.columns, picks, strict=True)):
        return None
    key_pick = names[compiled.key_picks[0]]
    if src[key_pick] not in ("integer", "bigint", "smallint"):
        return None
    return Passthrough(
        sql.Identifier(schema, name),
        compiled.table,
        tuple(compiled.keys),
        tuple(compiled.columns),
        picks,
        key_pick,
    )


def compile_mapping(adapter: Any, names: Sequence[str]) -> Compiled | None:
    """The batch form of a declarative mapping that only renames/filters columns (the
    same rows ``DeclarativeAdapter.map`` gives); None for anything else."""
    if not isinstance(adapter, DeclarativeAdapter) or len(adapter.maps) != 1:
        return None
    cmap = adapter.maps[0]
    if cmap.cast or cmap.values:
        return None
    picks: list[int] = []
    columns: list[str] = []
    for i, name in enumerate(names):
        if (cmap.include is not None and name not in cmap.include) or name in cmap.exclude:
            continue
        picks.append(i)
        columns.append(cmap.rename.get(name, name))
    if not all(k in columns for k in cmap.key):
        return None
    key_picks = [picks[columns.index(k)] for k in cmap.key]
    return Compiled(cmap.table, list(cmap.key), columns, picks, key_picks)
