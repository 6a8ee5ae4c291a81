"""Checksums per key range computed inside PostgreSQL, for ``verify``.

When a declarative mapping only renames (no cast, no value map) and both sides are
PostgreSQL with a one-column key, each side can hash its own rows: the key space is cut
at every ``RANGE_ROWS``-th source key, and each side answers, per range, its row count
and the md5 of its rows' text in key order — a few hundred bytes per range cross the
network instead of the rows. Only ranges whose answers differ are then compared row by
row (``verify``'s streaming merge over that range). Equal hashes mean equal text on
both sides; a difference of representation alone (``numeric(10,2)`` against
``numeric``) makes the range differ and the row comparison, which normalises values,
settles it. Read-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Date, DateTime, Integer, Numeric, Table, text

from strangler.sync_config import ColumnMap

RANGE_ROWS = 20_000
"""Source rows per checksummed range."""

Range = tuple[Any, Any]
"""[low, high) of key values; None at either end means unbounded."""


def pushable(
    cmap: ColumnMap, source: Table, target: Table, source_dialect: str, target_dialect: str
) -> list[tuple[str, str]] | None:
    """(source column, target column) pairs to hash, key first; None if not pushable."""
    if source_dialect != "postgresql" or target_dialect != "postgresql":
        return None
    if len(cmap.key) != 1 or cmap.cast or cmap.values:
        return None
    # Ranges are cut by each database's own ordering: only for keys ordered alike
    # everywhere (numbers, dates), never by a collation.
    pairs: list[tuple[str, str]] = []
    for column in source.c:
        if cmap.include is not None and column.name not in cmap.include:
            continue
        if column.name in cmap.exclude:
            continue
        pairs.append((column.name, cmap.rename.get(column.name, column.name)))
    if not all(t in target.c for _, t in pairs):
        return None
    key = [p for p in pairs if p[1] == cmap.key[0]]
    if len(key) != 1 or not isinstance(
        source.c[key[0][0]].type, Integer | Numeric | Date | DateTime
    ):
        return None
    return key + sorted((p for p in pairs if p != key[0]), key=lambda p: p[1])


def boundaries(conn: Connection, table: Table, key: str, every: int = RANGE_ROWS) -> list[Any]:
    """Every ``every``-th key value of ``table`` in key order (the cut points)."""
    name = _name(conn, table)
    column = _quote(conn, key)
    rows = conn.execute(
        text(
            f"SELECT k FROM (SELECT {column} AS k, row_number() OVER (ORDER BY {column}) AS n"
            f" FROM {name}) s WHERE n % :every = 0 ORDER BY k"
        ),
        {"every": every},
    )
    return [r[0] for r in rows]


def range_hashes(
    conn: Connection, table: Table, columns: Sequence[str], cuts: Sequence[Any]
) -> dict[int, tuple[int, str]]:
    """Range number (0 .. len(cuts)) -> (rows, md5 of the rows' text in key order).

    Range i holds keys in [cuts[i-1], cuts[i]) (``width_bucket``'s numbering)."""
    key = _quote(conn, columns[0])
    parts = ", ".join(f"coalesce({_quote(conn, c)}::text, E'\\\\N')" for c in columns)
    bucket = f"width_bucket({key}, CAST(:cuts AS {_array_type(conn, table, columns[0])}))"
    if not cuts:
        bucket = "0"
    query = text(
        f"SELECT {bucket} AS b, count(*), md5(string_agg(concat_ws('|', {parts}), E'\\n'"
        f" ORDER BY {key})) FROM {_name(conn, table)} GROUP BY 1"
    )
    rows = conn.execute(query, {"cuts": list(cuts)} if cuts else {})
    return {int(b): (int(n), str(h)) for b, n, h in rows}


def differing_ranges(
    left: Mapping[int, tuple[int, str]], right: Mapping[int, tuple[int, str]], cuts: Sequence[Any]
) -> list[Range]:
    out: list[Range] = []
    for number in sorted(set(left) | set(right)):
        if left.get(number) != right.get(number):
            low = cuts[number - 1] if number > 0 else None
            high = cuts[number] if number < len(cuts) else None
            out.append((low, high))
    return out


def _array_type(conn: Connection, table: Table, column: str) -> str:
    return f"{table.c[column].type.compile(dialect=conn.dialect)}[]"


def _name(conn: Connection, table: Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)


def _quote(conn: Connection, column: str) -> str:
    return conn.dialect.identifier_preparer.quote(column)
