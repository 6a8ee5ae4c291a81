"""Debezium JSON-converter values -> Python values (Decimal, date, time, datetime, bytes).

Two ways to know a column's type: the Connect schema that travels with the value
(``value.converter.schemas.enable=true``; its ``name`` is the logical type), or, with
schemas off, a per-column *kind* from the ``types:`` registry in the config. Without
either, values pass through as JSON gave them.

The unchanged-TOAST placeholder (``__debezium_unavailable_value``, or its base64 for
bytea, or a one-element list of it for arrays) decodes to ``UNAVAILABLE`` so the
envelope can leave the column out. Nothing here does I/O or knows about tables.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from strangler.errors import ChangeEventError
from strangler.sync_config import COLUMN_KINDS

PLACEHOLDER: Final = "__debezium_unavailable_value"
_PLACEHOLDER_B64: Final = base64.b64encode(PLACEHOLDER.encode()).decode()
_EPOCH: Final = dt.date(1970, 1, 1)
_EPOCH_DT: Final = dt.datetime(1970, 1, 1)


class _Unavailable:
    """The value Debezium did not send (unchanged TOAST column)."""

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = _Unavailable()

KINDS: Final = COLUMN_KINDS
"""Column kinds for the ``types:`` registry (see ``sync_config.COLUMN_KINDS``)."""

_LOGICAL_KIND: Final = {
    "org.apache.kafka.connect.data.Date": "date",
    "io.debezium.time.Date": "date",
    "org.apache.kafka.connect.data.Time": "time_ms",
    "io.debezium.time.Time": "time_ms",
    "io.debezium.time.MicroTime": "time_us",
    "io.debezium.time.NanoTime": "time_ns",
    "org.apache.kafka.connect.data.Timestamp": "timestamp_ms",
    "io.debezium.time.Timestamp": "timestamp_ms",
    "io.debezium.time.MicroTimestamp": "timestamp_us",
    "io.debezium.time.NanoTimestamp": "timestamp_ns",
    "io.debezium.time.ZonedTimestamp": "timestamptz",
    "io.debezium.time.IsoTimestamp": "timestamptz",
    "io.debezium.time.ZonedTime": "timetz",
    "io.debezium.data.VariableScaleDecimal": "variable_decimal",
}


def kind_of(field_schema: Mapping[str, Any] | None) -> str | None:
    """The decoding kind a Connect field schema asks for, or None to pass through."""
    if not field_schema:
        return None
    name = field_schema.get("name")
    if name == "org.apache.kafka.connect.data.Decimal":
        scale = (field_schema.get("parameters") or {}).get("scale", "0")
        return f"decimal:{scale}"
    if isinstance(name, str) and name in _LOGICAL_KIND:
        return _LOGICAL_KIND[name]
    if field_schema.get("type") == "bytes" and name is None:
        return "bytes"
    return None


def is_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return value in (PLACEHOLDER, _PLACEHOLDER_B64)
    if isinstance(value, list) and len(value) == 1:
        return is_placeholder(value[0])
    return False


def decode(value: Any, kind: str | None, column: str = "?") -> Any:
    """Decode one column value; raises ChangeEventError naming the column if malformed."""
    if value is None:
        return None
    if is_placeholder(value):
        return UNAVAILABLE
    if kind is None:
        return value
    try:
        return _decode(value, kind)
    except (ValueError, TypeError, InvalidOperation, binascii.Error, OverflowError) as exc:
        raise ChangeEventError(f"column {column!r}: cannot decode {value!r} as {kind}") from exc


def _decode(value: Any, kind: str) -> Any:
    # The commonest kinds first: a column's kind was matched against a dozen names.
    if kind == "int":
        return value if type(value) is int else int(value)
    if kind == "string":
        return value if type(value) is str else str(value)
    if kind.startswith("decimal:"):
        return _unscaled(value, int(kind.partition(":")[2]))
    if kind == "decimal":
        return Decimal(str(value)) if not isinstance(value, dict) else _variable(value)
    if kind == "variable_decimal":
        return _variable(value)
    if kind == "date":
        return _EPOCH + dt.timedelta(days=int(value))
    if kind.startswith("time_"):
        micros = _to_micros(int(value), kind.removeprefix("time_"))
        # PostgreSQL's 24:00:00 is a legal time; Python's time is not -> clamp.
        micros = min(micros, 86_400_000_000 - 1)
        return (dt.datetime.min + dt.timedelta(microseconds=micros)).time()
    if kind.startswith("timestamp_"):
        micros = _to_micros(int(value), kind.removeprefix("timestamp_"))
        return _EPOCH_DT + dt.timedelta(microseconds=micros)
    if kind == "timestamptz":
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if kind == "timetz":
        return dt.time.fromisoformat(str(value).replace("Z", "+00:00"))
    if kind == "bytes":
        return base64.b64decode(str(value), validate=True)
    if kind == "float":
        return float(value)
    if kind == "bool":
        if isinstance(value, str):
            return value.lower() in ("true", "t", "1", "y", "yes")
        return bool(value)
    raise ValueError(f"unknown kind {kind!r}")


def _to_micros(value: int, unit: str) -> int:
    if unit == "ms":
        return value * 1000
    if unit == "us":
        return value
    if unit == "ns":
        return value // 1000  # Python keeps microseconds; sub-µs digits cannot be stored
    raise ValueError(f"unknown unit {unit!r}")


def _unscaled(value: Any, scale: int) -> Decimal:
    if isinstance(value, int | float) or (isinstance(value, str) and _looks_numeric(value)):
        # The same column read with decimal.handling.mode=string or double.
        return Decimal(str(value))
    raw = base64.b64decode(str(value), validate=True)
    return Decimal(int.from_bytes(raw, "big", signed=True)).scaleb(-scale)


def _variable(value: Any) -> Decimal:
    if not isinstance(value, Mapping):
        return Decimal(str(value))
    return _unscaled(value["value"], int(value["scale"]))


def _looks_numeric(text: str) -> bool:
    # A string-mode decimal ("-12.50") vs base64 of the unscaled integer: base64 has
    # neither "." nor "-", so only those mark a numeric string; "1234" stays base64.
    return bool(text) and ("." in text or "-" in text) and all(c in "0123456789.-+" for c in text)
