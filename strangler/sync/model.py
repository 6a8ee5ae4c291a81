"""Change events and row writes: the values that flow through CDC, and the adapter protocol.

A source turns Debezium envelopes into ``ChangeEvent``s; a ``RowAdapter`` maps one
legacy row change into zero or more writes to the service's model; the sink applies
them. Nothing here does I/O.

The values live in ``events.py``, which is compiled (mypyc); this module stays pure
Python because mypyc makes a ``Protocol`` a native trait, which ``@runtime_checkable``
(and so ``isinstance(adapter, RowAdapter)``) refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from strangler.sync.events import ChangeEvent as ChangeEvent
from strangler.sync.events import Op as Op
from strangler.sync.events import Position as Position
from strangler.sync.events import RowDelete as RowDelete
from strangler.sync.events import RowUpsert as RowUpsert
from strangler.sync.events import RowWrite as RowWrite


@runtime_checkable
class RowAdapter(Protocol):
    """Maps one legacy row change to writes in the service's model.

    ``map`` must be pure: the same event always gives the same writes (verify and
    repair rely on it). Raise ``ChangeEventError`` (or anything) for an event it
    cannot map; the worker dead-letters it with the message.
    """

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]: ...
