"""PostgreSQL's logical replication messages (``pgoutput``, protocol 1) -> ``ChangeEvent``s.

The ``pgoutput`` source hands every ``XLogData`` payload here with the LSN it starts
at. ``Relation`` messages describe a table's columns (sent before its first change
in a session and again after its schema changed); ``Begin``/``Commit`` frame each
transaction, and the changes between them become events:

- ``position`` is ``(commit LSN of the transaction, the change's own LSN)``: the
  stream comes in commit order, so it orders every change; ``ts_ms`` is the commit
  time (the monolith's clock), ``tx_id`` the transaction id.
- ``key`` is the table's key as the capture plan checked it (primary key or declared
  ``source_key``), else the replica identity's columns.
- an update that changed the key carries the old key (the ``K`` tuple) as ``old_key``;
  ``before`` is set only under ``REPLICA IDENTITY FULL`` (as Debezium does); a
  delete's ``before`` holds what the replica identity sends (the key, the other
  columns null, or every column under ``FULL``).
- unchanged TOAST values (``u``) are left out of ``after`` and named in
  ``unavailable``, as the Debezium path does.
- ``TRUNCATE`` becomes one ``op=t`` event per table.

Values are parsed from PostgreSQL's text output by psycopg's own loaders, as the bulk
initial load reads them (integers, ``Decimal``, dates and times, ``bytes``, arrays as
lists), except that ``json``/``jsonb`` and ``uuid`` stay text, as Debezium sends them.

A message it cannot decode raises ``ChangeEventError``; the source dead-letters it.
Pure decoding: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from struct import Struct
from typing import Any, Final

from psycopg import adapters as _global_adapters
from psycopg import pq
from psycopg.adapt import AdaptersMap, Transformer
from psycopg.types.string import TextLoader

from strangler.errors import ChangeEventError
from strangler.sync.model import ChangeEvent, Op, Position

_PG_EPOCH_MS: Final = 946_684_800_000
"""2000-01-01 in milliseconds since 1970: PostgreSQL's timestamps count from it."""

_BEGIN: Final = Struct(">QqI")
_COMMIT: Final = Struct(">BQQq")
_REL_HEAD: Final = Struct(">I")
_COLUMN: Final = Struct(">Ii")
_INT16: Final = Struct(">h")
_INT32: Final = Struct(">i")

_AS_TEXT: Final = ("json", "jsonb", "uuid")


def _adapters() -> AdaptersMap:
    adapters = AdaptersMap(_global_adapters)
    for name in _AS_TEXT:
        adapters.register_loader(name, TextLoader)
    return adapters


ADAPTERS: Final = _adapters()


class Undecodable(ChangeEventError):
    """A change whose message or values could not be decoded; ``document`` shows it as a
    Debezium-like envelope of the column texts (for the dead letter)."""

    def __init__(self, message: str, document: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.document = document


class _BadValue(Exception):
    def __init__(self, relation: Relation, raw: list[bytes | None], cause: Exception) -> None:
        super().__init__(str(cause))
        self.relation = relation
        self.raw = raw
        self.cause = cause


_OP_OF: Final = {73: "c", 85: "u", 68: "d"}


class Relation:
    """One table as its latest ``Relation`` message described it."""

    def __init__(
        self,
        table: str,
        names: list[str],
        oids: list[int],
        key: tuple[str, ...],
    ) -> None:
        self.table = table
        self.names = names
        self.oids = oids
        self.key = key
        self.loader = Transformer(ADAPTERS)
        self.loader.set_loader_types(oids, pq.Format.TEXT)


class Decoder:
    """Decodes one replication session's messages; ``events`` collects the changes.

    ``keys``: ``schema.table`` -> key columns (the capture plan's). ``after``: events at
    or before this position are dropped (already applied: the stored offsets)."""

    def __init__(
        self,
        source: str,
        keys: Mapping[str, tuple[str, ...]],
        after: Position | None = None,
    ) -> None:
        self.source = source
        self.keys = keys
        self.after = after
        self.relations: dict[int, Relation] = {}
        self.events: list[ChangeEvent] = []
        """Changes decoded and not yet taken by the caller."""
        self.in_transaction = False
        self.commit_lsn = 0
        """The open (or last) transaction's commit LSN (``Begin``'s final LSN)."""
        self.committed = 0
        """End LSN of the last transaction whose ``Commit`` was decoded."""
        self._ts_ms = 0
        self._xid: int | None = None

    def decode(self, lsn: int, data: bytes, start: int = 0) -> None:
        """One pgoutput message at ``data[start:]``, sent at WAL position ``lsn``."""
        try:
            kind = data[start]
            pos = start + 1
            if kind == 73:  # I
                self._insert(lsn, data, pos)
            elif kind == 85:  # U
                self._update(lsn, data, pos)
            elif kind == 68:  # D
                self._delete(lsn, data, pos)
            elif kind == 66:  # B
                final, ts_us, xid = _BEGIN.unpack_from(data, pos)
                self.in_transaction = True
                self.commit_lsn = final
                self._ts_ms = ts_us // 1000 + _PG_EPOCH_MS
                self._xid = xid
            elif kind == 67:  # C
                _flags, _commit, end, _ts = _COMMIT.unpack_from(data, pos)
                self.in_transaction = False
                self.committed = end
            elif kind == 82:  # R
                self._relation(data, pos)
            elif kind == 84:  # T
                self._truncate(lsn, data, pos)
            # Y (type), O (origin), M (message): nothing to apply.
        except Undecodable:
            raise
        except _BadValue as bad:  # a value psycopg cannot parse (e.g. a date 'infinity')
            table = bad.relation.table
            schema, _, name = table.partition(".")
            texts = {
                c: None if v is None else v.decode(errors="replace")
                for c, v in zip(bad.relation.names, bad.raw, strict=False)
            }
            document = {"op": _OP_OF.get(data[start], "unknown"),
                        "source": {"schema": schema, "table": name, "lsn": lsn},
                        "columns": texts}  # fmt: skip
            raise Undecodable(
                f"{table}: {type(bad.cause).__name__}: {bad.cause}", document
            ) from bad.cause
        except Exception as exc:  # a malformed message: name it, never guess
            raise Undecodable(
                f"undecodable pgoutput message {chr(data[start])!r} at {lsn}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    # ------------------------------------------------------------ messages

    def _relation(self, data: bytes, pos: int) -> None:
        (relid,) = _REL_HEAD.unpack_from(data, pos)
        namespace, pos = _string(data, pos + 4)
        name, pos = _string(data, pos)
        pos += 1  # replica identity setting
        (count,) = _INT16.unpack_from(data, pos)
        pos += 2
        names: list[str] = []
        oids: list[int] = []
        identity: list[str] = []
        for _ in range(count):
            flags = data[pos]
            column, pos = _string(data, pos + 1)
            oid, _typmod = _COLUMN.unpack_from(data, pos)
            pos += 8
            names.append(column)
            oids.append(oid)
            if flags & 1:
                identity.append(column)
        table = f"{namespace or 'public'}.{name}"
        key = tuple(self.keys.get(table) or identity)
        self.relations[relid] = Relation(table, names, oids, key)

    def _insert(self, lsn: int, data: bytes, pos: int) -> None:
        relation = self._relation_at(data, pos)
        row, unavailable, _ = _tuple(relation, data, pos + 5)
        self._emit(relation, "c", lsn, None, row, unavailable)

    def _update(self, lsn: int, data: bytes, pos: int) -> None:
        relation = self._relation_at(data, pos)
        pos += 4
        before: dict[str, Any] | None = None
        old: dict[str, Any] | None = None
        tag = data[pos]
        if tag == 75:  # K: the old key (sent when the key changed)
            old, _, pos = _tuple(relation, data, pos + 1)
        elif tag == 79:  # O: the old row (REPLICA IDENTITY FULL)
            before, _, pos = _tuple(relation, data, pos + 1)
            old = before
        after, unavailable, _ = _tuple(relation, data, pos + 1)  # N
        self._emit(relation, "u", lsn, before, after, unavailable, old)

    def _delete(self, lsn: int, data: bytes, pos: int) -> None:
        relation = self._relation_at(data, pos)
        before, _, _ = _tuple(relation, data, pos + 5)  # after K or O
        self._emit(relation, "d", lsn, before, None, frozenset())

    def _truncate(self, lsn: int, data: bytes, pos: int) -> None:
        (count,) = _INT32.unpack_from(data, pos)
        pos += 5  # the count and the options byte
        for i in range(count):
            relation = self._relation_at(data, pos + 4 * i)
            self._emit(relation, "t", lsn, None, None, frozenset())

    # ------------------------------------------------------------- helpers

    def _relation_at(self, data: bytes, pos: int) -> Relation:
        (relid,) = _REL_HEAD.unpack_from(data, pos)
        relation = self.relations.get(relid)
        if relation is None:
            raise ChangeEventError(f"change for relation {relid} before its Relation message")
        return relation

    def _emit(
        self,
        relation: Relation,
        op: Op,
        lsn: int,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        unavailable: frozenset[str],
        old: dict[str, Any] | None = None,
    ) -> None:
        position = Position(self.commit_lsn, lsn)
        after_point = self.after
        if after_point is not None and position <= after_point:
            return  # applied before the restart (the stored offsets say so)
        key: dict[str, Any] = {}
        old_key: dict[str, Any] | None = None
        row = after if after is not None else before
        if row is not None:
            key = {c: row.get(c) for c in relation.key}
        if old is not None:
            was = {c: old.get(c) for c in relation.key}
            if was != key:
                old_key = was
        self.events.append(
            ChangeEvent(
                self.source,
                relation.table,
                op,
                key,
                before,
                after,
                position,
                self._ts_ms,
                self._xid,
                False,
                old_key,
                unavailable,
            )
        )


_NOTHING: frozenset[str] = frozenset()


def _tuple(relation: Relation, data: bytes, pos: int) -> tuple[dict[str, Any], frozenset[str], int]:
    """A ``TupleData`` at ``pos``: (row, unchanged-TOAST columns, position after it)."""
    (count,) = _INT16.unpack_from(data, pos)
    pos += 2
    names = relation.names
    if count != len(names):
        raise ChangeEventError(
            f"{relation.table}: a row of {count} columns, the relation has {len(names)}"
        )
    raw: list[bytes | None] = []
    skipped: list[int] = []
    for i in range(count):
        kind = data[pos]
        pos += 1
        if kind == 116:  # t: text value
            (size,) = _INT32.unpack_from(data, pos)
            pos += 4
            raw.append(data[pos : pos + size])
            pos += size
        elif kind == 110:  # n: null
            raw.append(None)
        elif kind == 117:  # u: unchanged TOAST value, not sent
            raw.append(None)
            skipped.append(i)
        else:
            raise ChangeEventError(f"{relation.table}: unknown column kind {chr(kind)!r}")
    try:
        values: Sequence[Any] = relation.loader.load_sequence(raw)
    except Exception as exc:
        raise _BadValue(relation, raw, exc) from exc
    row = dict(zip(names, values, strict=True))
    if not skipped:
        return row, _NOTHING, pos
    for i in skipped:
        del row[names[i]]
    return row, frozenset(names[i] for i in skipped), pos


def _string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)
    return data[pos:end].decode(), end + 1
