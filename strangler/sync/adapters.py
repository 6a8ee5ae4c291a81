"""Row adapters: the declarative column map, and loading adapters named in the config.

A ``ColumnMap`` (``sync.tables[].adapter`` as a mapping) covers the common case of
one legacy row -> one target row: rename columns, cast values (cents strings to
Decimal, ``YYYYMMDD`` to date, blank to null, ...) and translate codes
(``A`` -> ``active``). Anything richer is a Python ``RowAdapter`` referenced by import
path. Adapters are pure: the sink and ``verify`` call the same ones and rely on the
same event always giving the same writes. Never does I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from strangler.config import resolve_import
from strangler.errors import ChangeEventError, ConfigError, Problem
from strangler.sync.model import ChangeEvent, RowAdapter, RowDelete, RowUpsert, RowWrite
from strangler.sync.reverse import CodeReverse, DeclarativeReverse, map_problem
from strangler.sync_config import ColumnMap, SyncConfig, TableMapping


def _cents(value: Any) -> Decimal:
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        raise ValueError(f"{value!r} is not a whole number of cents")
    return Decimal(int(text)).scaleb(-2)


def _yyyymmdd(value: Any) -> dt.date | None:
    text = str(value).strip()
    if text in ("", "0", "00000000"):
        return None
    return dt.datetime.strptime(text, "%Y%m%d").date()


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "y", "yes")
    return bool(value)


CASTS: Mapping[str, Callable[[Any], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _bool,
    "decimal": lambda v: Decimal(str(v)),
    "cents": _cents,
    "date": _date,
    "yyyymmdd": _yyyymmdd,
    "blank_null": lambda v: None if isinstance(v, str) and not v.strip() else v,
    "strip": lambda v: v.strip() if isinstance(v, str) else v,
}


_Column = tuple[str, Callable[[Any], Any] | None, Mapping[Any, Any] | None] | None
"""What a map does with one source column: (target name, cast, value table), or None
when the column is left out."""


class _Plan:
    """One ``ColumnMap`` made ready for the per-event path: each source column's fate is
    worked out once, on first sight, instead of reading five settings per column."""

    def __init__(self, cmap: ColumnMap) -> None:
        self.cmap = cmap
        self.table = cmap.table
        self.key = tuple(cmap.key)
        self._columns: dict[str, _Column] = {}

    def column(self, name: str) -> _Column:
        if name in self._columns:
            return self._columns[name]
        cmap = self.cmap
        found: _Column = None
        if (cmap.include is None or name in cmap.include) and name not in cmap.exclude:
            target = cmap.rename.get(name, name)
            cast = CASTS[cmap.cast[target]] if target in cmap.cast else None
            found = (target, cast, cmap.values.get(target))
        self._columns[name] = found
        return found


class DeclarativeAdapter:
    """``RowAdapter`` from one or more ``ColumnMap``s (each gives one target row)."""

    def __init__(self, maps: Sequence[ColumnMap]) -> None:
        self.maps = tuple(maps)
        self._plans = tuple(_Plan(cmap) for cmap in self.maps)

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]:
        if event.op == "t":
            return ()  # the sink's default: delete every target row from this table
        writes: list[RowWrite] = []
        for plan in self._plans:
            if event.op == "d":
                image = {**(event.before or {}), **event.key}
                writes.append(RowDelete(plan.table, _key(plan, _row(plan, image))))
            else:
                row = _row(plan, event.after or {})
                key = _key(plan, row)
                values = {c: v for c, v in row.items() if c not in key}
                writes.append(RowUpsert(plan.table, key, values))
        return writes


def _row(plan: _Plan, image: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, value in image.items():
        found = plan.column(column)
        if found is None:
            continue
        target, cast, values = found
        try:
            if value is not None and cast is not None:
                value = cast(value)
            if values is not None:
                value = _translate(values, value)
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise ChangeEventError(f"{column} -> {plan.table}.{target}: {exc}") from exc
        row[target] = value
    return row


def _key(plan: _Plan, row: Mapping[str, Any]) -> dict[str, Any]:
    missing = [c for c in plan.key if c not in row]
    if missing:
        raise ChangeEventError(f"{plan.table}: key column(s) {missing} not in the row")
    return {c: row[c] for c in plan.key}


def _translate(table: Mapping[Any, Any], value: Any) -> Any:
    for candidate in (value, str(value) if value is not None else None):
        if candidate in table:
            return table[candidate]
    raise ValueError(f"{value!r} is not one of {sorted(map(str, table))}")


class _FunctionAdapter:
    def __init__(self, function: Callable[[ChangeEvent], Sequence[RowWrite]]) -> None:
        self._function = function

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]:
        return self._function(event)


def load_adapter(mapping: TableMapping, base_dir: Path | None = None) -> RowAdapter:
    """The adapter a table mapping names; raises ConfigError if it is not one."""
    spec = mapping.adapter
    if isinstance(spec, ColumnMap):
        return DeclarativeAdapter([spec])
    if isinstance(spec, tuple):
        return DeclarativeAdapter(spec)
    found = resolve_import(spec, base_dir)
    if isinstance(found, type):
        try:
            found = found()
        except Exception as exc:
            raise ConfigError(
                [Problem("", f"{spec!r} cannot be built without arguments: {exc}")]
            ) from exc
    if isinstance(found, RowAdapter):
        return found
    if callable(found):
        return _FunctionAdapter(found)
    raise ConfigError([Problem("", f"{spec!r} is not a RowAdapter (needs .map(event))")])


def map_event(adapter: RowAdapter, event: ChangeEvent) -> list[RowWrite]:
    """Call an adapter; anything it raises or returns wrongly becomes ChangeEventError."""
    try:
        writes = adapter.map(event)
    except ChangeEventError:
        raise
    except Exception as exc:
        raise ChangeEventError(
            f"adapter {type(adapter).__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    if writes is None or isinstance(writes, RowUpsert | RowDelete):
        raise ChangeEventError(f"adapter {type(adapter).__name__} must return a list of writes")
    out = list(writes)
    for write in out:
        if not isinstance(write, RowUpsert | RowDelete):
            raise ChangeEventError(f"adapter returned {write!r}, not a RowUpsert/RowDelete")
        if not write.key:
            raise ChangeEventError(f"adapter wrote to {write.table} with an empty key")
    return out


def reverse_problem(mapping: TableMapping, adapter: RowAdapter) -> str | None:
    """Why ``mapping`` cannot be synced back to the monolith, or None if it can."""
    if isinstance(adapter, DeclarativeAdapter):
        for cmap in adapter.maps:
            problem = map_problem(cmap)
            if problem is not None:
                return f"table {mapping.source} cannot be reversed: {problem}"
        return None
    name = mapping.adapter if isinstance(mapping.adapter, str) else type(adapter).__name__
    if not callable(getattr(adapter, "reverse", None)):
        return (
            f"table {mapping.source} cannot be reversed: {name} has no reverse(event) method"
            " (a service row change -> writes to the legacy table)"
        )
    if not _reverse_tables(mapping, adapter):
        return (
            f"table {mapping.source} cannot be reversed: say which service tables feed it"
            f" back (reverse.tables, or reverse_tables on {name})"
        )
    return None


def _reverse_tables(mapping: TableMapping, adapter: RowAdapter) -> tuple[str, ...]:
    if mapping.reverse is not None and mapping.reverse.tables:
        return mapping.reverse.tables
    if isinstance(adapter, DeclarativeAdapter):
        return tuple(m.table for m in adapter.maps)
    return tuple(str(t) for t in getattr(adapter, "reverse_tables", ()))


def reverse_adapter(mapping: TableMapping, adapter: RowAdapter) -> RowAdapter:
    """The way back of a mapping: service row changes -> legacy writes."""
    problem = reverse_problem(mapping, adapter)
    if problem is not None:
        raise ConfigError([Problem("", problem)])
    if isinstance(adapter, DeclarativeAdapter):
        return DeclarativeReverse(adapter.maps, mapping.source)
    return CodeReverse(adapter)


class AdapterSet:
    """Every table mapping of a ``sync:`` config with its adapter loaded, and the way
    back (service -> monolith) of those with ``reverse:``."""

    def __init__(self, config: SyncConfig, base_dir: Path | None = None) -> None:
        self.config = config
        problems: list[Problem] = []
        self._adapters: dict[int, RowAdapter] = {}
        for i, mapping in enumerate(config.tables):
            try:
                self._adapters[i] = load_adapter(mapping, base_dir)
            except ConfigError as exc:
                problems += [Problem(f"sync.tables[{i}].adapter", p.message) for p in exc.problems]
        self._reverse: dict[tuple[str, str], tuple[TableMapping, RowAdapter]] = {}
        """(reverse source, bare service table) -> (the way-back mapping, its adapter)."""
        self.reverse_sources = config.reverse_sources()
        for i, mapping in enumerate(config.tables):
            if mapping.reverse is None or i not in self._adapters:
                continue
            try:
                back = reverse_adapter(mapping, self._adapters[i])
            except ConfigError as exc:
                problems += [Problem(f"sync.tables[{i}].reverse", p.message) for p in exc.problems]
                continue
            way_back = mapping.model_copy(
                update={
                    "target": mapping.reverse.target,
                    "from_source": mapping.reverse.source,
                    "reverse": None,
                }
            )
            for table in _reverse_tables(mapping, self._adapters[i]):
                self._reverse[(mapping.reverse.source, table.rpartition(".")[2])] = (
                    way_back,
                    back,
                )
        if problems:
            raise ConfigError(problems)
        self._routes: dict[tuple[str, str], tuple[TableMapping, RowAdapter] | None] = {}
        self.types: dict[str, Mapping[str, str]] = {
            m.source: m.types for m in config.tables if m.types
        }
        """The per-column type registry for parsing envelopes (``sync.tables[].types``)."""

    def way_back(self) -> tuple[TableMapping, ...]:
        """One mapping per service table that flows back: ``source`` the service table,
        ``target`` the monolith's, ``from_source`` the source capturing the service."""
        return tuple(
            mapping.model_copy(update={"source": table})
            for (_, table), (mapping, _) in self._reverse.items()
        )

    def route(self, source: str, table: str) -> tuple[TableMapping, RowAdapter] | None:
        """(mapping, adapter) for a source table, or None when it is not synced.

        For a source capturing a service's database the mapping is the way back:
        ``target`` is the monolith's database, ``source`` the legacy table."""
        if source in self.reverse_sources:
            return self._reverse.get((source, table.rpartition(".")[2]))
        slot = (source, table)
        if slot not in self._routes:
            mapping = self.config.mapping_for(source, table)
            found = None
            if mapping is not None:
                found = (mapping, self._adapters[self.config.tables.index(mapping)])
            self._routes[slot] = found
        return self._routes[slot]


def reverse_problems(
    config: SyncConfig, contexts: Mapping[str, Sequence[str]], base_dir: Path | None = None
) -> list[Problem]:
    """What stops data from flowing back, for ``strangler check``: every table a context
    owns must be mapped with ``reverse:`` and its adapter must run backwards (each
    problem names the table and why). ``contexts``: context name -> its tables (the
    ``sync.tables[].source`` entries)."""
    problems: list[Problem] = []
    for context, tables in contexts.items():
        key = f"contexts.{context}.tables"
        for table in tables:
            mapping = next((m for m in config.tables if m.source == table), None)
            if mapping is None:
                problems.append(Problem(key, f"table {table} is not mapped in sync.tables"))
            elif mapping.reverse is None:
                problems.append(
                    Problem(
                        key,
                        f"table {table} cannot be reversed: sync.tables[] entry for it has no"
                        " reverse: (which source captures the service's database, which"
                        " target is the monolith's)",
                    )
                )
    problems += _drain_problems(config, contexts)
    for i, mapping in enumerate(config.tables):
        if mapping.reverse is None:
            continue
        try:
            problem = reverse_problem(mapping, load_adapter(mapping, base_dir))
        except ConfigError:
            continue  # the adapter itself is reported by the import check
        if problem is not None:
            problems.append(Problem(f"sync.tables[{i}].reverse", problem))
    return problems


def _drain_problems(config: SyncConfig, contexts: Mapping[str, Sequence[str]]) -> list[Problem]:
    """A cutover's drain writes its watermark into the database each of a context's
    sources captures: a source whose database is not known (``kind: kafka`` reads topics;
    only ``monolith:`` says where they come from) cannot be drained."""
    problems: list[Problem] = []
    index = {source.name: i for i, source in enumerate(config.sources)}
    for context, tables in contexts.items():
        for table in tables:
            mapping = next((m for m in config.tables if m.source == table), None)
            if mapping is None:
                continue
            names = [mapping.from_source, mapping.reverse.source if mapping.reverse else None]
            for name in names:
                if name is None or name not in index:
                    continue
                source = config.sources[index[name]]
                if source.monolith_url() is not None:
                    continue
                side = "service's" if name != mapping.from_source else "monolith's"
                problems.append(
                    Problem(
                        f"sync.sources[{index[name]}].monolith",
                        f"missing for source {name!r} (kind: {source.kind}), which carries"
                        f" the {side} changes of table {table} (context {context}): a"
                        " cutover's drain writes its watermark into the database it captures",
                        hint="monolith: <SQLAlchemy URL of that database>",
                    )
                )
                index.pop(name)  # once per source
    return problems
