"""Keys and the monolith's safety: which captured PostgreSQL tables can be replicated.

Two things must hold before a table is captured:

1. **strangler can tell its rows apart**: a primary key, a ``REPLICA IDENTITY USING
   INDEX`` unique index, or a key declared in ``sync.tables[].source_key`` that a
   unique index on NOT NULL columns backs. Without that, two legacy rows with the same
   key would be folded into one target row and one of them lost; a declared key the
   database does not enforce can become non-unique at any time, so it is refused too
   (the data is scanned to say whether a unique index could be created).
2. **publishing it leaves the monolith able to write**: PostgreSQL refuses UPDATE and
   DELETE on a published table that has no replica identity (no primary key and
   ``REPLICA IDENTITY DEFAULT``/``NOTHING``). Such a table is named, with what fixing
   it costs; strangler never alters the monolith's tables.

``publication_plan`` turns the checks into the tables a publication may hold;
``ensure_publication`` creates or extends strangler's publication with those alone
(never ``FOR ALL TABLES``). Only catalog reads and, for a declared key without an
index, one bounded ``GROUP BY`` scan; the only write is to the publication.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import Problem, SyncError
from strangler.sync_config import SLOT_KINDS, SyncConfig

SCAN_TIMEOUT_MS = 10_000
"""How long the uniqueness scan of a declared key without an index may take."""


@dataclass(frozen=True)
class TableKey:
    """What strangler found about one captured table."""

    table: str
    """``schema.table``."""
    key: tuple[str, ...]
    """The unique key strangler relies on (source column names); empty if none."""
    problem: str | None = None
    """Why the table cannot be captured safely (None: it can)."""

    @property
    def safe(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class _Index:
    name: str
    columns: tuple[str, ...]
    primary: bool
    identity: bool
    not_null: bool


_TABLE = """
SELECT c.oid, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""

_INDEXES = """
SELECT i.indexrelid::regclass::text, i.indisprimary, i.indisreplident,
       array_agg(a.attname::text ORDER BY k.ord), bool_and(a.attnotnull)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisunique AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid, i.indisprimary, i.indisreplident
"""


def split_table(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return (schema or "public"), name


def inspect_table(
    conn: psycopg.Connection[Any], table: str, declared: Sequence[str] = ()
) -> TableKey:
    """Check one table (``schema.table`` or bare, meaning ``public``)."""
    schema, name = split_table(table)
    qualified = f"{schema}.{name}"
    found = conn.execute(_TABLE, (schema, name)).fetchone()
    if found is None:
        return TableKey(qualified, (), f"{qualified} does not exist in the monolith database")
    oid, identity = found[0], str(found[1])
    indexes = [
        _Index(str(n), tuple(cols), bool(p), bool(r), bool(nn))
        for n, p, r, cols, nn in conn.execute(_INDEXES, (oid,)).fetchall()
    ]
    primary = next((i for i in indexes if i.primary), None)
    replident = next((i for i in indexes if i.identity), None)
    key, problem = _key(conn, qualified, indexes, primary, replident, tuple(declared))
    if problem is not None:
        return TableKey(qualified, (), problem)
    publishable = (
        (identity == "d" and primary is not None)
        or (identity == "i" and replident is not None)
        or identity == "f"
    )
    if not publishable:
        index = next(i for i in indexes if set(i.columns) == set(key))
        return TableKey(
            qualified,
            key,
            f"{qualified} has no replica identity: once published, the monolith could no "
            "longer UPDATE or DELETE its rows. Give it one yourself (strangler never alters "
            f"the monolith): ALTER TABLE {qualified} REPLICA IDENTITY USING INDEX "
            f"{index.name.rpartition('.')[2]} (no extra WAL), or REPLICA IDENTITY FULL "
            "(every UPDATE and DELETE then also writes the whole old row to the WAL)",
        )
    return TableKey(qualified, key)


def _key(
    conn: psycopg.Connection[Any],
    table: str,
    indexes: Sequence[_Index],
    primary: _Index | None,
    replident: _Index | None,
    declared: tuple[str, ...],
) -> tuple[tuple[str, ...], str | None]:
    if declared:
        backing = [i for i in indexes if set(i.columns) == set(declared) and i.not_null]
        if backing:
            return declared, None
        cols = ", ".join(declared)
        duplicates = _duplicate(conn, table, declared)
        why = (
            f"its data already repeats it ({duplicates}): two legacy rows would become one"
            if duplicates
            else f"the data is unique today; CREATE UNIQUE INDEX CONCURRENTLY ON {table} "
            f"({cols}) (columns NOT NULL) makes it a key strangler can rely on"
        )
        return (), f"{table}: the declared source_key ({cols}) has no unique index: {why}"
    for index in (primary, replident):
        if index is not None:
            return index.columns, None
    return (), (
        f"{table} has no primary key: strangler cannot tell its rows apart. Add a primary "
        "key, or declare sync.tables[].source_key naming columns with a unique index"
    )


def _duplicate(conn: psycopg.Connection[Any], table: str, key: Sequence[str]) -> str | None:
    """One repeated key value as text, None if unique; bounded by ``SCAN_TIMEOUT_MS``."""
    schema, name = split_table(table)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in key)
    query = sql.SQL(
        "SELECT {cols}, count(*) FROM {table} GROUP BY {cols} HAVING count(*) > 1 LIMIT 1"
    ).format(cols=columns, table=sql.Identifier(schema, name))
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {SCAN_TIMEOUT_MS}")
            row = conn.execute(query).fetchone()
    except psycopg.errors.QueryCanceled:
        return None
    except psycopg.Error as exc:
        return f"cannot scan it: {exc}".strip()
    if row is None:
        return None
    values = ", ".join(f"{c}={v!r}" for c, v in zip(key, row[:-1], strict=True))
    return f"{values} appears {row[-1]} times"


def inspect_tables(
    url: str, tables: Sequence[str], declared: Mapping[str, Sequence[str]]
) -> list[TableKey]:
    """Check every table of a PostgreSQL monolith; raises SyncError if unreachable."""
    try:
        with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
            return [inspect_table(conn, t, declared_for(declared, t)) for t in tables]
    except psycopg.Error as exc:
        raise SyncError(f"cannot read the monolith's catalog: {exc}".strip()) from exc


def declared_for(declared: Mapping[str, Sequence[str]], table: str) -> Sequence[str]:
    schema, name = split_table(table)
    return declared.get(f"{schema}.{name}") or declared.get(name) or ()


def user_tables(url: str) -> list[str]:
    """Every ordinary table outside the system schemas (``tables: []`` means all)."""
    query = """
        SELECT n.nspname || '.' || c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_%%'
        ORDER BY 1
    """
    try:
        with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
            return [str(r[0]) for r in conn.execute(query).fetchall()]
    except psycopg.Error as exc:
        raise SyncError(f"cannot list the monolith's tables: {exc}".strip()) from exc


def ensure_publication(url: str, name: str, tables: Sequence[str]) -> None:
    """Create publication ``name`` for exactly ``tables`` (all checked safe), or add the
    missing ones to it. Refuses to use a ``FOR ALL TABLES`` publication."""
    ident = [sql.Identifier(*split_table(t)) for t in tables]
    try:
        with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT puballtables FROM pg_publication WHERE pubname = %s", (name,)
            ).fetchone()
            if row is None:
                if not tables:
                    raise SyncError(f"publication {name}: no table can be captured safely")
                conn.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                        sql.Identifier(name), sql.SQL(", ").join(ident)
                    )
                )
                return
            if row[0]:
                raise SyncError(
                    f"publication {name} is FOR ALL TABLES: it would publish tables the "
                    "monolith cannot then update or delete. Drop it "
                    f"(DROP PUBLICATION {name}); strangler creates one for the safe tables"
                )
            have = {
                f"{s}.{t}"
                for s, t in conn.execute(
                    "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                    (name,),
                ).fetchall()
            }
            missing = [i for t, i in zip(tables, ident, strict=True) if _qualified(t) not in have]
            if missing:
                conn.execute(
                    sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                        sql.Identifier(name), sql.SQL(", ").join(missing)
                    )
                )
    except psycopg.Error as exc:
        raise SyncError(f"publication {name}: {exc}".strip()) from exc


def libpq_url(url: str) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://``) -> libpq URL."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else url


def captured_by(sync: SyncConfig) -> dict[str, list[str]]:
    """PostgreSQL monolith URL -> the tables the config captures from it."""
    out: dict[str, list[str]] = {}
    for source in sync.sources:
        url = source.monolith_url()
        if not url or not url.split("://")[0].startswith("postgres"):
            continue
        tables = list(source.options.get("tables") or ()) if source.kind in SLOT_KINDS else []
        tables += [m.source for m in sync.tables if m.from_source in (None, source.name)]
        seen = out.setdefault(url, [])
        for table in tables:
            if _qualified(table) not in {_qualified(t) for t in seen}:
                seen.append(table)
    return out


def config_problems(sync: SyncConfig) -> tuple[list[Problem], list[str]]:
    """``strangler check``: a problem per captured table that is unsafe, and a warning
    per monolith that could not be reached (its tables are then not checked)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    declared = {m.source: m.source_key for m in sync.tables if m.source_key}
    for url, tables in captured_by(sync).items():
        try:
            checked = inspect_tables(url, tables, declared)
        except SyncError as exc:
            warnings.append(f"sync: keys not checked ({exc})")
            continue
        for found in checked:
            if found.problem is not None:
                problems.append(Problem(f"sync.tables[{found.table}]", found.problem))
    return problems, warnings


def _qualified(table: str) -> str:
    schema, name = split_table(table)
    return f"{schema}.{name}"
