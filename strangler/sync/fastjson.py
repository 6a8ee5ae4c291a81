"""Fast JSON for change events: orjson where installed, and each Connect schema parsed once.

With ``schemas.enable=true`` the JSON converter puts the whole Connect schema in front
of every record (``{"schema": {...}, "payload": {...}}``), identical text for every
record of a table — most of the bytes. ``load_document`` cuts the text at the
top-level ``"payload"`` key, parses the schema once per distinct text (a small cache)
and only the payload per record. A cut in the wrong place cannot pass unnoticed:
both halves must parse as JSON objects, else the whole text is parsed the ordinary way.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

try:  # the ``fast`` extra
    import orjson

    _loads: Callable[[str | bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _loads = json.loads

FAST = _loads is not json.loads
"""True when orjson is in use."""

_CACHE_SIZE = 256
_schemas: OrderedDict[str | bytes, Mapping[str, Any]] = OrderedDict()

_HEAD_S, _CUT_S = '{"schema":', ',"payload":'
_HEAD_B, _CUT_B = b'{"schema":', b',"payload":'


def loads(text: str | bytes) -> Any:
    """``json.loads`` (orjson when installed); raises ValueError on bad JSON."""
    return _loads(text)


def load_document(text: str | bytes) -> Any:
    """Parse one record; a ``{"schema": ..., "payload": ...}`` document comes back as a
    dict whose ``schema`` is shared with every record of the same schema text."""
    cut = _cut(text)
    if cut is not None:
        head, body = cut
        schema = _schemas.get(head)
        if schema is not None:
            _schemas.move_to_end(head)
        else:
            try:
                parsed = _loads(head)
            except ValueError:
                parsed = None
            if isinstance(parsed, Mapping):
                schema = parsed
                _schemas[head] = schema
                if len(_schemas) > _CACHE_SIZE:
                    _schemas.popitem(last=False)
        if schema is not None:
            try:
                payload = _loads(body)
            except ValueError:
                payload = _MISSING
            if payload is not _MISSING:
                return {"schema": schema, "payload": payload}
    return _loads(text)


_MISSING = object()


def _cut(text: str | bytes) -> tuple[str | bytes, str | bytes] | None:
    if isinstance(text, str):
        if not text.startswith(_HEAD_S) or not text.endswith("}"):
            return None
        at = text.find(_CUT_S)
        if at < 0:
            return None
        return text[len(_HEAD_S) : at], text[at + len(_CUT_S) : -1]
    if not text.startswith(_HEAD_B) or not text.endswith(b"}"):
        return None
    at = text.find(_CUT_B)
    if at < 0:
        return None
    return text[len(_HEAD_B) : at], text[at + len(_CUT_B) : -1]
