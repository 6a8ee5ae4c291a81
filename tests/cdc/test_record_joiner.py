"""Records out of Java a batch at a time (``_Joiner``), against the real JVM: the same
keys, values, tombstones and topics as reading them record by record, including a
record whose JSON holds a newline (the batch is then read record by record)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import pytest

from strangler.sync.sources.embedded_engine import RawRecord, _Joiner, _raw, ensure_jvm

jpype = pytest.importorskip("jpype")


_F = TypeVar("_F", bound=Callable[..., Any])


def _override(method: _F) -> _F:
    return cast(_F, jpype.JOverride(method))


CALLS: list[str] = []
"""Every key() and value() Java asked of a record."""


def _java_batch(records: list[tuple[str | None, str | None, str]]) -> Any:
    """A java.util.List of io.debezium.engine.ChangeEvent, as the engine hands over."""
    ensure_jvm()
    CALLS.clear()

    @jpype.JImplements("io.debezium.engine.ChangeEvent")
    class Event:
        def __init__(self, key: str | None, value: str | None, topic: str) -> None:
            self._key, self._value, self._topic = key, value, topic

        @_override
        def key(self) -> Any:
            CALLS.append("key")
            return None if self._key is None else jpype.JString(self._key)

        @_override
        def value(self) -> Any:
            CALLS.append("value")
            return None if self._value is None else jpype.JString(self._value)

        @_override
        def headers(self) -> Any:
            return jpype.JClass("java.util.ArrayList")()

        @_override
        def destination(self) -> Any:
            return jpype.JString(self._topic)

        @_override
        def partition(self) -> Any:
            return None

    batch = jpype.JClass("java.util.ArrayList")()
    for key, value, topic in records:
        batch.add(Event(key, value, topic))
    return batch


def _plain(records: list[RawRecord]) -> list[tuple[str | None, str | None, str]]:
    return [(r.key, r.value, r.destination) for r in records]


RECORDS = [
    ('{"id":1}', '{"op":"c","after":{"id":1,"name":"Ada é ✓"}}', "m.public.customers"),
    ('{"id":1}', '{"op":"d","before":{"id":1}}', "m.public.customers"),
    ('{"id":1}', None, "m.public.customers"),  # the tombstone after the delete
    (None, '{"op":"m"}', "m.public.orders"),
    ('{"id":2}', '{"op":"u","after":{"id":2,"note":"a\\nb"}}', "m.public.orders"),
]


def test_a_joined_batch_reads_as_record_by_record() -> None:
    batch = _java_batch(RECORDS)
    joined = _Joiner().convert(batch)
    # Joined in Java: each record asked once for its key and once for its value.
    assert sorted(CALLS) == ["key"] * len(RECORDS) + ["value"] * len(RECORDS)
    one_by_one = [_raw(batch, i, r) for i, r in enumerate(batch)]
    assert _plain(joined) == _plain(one_by_one) == RECORDS


def test_a_raw_newline_in_a_record_falls_back_to_record_by_record() -> None:
    records = [*RECORDS, ('{"id":3}', '{"op":"c",\n"after":{"id":3}}', "m.public.orders")]
    assert _plain(_Joiner().convert(_java_batch(records))) == records
    assert CALLS.count("value") == 2 * len(records)  # joined, then one by one


def test_an_empty_batch() -> None:
    assert _Joiner().convert(_java_batch([])) == []
