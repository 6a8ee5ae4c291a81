"""``verify --reverse``: the way back — the service's rows, mapped through the adapters in
reverse (``reverse:``), compared with the monolith's tables, for contexts the service owns.

Unlike the forward ``Verifier`` (``verify.py``, streaming in key order), the way back
gathers the expected rows of a legacy table in memory before comparing: several service
tables may each write part of one legacy row (``customers`` + ``addresses`` are one
``CUSTOMER`` row), so a legacy row is only known once every part is read. Only the
columns the reverse mappings write are compared; a legacy row no service row maps to is
``extra``. Drift and the report are the forward verifier's; repair goes through the
sink like the worker's writes (the origin marking keeps it from being captured back).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, select
from sqlalchemy.exc import SQLAlchemyError

from strangler.errors import ChangeEventError, SyncError
from strangler.sync.adapters import AdapterSet, map_event
from strangler.sync.codec import key_from_text, key_text
from strangler.sync.compare import same
from strangler.sync.db import db_error, open_engine
from strangler.sync.drift import Drift, Report, repair_drift
from strangler.sync.model import ChangeEvent, Position, RowUpsert
from strangler.sync.verify import source_with_database
from strangler.sync_config import SourceConfig, SyncConfig, TableMapping

_Expected = dict[str, tuple[dict[str, Any], dict[str, Any], str]]
"""row key text -> (key, merged values of every part, the service table of the first)."""


class WayBackVerifier:
    """Compares the monolith's tables with the service's rows mapped back."""

    def __init__(self, config: SyncConfig, base_dir: Path | None = None) -> None:
        self.config = config
        self.base_dir = base_dir
        self.adapters = AdapterSet(config, base_dir)
        self.tables = self.adapters.way_back()
        """The way back: service table -> monolith target, per ``reverse:``."""

    def run(self, *, repair: bool = False, lag_window: float | None = None) -> Report:
        """Compare; if anything differs, wait the lag window and keep only what differs
        both times (rows in flight are not drift); repair that if asked."""
        window = self.config.verify.lag_window if lag_window is None else lag_window
        report = self._compare()
        if report.drift and window > 0:
            time.sleep(window)
            seen = {(d.target, d.table, key_text(d.key), d.kind) for d in report.drift}
            second = self._compare()
            second.drift = [
                d for d in second.drift if (d.target, d.table, key_text(d.key), d.kind) in seen
            ]
            report = second
        if repair and report.drift:
            report.repaired = repair_drift(self.config, self.adapters, report.drift)
        return report

    def _compare(self) -> Report:
        report = Report()
        expected: dict[tuple[str, str], _Expected] = {}
        key_columns: dict[tuple[str, str], tuple[str, ...]] = {}
        for mapping in self.tables:
            source = self._source_for(mapping)
            events, event_table = self._source_events(source, mapping)
            route = self.adapters.route(source.name, event_table)
            if route is None:
                continue
            for event in events:
                try:
                    writes = map_event(route[1], event)
                except ChangeEventError as exc:
                    report.unmappable.append(f"{event.table} {key_text(event.key)}: {exc}")
                    continue
                for write in writes:
                    if not isinstance(write, RowUpsert):
                        continue
                    where = (mapping.target, write.table)
                    slot = expected.setdefault(where, {})
                    before = slot.get(key_text(write.key))
                    slot[key_text(write.key)] = (
                        dict(write.key),
                        {**(before[1] if before else {}), **write.values},
                        before[2] if before else event.table,
                    )
                    key_columns.setdefault(where, tuple(write.key))
        for (target, table), rows in expected.items():
            actual = self._target_rows(target, table, key_columns[(target, table)])
            report.compared += len(set(rows) | set(actual))
            owner = next(iter(rows.values()))[2] if rows else ""
            for k in sorted(set(rows) | set(actual)):
                drift = _row_drift(target, table, owner, rows, actual, k)
                if drift is not None:
                    report.drift.append(drift)
        return report

    def _source_for(self, mapping: TableMapping) -> SourceConfig:
        source = source_with_database(self.config, mapping)
        if source is None:
            raise SyncError(
                f"verify --reverse: no source names the database of {mapping.source!r} "
                "(set monolith: on the reverse source)"
            )
        return source

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
            raise db_error(f"verify --reverse: reading {mapping.source}", exc) from exc
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
        engine = open_engine(self.config.targets[target])
        try:
            with engine.connect() as conn:
                schema, _, bare = name.rpartition(".")
                table = Table(bare, MetaData(), autoload_with=conn, schema=schema or None)
                rows = [dict(r._mapping) for r in conn.execute(select(table))]
        except SQLAlchemyError as exc:
            raise db_error(f"verify --reverse: reading {target}.{name}", exc) from exc
        finally:
            engine.dispose()
        return {key_text({k: row[k] for k in key_cols}): row for row in rows}


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
        return Drift(target, table, key_from_text(k), "extra", owner, None, dict(actual[k]))
    key, values, source_table = expected[k]
    if same(values, actual[k]):
        return None
    return Drift(target, table, key, "different", source_table, values, dict(actual[k]))
