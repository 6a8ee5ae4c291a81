"""The Router: the one mutable holder of the current route table.

Every change — a reloaded routes.yaml (``apply_config``) or a new set of
runtime overrides (``set_overrides``) — compiles a fresh immutable
:class:`RouteTable` first and then swaps it in with a single assignment, so a
request that read ``router.table`` keeps a consistent table to the end and a
table that fails to build never replaces the good one. Callbacks registered in
``on_swap`` run after each swap (metrics gauges, the dashboard).

The router never reads files or the state store itself: the reloader and the
control plane feed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from strangler.config import Config
from strangler.override import Override
from strangler.ownership import Ownership
from strangler.routing.table import RouteTable

log = logging.getLogger(__name__)

SwapCallback = Callable[[RouteTable], None]


class Router:
    def __init__(
        self,
        config: Config,
        overrides: Mapping[str, Override] | None = None,
        *,
        base_dir: Path | None = None,
    ) -> None:
        """Build the first table; raises ConfigError if ``config`` cannot be compiled."""
        self.base_dir = base_dir
        self.overrides: Mapping[str, Override] = dict(overrides or {})
        self.ownerships: Mapping[str, Ownership] = {}
        self.table: RouteTable = RouteTable.build(config, self.overrides, base_dir=base_dir)
        self.config: Config = config
        self.config_version = 1
        self.last_reload_error: str | None = None
        self.on_swap: list[SwapCallback] = []

    def build(self, config: Config) -> tuple[RouteTable, Mapping[str, Override]]:
        """Compile ``config`` with the current overrides without swapping it in (safe to
        run in a thread); pass the result to :meth:`apply_config`."""
        overrides = self.overrides
        table = RouteTable.build(
            config,
            overrides,
            base_dir=self.base_dir,
            previous=self.table,
            ownerships=self.ownerships,
        )
        return table, overrides

    def apply_config(
        self,
        config: Config,
        prebuilt: tuple[RouteTable, Mapping[str, Override]] | None = None,
    ) -> RouteTable:
        """Compile ``config`` with the current overrides and swap it in.

        ``prebuilt`` (from :meth:`build`) is used if the overrides have not changed
        since, so a big table can be compiled off the event loop. Raises ConfigError
        (and changes nothing) if the table cannot be built."""
        if prebuilt is not None and prebuilt[1] is self.overrides:
            table = prebuilt[0]
        else:
            table = RouteTable.build(
                config,
                self.overrides,
                base_dir=self.base_dir,
                previous=self.table,
                ownerships=self.ownerships,
            )
        self.config = config
        self.config_version += 1
        self.last_reload_error = None
        self._swap(table)
        return table

    def set_overrides(
        self,
        overrides: Mapping[str, Override],
        ownerships: Mapping[str, Ownership] | None = None,
    ) -> RouteTable:
        """Replace the whole override set (by route name) and, if given, the contexts'
        ownerships, and swap in the new table (one swap for both)."""
        overrides = dict(overrides)
        owned = dict(ownerships) if ownerships is not None else self.ownerships
        table = RouteTable.build(
            self.config, overrides, base_dir=self.base_dir, previous=self.table, ownerships=owned
        )
        self.overrides = overrides
        self.ownerships = owned
        self._swap(table)
        return table

    def reject(self, error: str) -> None:
        """Record a config that failed validation; the current table keeps serving."""
        self.last_reload_error = error

    def _swap(self, table: RouteTable) -> None:
        self.table = table  # the one assignment readers ever see change
        for callback in list(self.on_swap):
            try:
                callback(table)
            except Exception:  # a broken observer must not undo or block a swap
                log.exception("route table swap callback %r failed", callback)
