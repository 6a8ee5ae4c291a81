"""The initial load's write side: rows COPYed into a temporary staging table per target
table and merged set-wise, with their positions; and a rename-only declarative mapping
compiled into column picks over row tuples. Runs inside the chunk's transaction.

``passthrough``: when such a mapping also keeps every column's type and the key is one
integer column, the chunk is not read into Python at all: ``COPY (SELECT ...) TO
STDOUT`` on the monolith is piped block by block into ``COPY ... FROM STDIN`` on the
target table when the chunk's key range is empty there (its rows then get no position
each: the range is recorded, see ``rowpos``), else into the staging table with the
stored row key computed in the SELECT. Same rows, same values: each value leaves and
enters as its type's own text form (both sessions in ISO dates), never converted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import SyncError
from strangler.sync.adapters import DeclarativeAdapter
from strangler.sync.codec import key_text
from strangler.sync.keys import split_table
from strangler.sync.model import Position, RowUpsert
from strangler.sync.rowpos import int_key_name, stored_key


class Stage:
    """Per target table: a temporary staging table filled by COPY, merged set-wise.

    ``url``: the target's, to register table names (``rowpos``) in transactions of
    their own, so parallel chunks never wait on each other's."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        source_table: str,
        position: Position,
        source: str,
        url: str,
    ):
        self.conn = conn
        self.source_table = source_table
        self.position = position
        self.source = source
        self.url = url
        self._pending: dict[str, tuple[list[str], list[str], list[list[Any]]]] = {}
        """table -> (key columns, columns, rows: values in column order + stored row key)."""
        self._made: dict[str, tuple[list[str], list[str]]] = {}
        self._ids: dict[str, tuple[int, str | None]] = {}

    def ids(self, table: str, key_name: str | None) -> tuple[int, str | None]:
        """``table``'s id and key column name in ``strangler_row_tables`` (registered
        with ``key_name`` if new)."""
        if table not in self._ids:
            self._ids.update(register(self.url, {table: key_name, self.source_table: None}))
        return self._ids[table]

    def add(self, write: RowUpsert) -> None:
        keys = list(write.key)
        slot = self._pending.get(write.table)
        text = key_text(write.key)
        if slot is None:
            columns = keys + [c for c in write.values if c not in keys]
            slot = self._pending[write.table] = (keys, columns, [])
        key_name = self.ids(write.table, int_key_name(text))[1]
        row = {**write.values, **write.key}
        slot[2].append([*(row.get(c) for c in slot[1]), stored_key(text, key_name)])

    def add_rows(
        self, table: str, keys: list[str], columns: list[str], rows: list[list[Any]]
    ) -> None:
        """Rows already in ``columns`` order, each ending with its row key text."""
        if rows:
            key_name = self.ids(table, int_key_name(rows[0][-1]))[1]
            for row in rows:
                row[-1] = stored_key(row[-1], key_name)
        slot = self._pending.setdefault(table, (keys, columns, []))
        slot[2].extend(rows)

    def pipe(
        self, plan: Passthrough, source: psycopg.Connection[Any], low: int | None, high: int | None
    ) -> int:
        """COPY the source rows of key range [low, high) across; rows copied. Into the
        target table itself when it has no row in that range (the usual first load):
        its rows then get no position each, the range is recorded instead (see
        ``rowpos``); else into the staging table, with a position per row."""
        target = sql.Identifier(*split_table(plan.table))
        empty = self.conn.execute(
            sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {}{})").format(
                target, key_range(plan.keys[0], low, high)
            )
        ).fetchone()
        direct = bool(empty and empty[0])
        key_name = self.ids(plan.table, plan.keys[0])[1]
        key_text_sql = sql.SQL("{}::text").format(sql.Identifier(plan.key_pick))
        if key_name != plan.keys[0]:  # registered before with another key: key_text
            key_text_sql = sql.SQL("{} || {} || '}}'").format(
                sql.Literal("{" + json.dumps(plan.keys[0]) + ":"), key_text_sql
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
            self.conn.execute(
                "INSERT INTO strangler_loaded_ranges (source, source_table, target_table,"
                " key_column, low, high) VALUES (%s, %s, %s, %s, %s, %s)",
                (self.source, self.source_table, plan.table, plan.keys[0], low, high),
            )
        return copied

    def _positions(self, table: str, stage: sql.Composable) -> None:
        """Every staged row gets the load's position in ``table`` (unless it has one)."""
        self.conn.execute(
            sql.SQL(
                "INSERT INTO strangler_positions (pos_commit, pos_seq, tbl, src, row_key)"
                " SELECT %s, %s, %s, %s, strangler_row_key FROM {}"
                " ON CONFLICT (tbl, row_key) DO NOTHING"
            ).format(stage),
            (
                self.position.commit,
                self.position.seq,
                self._ids[table][0],
                self._ids[self.source_table][0],
            ),
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
            self._positions(table, stage)


_REGISTER = (
    "INSERT INTO strangler_row_tables (name, key_name)"
    " SELECT CAST(%(name)s AS VARCHAR), CAST(%(key_name)s AS TEXT) WHERE NOT EXISTS"
    " (SELECT 1 FROM strangler_row_tables WHERE name = CAST(%(name)s AS VARCHAR))"
    " ON CONFLICT (name) DO NOTHING"
)


def register(url: str, wanted: dict[str, str | None]) -> dict[str, tuple[int, str | None]]:
    """``rowpos.register`` for the load: committed at once, on a connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name, key_name in wanted.items():
            conn.execute(_REGISTER, {"name": name, "key_name": key_name})
        found = conn.execute(
            "SELECT name, id, key_name FROM strangler_row_tables WHERE name = ANY(%s)",
            (list(wanted),),
        ).fetchall()
    out = {str(n): (int(i), k) for n, i, k in found}
    if any(i > 32767 for i, _ in out.values()):
        raise SyncError("too many table names in strangler_row_tables")
    return out


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
        """The target row's values in ``columns`` order, then its ``key_text``."""
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
