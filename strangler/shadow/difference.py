"""One difference between the legacy and the new answer, and one comparison's result.

:class:`Difference` is a typed difference at a path (``body.items[slug=c].title``);
its ``field`` is the template rates, noise and signatures are kept by
(:func:`field_of`: indexes and keys become ``[*]``, id-like map keys ``<key>``).
:class:`Comparison` is the immutable outcome of comparing two observations.
Nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from strangler.shadow.outcome import Compared

Kind = Literal["value", "type", "missing", "extra", "length", "order"]
"""``value`` changed value; ``type`` changed type; ``missing`` on the new side only
absent; ``extra`` only on the new side; ``length`` array length; ``order`` same
elements in another order."""

_INDEX = re.compile(r"\[[^\]]*\]")
_ID_KEY = re.compile(
    r"\.(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{12,}|[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*\d[A-Za-z0-9_-]{6,})(?=$|[.\[])"
)
_PREVIEW = 300


def field_of(path: str) -> str:
    """``body.items[3].id`` -> ``body.items[*].id``, ``body.items[slug=c].title`` ->
    ``body.items[*].title``, ``body.users.8812.name`` -> ``body.users.<key>.name``:
    the template rates, noise and signatures are kept by (ids never become fields)."""
    if "[" in path:
        path = _INDEX.sub("[*]", path)
    return _ID_KEY.sub(".<key>", path) if any(c.isdigit() for c in path) else path


def _preview(value: Any) -> Any:
    """Keep small values as they are; long ones as a truncated JSON string."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= _PREVIEW else value[:_PREVIEW]
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    kind: Kind
    legacy: Any = None
    new: Any = None

    @property
    def field(self) -> str:
        return field_of(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "field": self.field,
            "kind": self.kind,
            "legacy": _preview(self.legacy),
            "new": _preview(self.new),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """The result of one comparison. ``noise`` holds differences on known-noisy fields."""

    outcome: Compared
    differences: tuple[Difference, ...] = ()
    noise: tuple[Difference, ...] = ()
    error: str | None = None
    warnings: tuple[Difference, ...] = ()
    """Differences the route reports without failing the match (``order: warning``)."""
    reached: frozenset[str] = frozenset()
    """Config paths of the rules that applied to a difference here."""
