"""Adapters run backwards: a service row change -> writes to the monolith's tables.

Once a context is owned by its service, the service's database is the source of
truth and the monolith keeps a copy. A declarative ``ColumnMap`` inverts itself:
renames swap, value maps flip (they must be one-to-one), casts undo (``cents``
writes ``"250050"`` back, ``yyyymmdd`` writes ``"20190304"``, ``blank_null`` writes
``""``). Some casts lose what the legacy value was (``bool``: ``Y``, ``1`` or ``true``?
``strip``: which whitespace?); a table mapped with one cannot be reversed, and
``map_problem`` says so, naming the column (``strangler check`` reports it through
``adapters.reverse_problem``, naming the table). A Python
adapter implements ``reverse(event)`` itself and names the service tables it reads
in ``reverse_tables`` (or ``sync.tables[].reverse.tables``).

Pure, like every adapter: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from strangler.errors import ChangeEventError
from strangler.sync.model import ChangeEvent, RowDelete, RowUpsert, RowWrite
from strangler.sync_config import ColumnMap


def _cents_back(value: Any) -> str:
    amount = Decimal(str(value))
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"{value!r} has fractions of a cent")
    return str(int(cents))


def _date_back(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return dt.date.fromisoformat(str(value)[:10]).isoformat()


def _yyyymmdd_back(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, dt.date):
        value = dt.date.fromisoformat(str(value)[:10])
    return str(value.strftime("%Y%m%d"))


def _keep(value: Any) -> Any:
    return value


REVERSE_CASTS: Mapping[str, Callable[[Any], Any]] = {
    "str": _keep,
    "int": _keep,
    "float": _keep,
    "decimal": lambda v: str(Decimal(str(v))),
    "cents": _cents_back,
    "date": _date_back,
    "yyyymmdd": _yyyymmdd_back,
    "blank_null": lambda v: "" if v is None else v,
}
"""cast -> how to write the service's value back in the legacy form."""

LOSSY_CASTS: Mapping[str, str] = {
    "bool": "cannot tell which legacy spelling (Y, 1, true, ...) to write back",
    "strip": "the whitespace it removed is lost",
}
"""Casts with no way back, and why."""

NULL_BACK = frozenset({"yyyymmdd", "blank_null"})
"""Casts whose inverse also turns None into the legacy blank."""


def map_problem(cmap: ColumnMap) -> str | None:
    """Why a declarative map cannot be run backwards, or None if it can."""
    for column, cast in cmap.cast.items():
        if cast in LOSSY_CASTS:
            return f"cast {column}: {cast} {LOSSY_CASTS[cast]}"
    for column, table in cmap.values.items():
        seen: dict[str, Any] = {}
        for old, new in table.items():
            if str(new) in seen:
                return (
                    f"values {column}: {seen[str(new)]!r} and {old!r} both become {new!r},"
                    " so the way back is ambiguous"
                )
            seen[str(new)] = old
    targets = [cmap.rename.get(c, c) for c in cmap.rename]
    doubled = sorted({t for t in targets if targets.count(t) > 1})
    if doubled:
        return f"rename: several legacy columns become {doubled[0]!r}"
    return None


class InvertedMap:
    """One ``ColumnMap`` backwards: a change to its service table -> the legacy row."""

    def __init__(self, cmap: ColumnMap, legacy_table: str) -> None:
        problem = map_problem(cmap)
        if problem is not None:
            raise ValueError(problem)
        self.cmap = cmap
        self.legacy_table = legacy_table
        self.back = {new: old for old, new in cmap.rename.items()}
        self.values = {
            column: {str(new): old for old, new in table.items()}
            for column, table in cmap.values.items()
        }

    def row(self, image: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for column, value in image.items():
            legacy = self.back.get(column, column)
            if self.cmap.include is not None and legacy not in self.cmap.include:
                continue
            if legacy in self.cmap.exclude:
                continue
            try:
                if column in self.values:
                    value = _untranslate(self.values[column], value)
                cast = self.cmap.cast.get(column)
                if cast is not None and (value is not None or cast in NULL_BACK):
                    value = REVERSE_CASTS[cast](value)
            except (ValueError, TypeError, InvalidOperation) as exc:
                raise ChangeEventError(
                    f"{self.cmap.table}.{column} -> {self.legacy_table}.{legacy}: {exc}"
                ) from exc
            out[legacy] = value
        return out

    def map(self, event: ChangeEvent) -> list[RowWrite]:
        if event.op == "t":
            raise ChangeEventError(f"{event.table}: a truncate is not synced back; resync")
        if event.op == "d":
            legacy = self.row({**(event.before or {}), **event.key})
            return [RowDelete(self.legacy_table, self._key(legacy))]
        legacy = self.row(event.after or {})
        key = self._key(legacy)
        return [
            RowUpsert(self.legacy_table, key, {c: v for c, v in legacy.items() if c not in key})
        ]

    def _key(self, legacy: Mapping[str, Any]) -> dict[str, Any]:
        names = [self.back.get(c, c) for c in self.cmap.key]
        missing = [n for n in names if n not in legacy]
        if missing:
            raise ChangeEventError(f"{self.legacy_table}: key column(s) {missing} not in the row")
        return {n: legacy[n] for n in names}


def _untranslate(table: Mapping[str, Any], value: Any) -> Any:
    if value is None:
        return None
    try:
        return table[str(value)]
    except KeyError:
        raise ValueError(f"{value!r} is not one of {sorted(table)}") from None


class DeclarativeReverse:
    """``RowAdapter`` for the way back of a declarative mapping (one or more maps)."""

    def __init__(self, maps: Sequence[ColumnMap], legacy_table: str) -> None:
        self.maps = {m.table: InvertedMap(m, legacy_table) for m in maps}

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]:
        bare = event.table.rpartition(".")[2]
        inverted = self.maps.get(bare)
        if inverted is None:
            raise ChangeEventError(f"{event.table} is not one of {sorted(self.maps)}")
        return inverted.map(event)


class CodeReverse:
    """``RowAdapter`` over a Python adapter's ``reverse(event)``."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]:
        writes: Sequence[RowWrite] = self.adapter.reverse(event)
        return writes
