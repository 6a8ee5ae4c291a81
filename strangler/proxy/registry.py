"""``Upstreams``: one connection pool per upstream name, following config reloads.

The data plane asks ``upstreams.pool(config, name)`` with the config of the route
table it read for this request. When that config is a new object (a reload), the
pools are re-matched by name: an upstream whose settings are unchanged keeps its
pool (and warm connections), a changed one (new URL, timeouts, limits) gets a
fresh pool, and pools of removed or changed upstreams close their idle
connections. So does one whose ``tls:`` files changed on disk: a renewed client
certificate or CA bundle is used from the next reload (SIGHUP) on. All pools
share one timeout :class:`~strangler.proxy.sweep.Sweep`. Nothing here opens connections itself.
"""

from __future__ import annotations

import asyncio

from strangler.config import Config
from strangler.proxy.sweep import SWEEP_MAX, Sweep, sweep_interval
from strangler.proxy.upstream import UpstreamPool


class Upstreams:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._config: Config | None = None
        self._pools: dict[str, UpstreamPool] = {}
        self.sweep = Sweep(SWEEP_MAX)

    def pool(self, config: Config, name: str) -> UpstreamPool:
        if config is not self._config:
            self._follow(config)
        return self._pools[name]

    def _follow(self, config: Config) -> None:
        pools: dict[str, UpstreamPool] = {}
        for name, upstream in config.upstreams.items():
            old = self._pools.get(name)
            pools[name] = (
                old
                if old is not None and old.config == upstream and not old.tls_changed()
                else UpstreamPool(name, upstream, self.loop, self.sweep)
            )
        for name, old in self._pools.items():
            if pools.get(name) is not old:
                old.close()
        self._pools = pools
        self._config = config
        shortest = min((u.timeout for u in config.upstreams.values()), default=SWEEP_MAX)
        self.sweep.interval = sweep_interval(shortest)

    def close(self) -> None:
        self.sweep.close()
        for pool in self._pools.values():
            pool.close()
