"""Change events <-> JSON text for storage (dead letters, parked events) and row keys.

Decoded values (Decimal, dates, times, bytes) are written as tagged objects
(``{"$decimal": "12.30"}``) so an event read back is equal to the one stored —
``--retry-dead`` re-applies exactly what failed. ``key_text`` is the canonical text
of a row key, used to index positions, dead letters and parked events; it must stay
stable across versions or graveyards stop matching. No I/O here.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from strangler.errors import ChangeEventError
from strangler.sync.model import ChangeEvent, Position


def encode_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    return value


_TAGS: dict[str, Callable[[Any], Any]] = {
    "$decimal": Decimal,
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$bytes": base64.b64decode,
}


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            tag, inner = next(iter(value.items()))
            if tag in _TAGS:
                return _TAGS[tag](inner)
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


_NAMES: dict[str, str] = {}
"""Key column name -> its JSON text with the opening brace and the colon: ``{"id":``."""


def key_text(key: Mapping[str, Any]) -> str:
    """Canonical, order-independent text of a key: ``{"id":1}``."""
    if len(key) == 1:
        # The common case (one int or text column), on every write: same text as below.
        ((name, value),) = key.items()
        head = _NAMES.get(name)
        if head is None:
            if len(_NAMES) > 4096:
                _NAMES.clear()
            head = _NAMES[name] = "{" + json.dumps(name) + ":"
        if type(value) is int:
            return head + str(value) + "}"
        if type(value) is str:
            return head + json.dumps(value) + "}"
    return json.dumps(encode_value(dict(key)), sort_keys=True, separators=(",", ":"))


def key_from_text(text: str) -> dict[str, Any]:
    value = decode_value(json.loads(text))
    if not isinstance(value, dict):
        raise ChangeEventError(f"stored key {text!r} is not an object")
    return value


def event_to_json(event: ChangeEvent) -> str:
    return json.dumps(
        {
            "source": event.source,
            "table": event.table,
            "op": event.op,
            "key": encode_value(event.key),
            "before": encode_value(event.before),
            "after": encode_value(event.after),
            "position": [event.position.commit, event.position.seq],
            "ts_ms": event.ts_ms,
            "tx_id": event.tx_id,
            "snapshot": event.snapshot,
            "old_key": encode_value(event.old_key),
            "unavailable": sorted(event.unavailable),
        },
        separators=(",", ":"),
    )


def event_from_json(text: str) -> ChangeEvent:
    try:
        data = json.loads(text)
        return ChangeEvent(
            source=data["source"],
            table=data["table"],
            op=data["op"],
            key=decode_value(data["key"]),
            before=decode_value(data["before"]),
            after=decode_value(data["after"]),
            position=Position(*data["position"]),
            ts_ms=data["ts_ms"],
            tx_id=data.get("tx_id"),
            snapshot=bool(data.get("snapshot")),
            old_key=decode_value(data.get("old_key")),
            unavailable=frozenset(data.get("unavailable") or ()),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ChangeEventError(f"stored event cannot be read back: {exc}") from exc
