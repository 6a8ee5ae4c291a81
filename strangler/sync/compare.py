"""Streaming comparison of expected rows (mapped from the source) with a target table.

Both sides arrive in the same key order; ``merge`` walks them together, one row of each
in hand at a time, so memory stays bounded whatever the table size. Rows are compared
on the columns the adapter writes, after normalising representation (``_norm``:
``Decimal("10.50")`` equals SQLite's ``10.5``; aware timestamps compare as UTC
instants). Counting is by rows, not keys: two source rows mapping to one target key
are a ``duplicate`` — one of them cannot be held by the target. Pure: the callers
own the cursors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

DriftKind = Literal["missing", "extra", "different", "duplicate"]


@dataclass(frozen=True)
class Expected:
    """One target row the source says should exist."""

    sort_key: tuple[Any, ...]
    key: Mapping[str, Any]
    values: Mapping[str, Any]
    source_table: str
    source_key: Mapping[str, Any]


@dataclass(frozen=True)
class Found:
    kind: DriftKind
    key: Mapping[str, Any]
    expected: Expected | None
    actual: Mapping[str, Any] | None


@dataclass
class Counts:
    source_rows: int = 0
    target_rows: int = 0


def merge(
    expected: Iterable[Expected],
    actual: Iterable[tuple[tuple[Any, ...], Mapping[str, Any]]],
    counts: Counts,
    key_columns: tuple[str, ...],
) -> Iterator[Found]:
    """Walk both key-ordered streams; yield every row that is not the same on both."""
    want = iter(expected)
    have = iter(actual)
    e = next(want, None)
    a = next(have, None)
    last: Expected | None = None
    while e is not None or a is not None:
        if e is not None and last is not None and e.sort_key == last.sort_key:
            counts.source_rows += 1
            yield Found("duplicate", e.key, e, None)
            e = next(want, None)
            continue
        if a is None or (e is not None and e.sort_key != a[0] and _before(e.sort_key, a[0])):
            assert e is not None
            counts.source_rows += 1
            yield Found("missing", e.key, e, None)
            last, e = e, next(want, None)
        elif e is None or (e.sort_key != a[0] and _before(a[0], e.sort_key)):
            counts.target_rows += 1
            yield Found("extra", {c: a[1].get(c) for c in key_columns}, None, a[1])
            a = next(have, None)
        else:
            counts.source_rows += 1
            counts.target_rows += 1
            if not same(e.values, a[1]):
                yield Found("different", e.key, e, a[1])
            last, e = e, next(want, None)
            a = next(have, None)


def _before(left: tuple[Any, ...], right: tuple[Any, ...]) -> bool:
    return sort_tuple(left) < sort_tuple(right)


def sort_tuple(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """Comparable key: NULLs last (as PostgreSQL orders them ascending), numbers as numbers."""
    return tuple((1, 0) if v is None else (0, _comparable(v)) for v in key)


def _comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float | Decimal):
        return Decimal(str(value))
    if isinstance(value, bytes | memoryview | bytearray):
        return bytes(value)
    return value


def same(values: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    return all(_norm(v) == _norm(row.get(c)) for c, v in values.items())


def differing(values: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    return [c for c, v in values.items() if _norm(v) != _norm(row.get(c))]


def show(value: Any) -> str:
    text = _norm(value)
    if text is None:
        return "null"
    return repr(text) if isinstance(value, str) else text


def _norm(value: Any) -> str | None:
    """One text per value regardless of driver representation."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        try:
            number = Decimal(str(value))
            if number == number.to_integral_value():
                return str(int(number))  # 100, 100.0 and Decimal("1E+2") alike
            return str(number.normalize())
        except (InvalidOperation, ValueError, OverflowError):
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


norm: Callable[[Any], str | None] = _norm
