"""``verify``: compare the source's rows, mapped through the adapters, with the targets.

Streams both sides in key order and walks them together (``compare.merge``), so memory
stays bounded whatever the table size: the source table is read through a server-side
cursor ordered by the source columns the target key is made of, each row is mapped by
the same adapter the worker uses (as a snapshot event), and the target table is read
ordered by its key. That order is the same on both sides when the mapping keeps key
values as they are (a declarative mapping whose key columns are renamed, not cast or
translated); for any other adapter the expected rows of one table are sorted in memory
(the documented limit), the target side still streams.

Rows are counted, not only keys: two source rows mapping to one target row are
``duplicate`` drift. Rows still in flight are not drift: when anything differs, verify
waits the lag window and re-reads only the rows that differed (point lookups on both
sides; or the table again when more than ``RECHECK_ROWS`` differ), and reports only
what differed both times. ``repair`` rewrites those rows
through the sink's normal write path, keeping each row's stored position.

The direction is a parameter: ``Verifier(config, plans=...)`` compares any source
database with any target through any adapter (``TablePlan``); the default plans are
the ``sync:`` section's (monolith -> services). Never writes except through
``Sink.repair``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import SQLAlchemyError

from strangler.errors import ChangeEventError, SyncError
from strangler.sync import checksum, tableread
from strangler.sync.adapters import AdapterSet, DeclarativeAdapter, map_event
from strangler.sync.codec import key_text
from strangler.sync.compare import Counts, Expected, Found, differing, merge
from strangler.sync.compare import sort_tuple as _sort_tuple
from strangler.sync.db import db_error, open_engine
from strangler.sync.drift import Drift, Report, repair_drift
from strangler.sync.model import ChangeEvent, Position, RowAdapter, RowUpsert
from strangler.sync_config import ColumnMap, SourceConfig, SyncConfig, TableMapping

__all__ = ["Drift", "Report", "TablePlan", "Verifier", "repair_drift"]

_Range = tuple[Iterator[Expected], tableread.Where]
"""Expected rows of one key range, in key order, and the target range they match."""
RECHECK_ROWS = 1000
"""Differing rows of one table re-read one by one; more, and the table is compared again."""


@dataclass(frozen=True)
class TablePlan:
    """One source table compared with the target rows its adapter writes."""

    source: str
    """The source name events carry (``sync.sources[].name``)."""
    source_url: str
    source_table: str
    """The table in the source database (``schema.table`` or bare)."""
    event_table: str
    """The table as change events name it (what the adapters are routed by)."""
    target: str
    target_url: str
    adapter: RowAdapter
    source_key: tuple[str, ...] = ()
    """Declared unique key when the source table has no primary key."""


class Verifier:
    def __init__(
        self,
        config: SyncConfig,
        base_dir: Path | None = None,
        plans: Sequence[TablePlan] | None = None,
    ) -> None:
        self.config = config
        self.base_dir = base_dir
        self.adapters = AdapterSet(config, base_dir)
        self.plans = list(plans) if plans is not None else self._forward_plans()

    def run(self, *, repair: bool = False, lag_window: float | None = None) -> Report:
        window = self.config.verify.lag_window if lag_window is None else lag_window
        report = Report()
        found: list[tuple[TablePlan, Found, str]] = []
        for plan in self.plans:
            found += self._compare(plan, report)
        if found and window > 0:
            time.sleep(window)
            found = self._recheck(found)
        report.drift = [_drift(plan, item, table) for plan, item, table in found]
        if repair and report.drift:
            report.repaired = repair_drift(self.config, self.adapters, report.drift)
        return report

    # -------------------------------------------------------------- plans

    def _forward_plans(self) -> list[TablePlan]:
        plans = []
        for mapping in self.config.tables:
            source = self._source_for(mapping)
            url = self._url(source)
            schema, _, name = mapping.source.rpartition(".")
            event_table = (
                mapping.source
                if schema
                else (f"main.{name}" if source.kind == "sqlite" else f"public.{name}")
            )
            route = self.adapters.route(source.name, event_table)
            if route is None:
                continue
            plans.append(
                TablePlan(source.name, url, mapping.source, event_table, mapping.target,
                          self.config.targets[mapping.target], route[1], mapping.source_key)
            )  # fmt: skip
        return plans

    def _source_for(self, mapping: TableMapping) -> SourceConfig:
        source = source_with_database(self.config, mapping)
        if source is None:
            raise SyncError(f"verify: no source with a monolith database for {mapping.source!r}")
        return source

    def _url(self, source: SourceConfig) -> str:
        url = source.monolith_url()
        assert url is not None
        if url.startswith("sqlite:///") and self.base_dir and not url.startswith("sqlite:////"):
            url = f"sqlite:///{self.base_dir / url.removeprefix('sqlite:///')}"
        return url

    # ------------------------------------------------------------ compare

    def _compare(self, plan: TablePlan, report: Report) -> list[tuple[TablePlan, Found, str]]:
        out: list[tuple[TablePlan, Found, str]] = []
        source_engine, target_engine = open_engine(plan.source_url), open_engine(plan.target_url)
        try:
            with source_engine.connect() as src, target_engine.connect() as dst:
                source = tableread.reflect(src, plan.source_table, "the source")
                for table, key_cols, ranges in self._work(plan, src, dst, source, report):
                    target = tableread.reflect(dst, table, f"target {plan.target}")
                    counts = report.rows.setdefault(f"{plan.target}.{table}", Counts())
                    extra = 0
                    for expected, where in ranges:
                        actual = tableread.stream(dst, target, key_cols, where)
                        for item in merge(expected, actual, counts, key_cols):
                            out.append((plan, item, table))
                            extra += item.kind == "extra"
                    report.compared += counts.source_rows + extra
        except SQLAlchemyError as exc:
            raise db_error(f"verify: {plan.source_table} -> {plan.target}", exc) from exc
        finally:
            source_engine.dispose()
            target_engine.dispose()
        return out

    def _work(
        self, plan: TablePlan, src: Connection, dst: Connection, source: Table, report: Report
    ) -> Iterator[
        tuple[str, tuple[str, ...], Iterator[tuple[Iterator[Expected], tableread.Where]]]
    ]:
        """Per target table: its key columns and, per key range still to compare row by
        row, the expected rows in key order with the target range they are matched to."""
        keys = tableread.source_key(source, plan.source_key)
        if isinstance(plan.adapter, DeclarativeAdapter):
            for cmap in plan.adapter.maps:
                yield cmap.table, cmap.key, self._ranges(plan, src, dst, source, cmap, report)
            return
        # A Python adapter: which tables it writes, and in what order, is only known by
        # mapping every row; its expected rows are held in memory (one source table).
        held: dict[str, list[Expected]] = {}
        key_columns: dict[str, tuple[str, ...]] = {}
        for write, event in _upserts(plan, tableread.stream_rows(src, source, keys), keys, report):
            cols = key_columns.setdefault(write.table, tuple(write.key))
            held.setdefault(write.table, []).append(_expected(plan, write, event, cols))
        for table, found in held.items():
            found.sort(key=lambda e: _sort_tuple(e.sort_key))
            yield table, key_columns[table], iter([(iter(found), None)])

    def _ranges(
        self,
        plan: TablePlan,
        src: Connection,
        dst: Connection,
        source: Table,
        cmap: ColumnMap,
        report: Report,
    ) -> Iterator[_Range]:
        keys = tableread.source_key(source, plan.source_key)
        order = tableread.order(cmap, source)
        if order is None:  # the key is transformed: its order is not the source's
            rows = tableread.stream_rows(src, source, keys)
            mapped = self._map(plan, rows, keys, cmap.table, cmap.key, report)
            yield iter(sorted(mapped, key=lambda e: _sort_tuple(e.sort_key))), None
            return
        target = tableread.reflect(dst, cmap.table, f"target {plan.target}")
        pairs = checksum.pushable(cmap, source, target, src.dialect.name, dst.dialect.name)
        if pairs is None:
            rows = tableread.stream_rows(src, source, order)
            yield self._map(plan, rows, keys, cmap.table, cmap.key, report), None
            return
        # Both sides hash their own key ranges; only differing ranges come row by row.
        cuts = checksum.boundaries(src, source, pairs[0][0])
        left = checksum.range_hashes(src, source, [s for s, _ in pairs], cuts)
        right = checksum.range_hashes(dst, target, [t for _, t in pairs], cuts)
        counts = report.rows.setdefault(f"{plan.target}.{cmap.table}", Counts())
        for number, (rows_left, _) in left.items():
            if right.get(number) == left[number]:
                counts.source_rows += rows_left
                counts.target_rows += rows_left
        for low, high in checksum.differing_ranges(left, right, cuts):
            rows = tableread.stream_rows(src, source, order, (pairs[0][0], low, high))
            mapped = self._map(plan, rows, keys, cmap.table, cmap.key, report)
            yield mapped, (pairs[0][1], low, high)

    def _map(
        self,
        plan: TablePlan,
        rows: Iterator[dict[str, Any]],
        keys: Sequence[str],
        table: str,
        key_cols: tuple[str, ...],
        report: Report,
    ) -> Iterator[Expected]:
        for write, event in _upserts(plan, rows, keys, report):
            if write.table == table:
                yield _expected(plan, write, event, key_cols)

    # ------------------------------------------------------------ re-check

    def _recheck(
        self, found: list[tuple[TablePlan, Found, str]]
    ) -> list[tuple[TablePlan, Found, str]]:
        """Keep what still differs alike: the differing rows read again one by one, or,
        when a table has many (a snapshot still arriving), that table compared again."""
        groups: dict[tuple[int, str], list[tuple[TablePlan, Found, str]]] = {}
        for entry in found:
            groups.setdefault((id(entry[0]), entry[2]), []).append(entry)
        again: dict[int, set[tuple[str, str, str]]] = {}
        out: list[tuple[TablePlan, Found, str]] = []
        for entries in groups.values():
            plan, _, table = entries[0]
            if len(entries) > RECHECK_ROWS:
                if id(plan) not in again:
                    again[id(plan)] = {
                        (t, f.kind, key_text(f.key)) for _, f, t in self._compare(plan, Report())
                    }
                seen = again[id(plan)]
                out += [e for e in entries if (table, e[1].kind, key_text(e[1].key)) in seen]
            else:
                out += self._still(plan, table, entries)
        return out

    def _still(
        self, plan: TablePlan, table: str, entries: list[tuple[TablePlan, Found, str]]
    ) -> list[tuple[TablePlan, Found, str]]:
        """Re-read each differing row of one table on both sides (point lookups)."""
        source_engine, target_engine = open_engine(plan.source_url), open_engine(plan.target_url)
        try:
            with source_engine.connect() as src, target_engine.connect() as dst:
                source = tableread.reflect(src, plan.source_table, "the source")
                target = tableread.reflect(dst, table, f"target {plan.target}")
                keys = tableread.source_key(source, plan.source_key)
                return [
                    e for e in entries if self._differs(plan, src, dst, source, target, keys, e)
                ]
        except SQLAlchemyError as exc:
            raise db_error(f"verify: re-reading {table}", exc) from exc
        finally:
            source_engine.dispose()
            target_engine.dispose()

    def _differs(
        self,
        plan: TablePlan,
        src: Connection,
        dst: Connection,
        source: Table,
        target: Table,
        keys: Sequence[str],
        entry: tuple[TablePlan, Found, str],
    ) -> bool:
        _, item, table = entry
        where = (
            dict(item.expected.source_key)
            if item.expected is not None
            else _source_where(plan, source, table, item.key)
        )
        if where is None:
            return True  # not invertible: keep what the full pass found
        rows = [dict(r._mapping) for r in src.execute(tableread.lookup(source, where))]
        expected = [
            e
            for e in self._map(plan, iter(rows), keys, table, tuple(item.key), Report())
            if dict(e.key) == dict(item.key)
        ]
        actual = [dict(r._mapping) for r in dst.execute(tableread.lookup(target, item.key))]
        if item.kind == "duplicate":
            return len(expected) > 1
        if item.kind == "missing":
            return bool(expected) and not actual
        if item.kind == "extra":
            return bool(actual) and not expected
        return bool(expected and actual) and bool(differing(expected[0].values, actual[0]))


def _drift(plan: TablePlan, item: Found, table: str) -> Drift:
    expected = item.expected
    return Drift(
        plan.target,
        table,
        item.key,
        item.kind,
        plan.event_table,
        dict(expected.values) if expected else None,
        dict(item.actual) if item.actual is not None else None,
    )


def _source_where(
    plan: TablePlan, source: Table, table: str, key: Mapping[str, Any]
) -> dict[str, Any] | None:
    if not isinstance(plan.adapter, DeclarativeAdapter):
        return None
    for cmap in plan.adapter.maps:
        order = tableread.order(cmap, source) if cmap.table == table else None
        if order is not None:
            return {s: key[t] for s, t in zip(order, cmap.key, strict=True)}
    return None


def _event(plan: TablePlan, row: dict[str, Any], keys: Sequence[str]) -> ChangeEvent:
    return ChangeEvent(
        plan.source,
        plan.event_table,
        "r",
        {k: row[k] for k in keys},
        None,
        row,
        Position(0, 0),
        int(time.time() * 1000),
        snapshot=True,
    )


def _upserts(
    plan: TablePlan, rows: Iterable[dict[str, Any]], keys: Sequence[str], report: Report
) -> Iterator[tuple[RowUpsert, ChangeEvent]]:
    """Every row the adapter writes for ``rows`` (as an insert would), with its event;
    rows it cannot map are reported as unmappable."""
    for row in rows:
        event = _event(plan, row, keys)
        try:
            writes = map_event(plan.adapter, event)
        except ChangeEventError as exc:
            report.unmappable.append(f"{event.table} {key_text(event.key)}: {exc}")
            continue
        for write in writes:
            if isinstance(write, RowUpsert):
                yield write, event


def _expected(
    plan: TablePlan, write: RowUpsert, event: ChangeEvent, key_cols: tuple[str, ...]
) -> Expected:
    return Expected(
        tuple(write.key.get(c) for c in key_cols),
        dict(write.key),
        dict(write.values),
        plan.event_table,
        dict(event.key),
    )


def source_with_database(config: SyncConfig, mapping: TableMapping) -> SourceConfig | None:
    """The first source that may feed ``mapping`` and names the database it captures
    (verify reads the rows there); None if no source does."""
    return next(
        (s for s in config.sources if mapping.from_source in (None, s.name) and s.monolith_url()),
        None,
    )
