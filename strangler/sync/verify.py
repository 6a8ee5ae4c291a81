"""``verify``: compare the monolith's rows, mapped through the adapters, with the targets.

With ``reverse``, the other way: the service's rows mapped back (``reverse:``) compared
with the monolith's tables, for contexts the service owns.

Every source row is read from the monolith database and mapped by the same adapter
the worker uses (as a snapshot event), giving the rows each target *should* hold.
Both sides are put in key order and compared by checksums over key ranges; a range
whose checksums differ is bisected down to single rows, so a large agreeing table
costs one hash per range. Only the columns the adapter writes are compared, after
normalising representation (``Decimal("10.50")`` equals SQLite's ``10.5``).

Rows still in flight are not drift: when anything differs, verify waits the lag
window and compares again, and reports only what differed both times. ``repair``
rewrites those rows through the sink's normal write path, keeping each row's stored
position so the next real change still applies. Both sides are read into memory
one table at a time; this module never writes except through ``Sink.repair``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import MetaData, Table, select
from sqlalchemy.exc import SQLAlchemyError

from strangler.errors import ChangeEventError, SyncError
from strangler.sync.adapters import AdapterSet, map_event
from strangler.sync.codec import key_from_text, key_text
from strangler.sync.config import ColumnMap, SourceConfig, SyncConfig, TableMapping
from strangler.sync.db import db_error, open_engine
from strangler.sync.model import ChangeEvent, Position, RowDelete, RowUpsert, RowWrite
from strangler.sync.sink import Sink

DriftKind = Literal["missing", "extra", "different"]


@dataclass(frozen=True)
class Drift:
    target: str
    table: str
    key: Mapping[str, Any]
    kind: DriftKind
    source_table: str
    expected: Mapping[str, Any] | None = None
    actual: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        line = f"{self.kind:9} {self.target}.{self.table} {key_text(self.key)}"
        if self.kind == "different" and self.expected is not None and self.actual is not None:
            cols = [
                c for c in self.expected if _norm(self.expected[c]) != _norm(self.actual.get(c))
            ]
            diffs = ", ".join(
                f"{c}: {_show(self.actual.get(c))} != {_show(self.expected[c])}" for c in cols
            )
            line += f"  ({diffs})"
        return line


@dataclass
class Report:
    compared: int = 0
    drift: list[Drift] = field(default_factory=list)
    unmappable: list[str] = field(default_factory=list)
    repaired: int = 0

    def count(self, kind: DriftKind) -> int:
        return sum(1 for d in self.drift if d.kind == kind)


_Expected = dict[str, tuple[dict[str, Any], dict[str, Any], str]]
"""row key text -> (key, values, source table)."""


class Verifier:
    """``reverse=True`` verifies the way back: the service's tables, mapped through the
    adapters in reverse, against the monolith's (for contexts the service owns)."""

    def __init__(
        self, config: SyncConfig, base_dir: Path | None = None, *, reverse: bool = False
    ) -> None:
        self.config = config
        self.base_dir = base_dir
        self.adapters = AdapterSet(config, base_dir)
        self.reverse = reverse
        self.tables = self.adapters.way_back() if reverse else config.tables
        """The mappings compared: source table -> target (the way back when reverse)."""

    def run(self, *, repair: bool = False, lag_window: float | None = None) -> Report:
        window = self.config.verify.lag_window if lag_window is None else lag_window
        first = self._compare()
        report = first
        if first.drift and window > 0:
            time.sleep(window)
            second = self._compare()
            seen = {(d.target, d.table, key_text(d.key), d.kind) for d in first.drift}
            second.drift = [
                d for d in second.drift if (d.target, d.table, key_text(d.key), d.kind) in seen
            ]
            report = second
        if repair and report.drift:
            report.repaired = self._repair(report.drift)
        return report

    # -------------------------------------------------------------- compare

    def _compare(self) -> Report:
        report = Report()
        expected: dict[tuple[str, str], _Expected] = {}
        key_columns: dict[tuple[str, str], tuple[str, ...]] = {}
        owners: dict[tuple[str, str], str] = {}
        for mapping in self.tables:
            source = self._source_for(mapping)
            events, event_table = self._source_events(source, mapping)
            for cmap in () if self.reverse else _column_maps(mapping):
                expected.setdefault((mapping.target, cmap.table), {})
                key_columns[(mapping.target, cmap.table)] = cmap.key
                owners[(mapping.target, cmap.table)] = event_table
            route = self.adapters.route(source.name, event_table)
            if route is None:
                continue
            adapter = route[1]
            for event in events:
                try:
                    writes = map_event(adapter, event)
                except ChangeEventError as exc:
                    report.unmappable.append(f"{event.table} {key_text(event.key)}: {exc}")
                    continue
                for write in writes:
                    if isinstance(write, RowUpsert):
                        where = (mapping.target, write.table)
                        slot = expected.setdefault(where, {})
                        # Several source rows may each write part of one row (the way
                        # back of customers + addresses is one CUSTOMER row).
                        before = slot.get(key_text(write.key))
                        slot[key_text(write.key)] = (
                            dict(write.key),
                            {**(before[1] if before else {}), **write.values},
                            event.table,
                        )
                        key_columns.setdefault(where, tuple(write.key))
                        owners.setdefault(where, event.table)
        for (target, table), rows in expected.items():
            where = (target, table)
            actual = self._target_rows(target, table, key_columns.get(where, ()))
            report.compared += len(set(rows) | set(actual))
            owner = owners.get(where, "")
            report.drift += _diff(target, table, owner, rows, actual, self.config.verify.chunk)
        return report

    def _source_for(self, mapping: TableMapping) -> SourceConfig:
        candidates = [
            s
            for s in self.config.sources
            if mapping.from_source in (None, s.name) and s.monolith_url()
        ]
        if not candidates:
            raise SyncError(f"verify: no source with a monolith database for {mapping.source!r}")
        return candidates[0]

    def _source_events(
        self, source: SourceConfig, mapping: TableMapping
    ) -> tuple[list[ChangeEvent], str]:
        url = source.monolith_url()
        assert url is not None
        if url.startswith("sqlite:///") and self.base_dir and not url.startswith("sqlite:////"):
            url = f"sqlite:///{self.base_dir / url.removeprefix('sqlite:///')}"
        schema, _, name = mapping.source.rpartition(".")
        event_table = (
            mapping.source
            if schema
            else (f"main.{name}" if source.kind == "sqlite" else f"public.{name}")
        )
        engine = open_engine(url)
        try:
            with engine.connect() as conn:
                table = Table(name, MetaData(), autoload_with=conn, schema=schema or None)
                keys = [c.name for c in table.primary_key.columns]
                rows = [dict(r._mapping) for r in conn.execute(select(table))]
        except SQLAlchemyError as exc:
            raise db_error(f"verify: reading {mapping.source} from the monolith", exc) from exc
        finally:
            engine.dispose()
        now = int(time.time() * 1000)
        events = [
            ChangeEvent(
                source.name,
                event_table,
                "r",
                {k: row[k] for k in keys},
                None,
                row,
                Position(0, 0),
                now,
                snapshot=True,
            )
            for row in rows
        ]
        return events, event_table

    def _target_rows(
        self, target: str, name: str, key_cols: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        if not key_cols:
            return {}
        engine = open_engine(self.config.targets[target])
        try:
            with engine.connect() as conn:
                schema, _, bare = name.rpartition(".")
                table = Table(bare, MetaData(), autoload_with=conn, schema=schema or None)
                rows = [dict(r._mapping) for r in conn.execute(select(table))]
        except SQLAlchemyError as exc:
            raise db_error(f"verify: reading {target}.{name}", exc) from exc
        finally:
            engine.dispose()
        return {key_text({k: row[k] for k in key_cols}): row for row in rows}

    # --------------------------------------------------------------- repair

    def _repair(self, drift: Sequence[Drift]) -> int:
        fixed = 0
        by_target: dict[tuple[str, str], list[RowWrite]] = {}
        for d in drift:
            write: RowWrite
            if d.kind == "extra":
                write = RowDelete(d.table, d.key)
            else:
                write = RowUpsert(d.table, d.key, dict(d.expected or {}))
            by_target.setdefault((d.target, d.source_table), []).append(write)
        for (target, source_table), writes in by_target.items():
            sink = Sink(target, self.config.targets[target], self.adapters, self.config.retries)
            try:
                sink.setup()
                fixed += sink.repair(source_table, writes)
            finally:
                sink.close()
        return fixed


def _column_maps(mapping: TableMapping) -> tuple[ColumnMap, ...]:
    if isinstance(mapping.adapter, ColumnMap):
        return (mapping.adapter,)
    return mapping.adapter if isinstance(mapping.adapter, tuple) else ()


def _diff(
    target: str,
    table: str,
    owner: str,
    expected: _Expected,
    actual: Mapping[str, Mapping[str, Any]],
    chunk: int,
) -> list[Drift]:
    keys = sorted(set(expected) | set(actual))
    columns = sorted({c for _, values, _ in expected.values() for c in values})
    found: list[Drift] = []

    def digest(part: Sequence[str], side: str) -> str:
        h = hashlib.sha256()
        for k in part:
            h.update(k.encode())
            h.update(_row_text(expected, actual, k, columns, side).encode())
        return h.hexdigest()

    def check(part: Sequence[str]) -> None:
        if digest(part, "expected") == digest(part, "actual"):
            return
        if len(part) <= 4:
            for k in part:
                drift = _row_drift(target, table, owner, expected, actual, k)
                if drift is not None:
                    found.append(drift)
            return
        middle = len(part) // 2
        check(part[:middle])
        check(part[middle:])

    for start in range(0, len(keys), chunk):
        check(keys[start : start + chunk])
    return found


def _row_text(
    expected: _Expected,
    actual: Mapping[str, Mapping[str, Any]],
    k: str,
    columns: list[str],
    side: str,
) -> str:
    if side == "expected":
        if k not in expected:
            return "<none>"
        key, values, _ = expected[k]
        row: Mapping[str, Any] = {**values, **key}
        wanted = list(values)
    else:
        if k not in actual:
            return "<none>"
        row = actual[k]
        wanted = list(expected[k][1]) if k in expected else columns
    return "|".join(f"{c}={_norm(row.get(c))}" for c in sorted(wanted))


def _row_drift(
    target: str,
    table: str,
    owner: str,
    expected: _Expected,
    actual: Mapping[str, Mapping[str, Any]],
    k: str,
) -> Drift | None:
    if k not in actual:
        key, values, source_table = expected[k]
        return Drift(target, table, key, "missing", source_table, values, None)
    if k not in expected:
        row = actual[k]
        return Drift(target, table, key_from_text(k), "extra", owner, None, dict(row))
    key, values, source_table = expected[k]
    row = actual[k]
    if all(_norm(values[c]) == _norm(row.get(c)) for c in values):
        return None
    return Drift(target, table, key, "different", source_table, values, dict(row))


def _show(value: Any) -> str:
    text = _norm(value)
    if text is None:
        return "null"
    return repr(text) if isinstance(value, str) else text


def _norm(value: Any) -> str | None:
    """One text per value regardless of driver representation."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        try:
            return str(Decimal(str(value)).normalize())
        except InvalidOperation:
            return str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # Same instant whatever the session time zone; a column without a time zone
        # (SQLite, PostgreSQL ``timestamp``) holds the UTC wall time, so drop the zone.
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)
