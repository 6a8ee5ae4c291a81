"""Poison records: source records that cannot be parsed into a ``ChangeEvent``.

A record ``parse_envelope`` raises on (not JSON, not UTF-8, no ``op``/``source``, a
value that does not decode) has no key or position we could order it by, so it cannot
be parked or stale-checked like an event. Instead a source hands it on as a
``Poison`` — the raw record text, where it came from, why it failed — in the batch it
was read with; the sink writes it to ``strangler_raw_dead_letters`` in the same
transaction as the batch's offsets, so it is neither lost nor recorded twice, and the
rest of the batch flows on. ``strangler sync --retry-dead`` re-parses it later.

Nothing here does I/O; a source must never drop a record it cannot parse, only
turn it into a ``Poison`` with ``parse_or_poison``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strangler.sync.envelope import Headers, TypeRegistry, parse_envelope
from strangler.sync.model import ChangeEvent

Raw = bytes | str | Mapping[str, Any] | None


@dataclass(frozen=True)
class Poison:
    """One unparseable record, as stored in the raw dead-letter table."""

    location: str
    """Where it sits in its source: ``topic/partition@offset``, ``changes#id`` ..."""
    value: str | None
    """The record's value as text (base64 when ``encoding`` says so)."""
    key: str | None
    error: str
    encoding: str = "utf-8"
    """``utf-8``: value/key are the record's own text; ``base64``: they were not UTF-8."""
    table: str = "unknown"
    """Source table as far as the record tells (for metrics), else ``unknown``."""
    op: str = "unknown"

    def raw(self) -> tuple[bytes | str | None, bytes | str | None]:
        """(value, key) as the source read them, for re-parsing."""
        if self.encoding == "base64":
            return _unb64(self.value), _unb64(self.key)
        return self.value, self.key


def parse_or_poison(
    value: Raw,
    key: Raw,
    *,
    source: str,
    location: str,
    types: TypeRegistry | None = None,
    headers: Headers | None = None,
) -> ChangeEvent | Poison | None:
    """``parse_envelope``, but a record it fails on comes back as a ``Poison``."""
    try:
        return parse_envelope(value, key, source=source, types=types, headers=headers)
    except Exception as exc:  # untrusted input: whatever it raises, the record is poison
        return make_poison(value, key, f"{type(exc).__name__}: {exc}", location)


def make_poison(value: Raw, key: Raw, error: str, location: str) -> Poison:
    try:
        text_value, text_key, encoding = _text(value), _text(key), "utf-8"
    except UnicodeDecodeError:
        text_value, text_key, encoding = _b64(value), _b64(key), "base64"
    table, op = _describe(text_value if encoding == "utf-8" else None)
    return Poison(location, text_value, text_key, error[:4000], encoding, table, op)


def _text(raw: Raw) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        return json.dumps(raw, default=str)
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw).decode("utf-8")
    return str(raw)


def _b64(raw: Raw) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping | str):
        raw = (json.dumps(raw, default=str) if isinstance(raw, Mapping) else raw).encode()
    return base64.b64encode(bytes(raw)).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _describe(value: str | None) -> tuple[str, str]:
    """Best-effort (table, op) of a broken envelope; ``unknown`` where it does not say."""
    try:
        document = json.loads(value) if value else None
    except ValueError:
        return "unknown", "unknown"
    if isinstance(document, Mapping) and isinstance(document.get("payload"), Mapping):
        document = document["payload"]
    if not isinstance(document, Mapping):
        return "unknown", "unknown"
    op = document.get("op")
    src = document.get("source")
    table = "unknown"
    if isinstance(src, Mapping) and src.get("table"):
        table = f"{src['schema']}.{src['table']}" if src.get("schema") else str(src["table"])
    return table[:300], op if isinstance(op, str) and len(op) == 1 else "unknown"
