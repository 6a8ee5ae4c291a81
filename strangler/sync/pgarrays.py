"""Whole-array binary parameters for the sink's ``unnest`` upserts (PostgreSQL, psycopg).

``upsert.py`` sends a batch's rows as one array per column. psycopg dumps a list
parameter element by element in Python (about 0.25 µs each); a pgbench change writes
ten elements (its row's four columns, its position's six), so that loop alone was
~2.5 µs of the worker's CPU per change. For the common columns, lists of ``int`` and
of ``str`` without nulls, :func:`array` builds PostgreSQL's binary array format in one
piece with ``struct`` and ``bytes.join`` (C loops) and hands psycopg the finished bytes
through a dumper that returns them as they are.

Anything else (a null among the values, floats, decimals, dates, bytes, an int beyond
64 bits) gives None: psycopg's own dumper then sends the list, as before. The SQL casts
every array to its column's type, so ``int4[]``, ``int8[]`` and ``text[]`` here are only
the wire types (a bool among ints goes as 0 or 1, cast like the rest).

The format (``array_send``): dimensions, has-nulls flag, element type oid, then per
dimension its size and lower bound; then each element as its length and its bytes.
"""

from __future__ import annotations

from itertools import chain
from struct import Struct, error
from typing import Any, Final

from psycopg import adapters, pq
from psycopg.adapt import Dumper

_HEAD: Final = Struct(">iiIii")
_LENGTH: Final = Struct(">i")
_INT4_OID, _INT8_OID, _TEXT_OID = 23, 20, 25


class BinaryArray:
    """A finished binary array; the subclass says its type."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Int4Array(BinaryArray):
    __slots__ = ()


class Int8Array(BinaryArray):
    __slots__ = ()


class TextArray(BinaryArray):
    __slots__ = ()


class _Prebuilt(Dumper):
    format = pq.Format.BINARY

    def dump(self, obj: Any) -> bytes:
        data: bytes = obj.data
        return data


class _Int4Dumper(_Prebuilt):
    oid = 1007  # int4[]


class _Int8Dumper(_Prebuilt):
    oid = 1016  # int8[]


class _TextDumper(_Prebuilt):
    oid = 1009  # text[]


# These types are strangler's own: registering them globally changes nothing else.
adapters.register_dumper(Int4Array, _Int4Dumper)
adapters.register_dumper(Int8Array, _Int8Dumper)
adapters.register_dumper(TextArray, _TextDumper)


def array(values: list[Any]) -> BinaryArray | None:
    """``values`` as one binary array, or None where psycopg's dumper must do it."""
    n = len(values)
    if not n:
        return None
    first = type(values[0])
    if first is int:
        # struct checks every element: a null, a float, an int out of range raises.
        flat = [4] * (2 * n)
        flat[1::2] = values
        try:
            return Int4Array(Struct(f">{5 + 2 * n}i").pack(1, 0, _INT4_OID, n, 1, *flat))
        except error:
            pass
        flat[::2] = [8] * n
        try:
            return Int8Array(Struct(">5i" + "iq" * n).pack(1, 0, _INT8_OID, n, 1, *flat))
        except error:
            return None
    if first is str:
        try:
            encoded = list(map(str.encode, values))  # TypeError at a null or a non-str
        except TypeError:
            return None
        sizes = map(_LENGTH.pack, map(len, encoded))
        body = b"".join(chain.from_iterable(zip(sizes, encoded, strict=True)))
        return TextArray(_HEAD.pack(1, 0, _TEXT_OID, n, 1) + body)
    return None
