"""Many-row ``INSERT ... ON CONFLICT (key) DO UPDATE`` for the sink, fast on PostgreSQL.

On PostgreSQL the rows travel as one array per column and are expanded with
``unnest`` inside a single statement: a handful of parameters, one parse and plan,
whatever the batch size (SQLAlchemy compiling a 500-row VALUES list cost more than
the database work). The arrays are sent in PostgreSQL's binary format (psycopg's
``%b``): writing them as text literals, element by element with quoting, took about
four times the client CPU; arrays of ints and of strings are built whole
(``pgarrays.py``), the rest by psycopg's dumper. Column types come from the reflected
table so each array is cast to exactly the column's type. Tables with JSON or array
columns, and SQLite, use SQLAlchemy's executemany instead. No transaction handling here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import ARRAY


def _load_whole() -> Callable[[list[Any]], Any] | None:
    try:
        from strangler.sync.pgarrays import array
    except ImportError:  # psycopg is an extra
        return None
    return array


# Loaded with this module, before any connection: a psycopg connection copies the
# dumpers registered when it is made.
_whole = _load_whole()
"""Builds an int or string array whole (``pgarrays.py``); None without psycopg."""

_SQL_CACHE: dict[tuple[str, str, tuple[str, ...], tuple[str, ...], bool, bool], str] = {}


def upsert(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    update: bool = True,
) -> None:
    """Write ``rows`` (all with the same columns, unique per key) in one statement."""
    if not rows:
        return
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql" and _arrays_ok(table, columns):
        binary = conn.dialect.driver == "psycopg"
        sql = _unnest_sql(conn, table, tuple(keys), columns, update, binary)
        params: dict[str, Any] = {f"p{i}": [row[c] for row in rows] for i, c in enumerate(columns)}
        if binary:
            for name, values in params.items():
                built = _whole(values) if _whole is not None else None
                if built is not None:
                    params[name] = built
            conn.exec_driver_sql(sql, params)
        else:
            conn.execute(text(sql), params)
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    updates = {c: stmt.excluded[c] for c in columns if c not in keys}
    final = (
        stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)
        if update and updates
        else stmt.on_conflict_do_nothing(index_elements=list(keys))
    )
    conn.execute(final, [dict(r) for r in rows])


def _arrays_ok(table: Table, columns: Sequence[str]) -> bool:
    return not any(isinstance(table.c[c].type, JSON | ARRAY) for c in columns)


def _unnest_sql(
    conn: Connection,
    table: Table,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    update: bool,
    binary: bool,
) -> str:
    slot = (table.schema or "", table.name, keys, columns, update, binary)
    sql = _SQL_CACHE.get(slot)
    if sql is None:
        # psycopg's own placeholders go to the driver as is: a '%' in a name is doubled.
        escape = "%%" if binary else "%"

        def quote(name: str) -> str:
            return conn.dialect.identifier_preparer.quote(name).replace("%", escape)

        target = conn.dialect.identifier_preparer.format_table(table).replace("%", escape)
        names = ", ".join(quote(c) for c in columns)
        arrays = ", ".join(
            f"CAST({f'%(p{i})b' if binary else f':p{i}'}"
            f" AS {table.c[c].type.compile(dialect=conn.dialect)}[])"
            for i, c in enumerate(columns)
        )
        conflict = ", ".join(quote(k) for k in keys)
        sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in columns if c not in keys)
        action = f"DO UPDATE SET {sets}" if update and sets else "DO NOTHING"
        sql = (
            f"INSERT INTO {target} ({names}) SELECT * FROM unnest({arrays})"
            f" ON CONFLICT ({conflict}) {action}"
        )
        _SQL_CACHE[slot] = sql
    return sql
