"""The wire between the supervisor's ``memory://`` state and its workers.

One JSON object per line: ``{"id", "op", "args"}`` asks, ``{"id", "result"}`` or
``{"id", "error"}`` answers, and a connection that sent ``subscribe`` then receives
``{"version": N}`` for every change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from strangler.control.ownership import Ownership
from strangler.control.state import StateSnapshot
from strangler.override import Override

MAX_LINE = 64 * 1024 * 1024
"""Longest message either side accepts (a snapshot of very many overrides)."""


def snapshot_json(snapshot: StateSnapshot) -> dict[str, Any]:
    return {
        "version": snapshot.version,
        "overrides": {k: v.to_dict() for k, v in snapshot.overrides.items()},
        "ownerships": {k: v.to_dict() for k, v in snapshot.ownerships.items()},
    }


def snapshot_from_json(data: dict[str, Any]) -> StateSnapshot:
    return StateSnapshot(
        int(data["version"]),
        {k: Override.from_dict(v) for k, v in data["overrides"].items()},
        {k: Ownership.from_dict(v) for k, v in data["ownerships"].items()},
    )


def override_from_json(data: dict[str, Any] | None) -> Override | None:
    return None if data is None else Override.from_dict(data)


def encode(value: Any) -> bytes:
    """``value`` as the JSON the wire carries (no line end)."""
    return json.dumps(value, separators=(",", ":")).encode()


class Encoded(bytes):
    """A result already encoded (:func:`encode`): sent as it is, so an answer many
    callers ask for is encoded once."""


def dump(message: Mapping[str, Any]) -> bytes:
    result = message.get("result")
    if isinstance(result, Encoded):
        return b'{"id":%s,"result":%s}\n' % (encode(message.get("id")), result)
    return encode(message) + b"\n"
