"""The adapter protocol: a legacy row change -> writes in the service's model.

Kept apart from ``model.py`` so it stays a Python class when ``model.py`` is compiled:
mypyc turns a ``Protocol`` into a native trait, which ``@runtime_checkable`` (and so
``isinstance(adapter, RowAdapter)``) refuses. ``model.py`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from strangler.sync.model import ChangeEvent, RowWrite


@runtime_checkable
class RowAdapter(Protocol):
    """Maps one legacy row change to writes in the service's model.

    ``map`` must be pure: the same event always gives the same writes (verify and
    repair rely on it). Raise ``ChangeEventError`` (or anything) for an event it
    cannot map; the worker dead-letters it with the message.
    """

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]: ...
