"""Hot reload of routes.yaml: watch the file, validate it whole, swap or keep.

:class:`ConfigWatcher` polls the file about once a second (size, mtime and, when
those move, a hash of the contents, so a ``touch`` or an editor's rewrite with
identical bytes is not a reload) and reloads on demand (``trigger()``, wired to
SIGHUP by the process runtime). A valid file becomes the router's config in one
table swap — requests in flight keep the table they started with — and counts
``strangler_config_reloads_total{result="accepted"}``. An invalid one changes
nothing: the last good table keeps serving, the problems are kept in
``router.last_reload_error`` (shown by ``/api/routes``) and the reload counts as
``rejected``.

Settings that belong to sockets and processes (``listen``, ``admin``,
``state``) cannot change under a running process; a reload that changes them
still applies its routes and logs that a restart is needed for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path

from strangler.config import Config, load_config, locate
from strangler.errors import ConfigError
from strangler.metrics import Metrics
from strangler.routing.router import Router
from strangler.tasks import stop_task

log = logging.getLogger(__name__)

_RESTART_KEYS = ("listen", "admin.listen", "state", "tls")
"""What a reload cannot change: the sockets and the state store are opened once.
``admin.token`` is not among them: a reload rotates it (writes check it live); nor
are the contents of the ``tls`` files, which are reloaded on change or SIGHUP."""


class ConfigWatcher:
    def __init__(
        self,
        path: str | os.PathLike[str],
        router: Router,
        metrics: Metrics | None = None,
        *,
        interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.router = router
        self.metrics = metrics
        self.interval = interval
        self._stat = self._stat_key()
        self._digest = self._read_digest()
        self._wake = asyncio.Event()
        self._force = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="strangler-config-watch")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def trigger(self) -> None:
        """Reload now, even if the file looks unchanged (SIGHUP)."""
        self._force = True
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            force, self._force = self._force, False
            try:
                await self.check(force=force)
            except Exception:  # the watcher must outlive any one bad reload
                log.exception("reloading %s failed", self.path)

    async def check(self, *, force: bool = False) -> bool | None:
        """Reload if the file changed (or ``force``): True accepted, False rejected,
        None unchanged. A missing file is rejected once, not once a second."""
        stat = self._stat_key()
        if not force and stat == self._stat:
            return None
        self._stat = stat
        digest = self._read_digest()
        if not force and digest == self._digest:
            return None
        self._digest = digest
        return await self.reload()

    async def reload(self) -> bool:
        """Validate the file and apply it, or record why not. Returns True if applied."""
        try:
            # Parsing, validating and compiling take a while for big files (0.3 s for
            # 10,000 routes): do them off the loop, then swap on it.
            config = await asyncio.to_thread(load_config, self.path)
            try:
                prebuilt = await asyncio.to_thread(self.router.build, config)
            except ConfigError as exc:
                raise ConfigError(locate(config, exc.problems), exc.source) from None
            old = self.router.config
            self.router.apply_config(config, prebuilt)
        except ConfigError as exc:
            text = "\n".join(p.located() for p in exc.problems)
            self.router.reject(text)
            self._count("rejected")
            log.error("%s rejected, still serving the last good config:\n%s", self.path, text)
            return False
        self._count("accepted")
        log.info("%s reloaded (config version %d)", self.path, self.router.config_version)
        _warn_restart_only(old, config)
        return True

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.reload(result)

    def _stat_key(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _read_digest(self) -> bytes | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).digest()
        except OSError:
            return None


def _warn_restart_only(old: Config, new: Config) -> None:
    for key in _RESTART_KEYS:
        if _get(old, key) != _get(new, key):
            log.warning("routes.yaml %r changed: it takes effect after a restart", key)


def _get(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
