"""The pgoutput decoder on messages built byte by byte as PostgreSQL's protocol 1 lays
them out (the end-to-end tests in ``tests/cdc/test_pgoutput_source.py`` read a real
server's)."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

import pytest

from strangler.sync.model import Position
from strangler.sync.sources.pgoutput_decode import Decoder, Undecodable

COMMIT_LSN = 0x1_0000_0100
END_LSN = 0x1_0000_0180
TS_US = 1_000_000  # one second after 2000-01-01


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def relation(relid: int, table: str, columns: list[tuple[str, int, bool]]) -> bytes:
    body = b"R" + struct.pack(">I", relid) + _s("public") + _s(table) + b"d"
    body += struct.pack(">h", len(columns))
    for name, oid, key in columns:
        body += bytes([1 if key else 0]) + _s(name) + struct.pack(">Ii", oid, -1)
    return body


def row(*values: bytes | str | None) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "u":
            out += b"u"
        else:
            assert isinstance(value, bytes)
            out += b"t" + struct.pack(">i", len(value)) + value
    return out


BEGIN = b"B" + struct.pack(">QqI", COMMIT_LSN, TS_US, 777)
COMMIT = b"C" + struct.pack(">BQQq", 0, COMMIT_LSN, END_LSN, TS_US)
ACCOUNTS = relation(
    16384, "accounts", [("id", 23, True), ("amount", 1700, False), ("booked", 1082, False),
                        ("doc", 3802, False)]
)  # fmt: skip


def decoded(*messages: tuple[int, bytes], after: Position | None = None) -> Decoder:
    decoder = Decoder("mono", {}, after)
    for lsn, message in messages:
        decoder.decode(lsn, message)
    return decoder


def test_a_transaction_becomes_events_with_commit_ordered_positions() -> None:
    insert = b"I" + struct.pack(">I", 16384) + b"N" + row(b"1", b"12.50", b"2024-02-29", b'{"a":1}')
    update = b"U" + struct.pack(">I", 16384) + b"N" + row(b"1", b"13.00", None, None)
    delete = b"D" + struct.pack(">I", 16384) + b"K" + row(b"1", None, None, None)
    d = decoded((10, ACCOUNTS), (10, BEGIN), (20, insert), (30, update), (40, delete), (50, COMMIT))
    c, u, x = d.events
    assert (c.op, u.op, x.op) == ("c", "u", "d")
    assert c.table == "public.accounts" and c.key == {"id": 1}
    assert c.after == {"id": 1, "amount": Decimal("12.50"), "booked": dt.date(2024, 2, 29),
                       "doc": '{"a":1}'}  # fmt: skip
    assert [e.position for e in d.events] == [Position(COMMIT_LSN, n) for n in (20, 30, 40)]
    assert c.ts_ms == 946_684_801_000 and c.tx_id == 777
    assert u.before is None and u.old_key is None
    assert x.before == {"id": 1, "amount": None, "booked": None, "doc": None} and x.after is None
    assert d.committed == END_LSN and not d.in_transaction


def test_a_changed_key_and_an_unchanged_toast_value() -> None:
    moved = (b"U" + struct.pack(">I", 16384) + b"K" + row(b"1", None, None, None)
             + b"N" + row(b"2", b"1", None, "u"))  # fmt: skip
    d = decoded((10, ACCOUNTS), (10, BEGIN), (20, moved), (50, COMMIT))
    (event,) = d.events
    assert event.key == {"id": 2} and event.old_key == {"id": 1}
    assert "doc" not in (event.after or {}) and event.unavailable == frozenset({"doc"})


def test_truncate_names_each_table() -> None:
    truncate = b"T" + struct.pack(">iB", 1, 0) + struct.pack(">I", 16384)
    d = decoded((10, ACCOUNTS), (10, BEGIN), (20, truncate), (50, COMMIT))
    assert [(e.op, e.table) for e in d.events] == [("t", "public.accounts")]


def test_changes_at_or_before_the_stored_offsets_are_dropped() -> None:
    first = b"I" + struct.pack(">I", 16384) + b"N" + row(b"1", None, None, None)
    second = b"I" + struct.pack(">I", 16384) + b"N" + row(b"2", None, None, None)
    d = decoded((10, ACCOUNTS), (10, BEGIN), (20, first), (30, second), (50, COMMIT),
                after=Position(COMMIT_LSN, 20))  # fmt: skip
    assert [e.key for e in d.events] == [{"id": 2}]


def test_a_declared_key_wins_over_the_replica_identity() -> None:
    d = Decoder("mono", {"public.accounts": ("amount",)})
    d.decode(10, ACCOUNTS)
    d.decode(10, BEGIN)
    d.decode(20, b"I" + struct.pack(">I", 16384) + b"N" + row(b"1", b"5", None, None))
    assert d.events[0].key == {"amount": Decimal("5")}


def test_a_value_python_cannot_hold_is_undecodable_with_the_row_shown() -> None:
    bad = b"I" + struct.pack(">I", 16384) + b"N" + row(b"1", b"1", b"infinity", None)
    d = decoded((10, ACCOUNTS), (10, BEGIN))
    with pytest.raises(Undecodable) as caught:
        d.decode(20, bad)
    assert "public.accounts" in str(caught.value) and "infinity" in str(caught.value)
    assert caught.value.document is not None
    assert caught.value.document["op"] == "c"
    assert caught.value.document["columns"]["booked"] == "infinity"
    assert d.events == []


def test_a_change_before_its_relation_or_a_cut_message_is_undecodable() -> None:
    d = decoded((10, BEGIN))
    with pytest.raises(Undecodable, match="before its Relation"):
        d.decode(20, b"I" + struct.pack(">I", 99) + b"N" + row(b"1"))
    d.decode(10, ACCOUNTS)
    with pytest.raises(Undecodable):
        d.decode(30, (b"I" + struct.pack(">I", 16384) + b"N" + row(b"1", None, None, None))[:-3])
