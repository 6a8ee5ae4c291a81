"""The admin listener on its own thread and event loop, so no admin call can stall the proxy.

A dashboard polling ``/api/routes`` on ten thousand routes, a ``/metrics``
scrape or a big shadow report costs CPU; on the proxy's loop every proxied
request would wait behind it. :class:`AdminServer` runs the admin app (see
:mod:`strangler.admin.app`) in a thread with a loop of its own. Its handlers
read the route table directly (an immutable value swapped whole) and reach
everything that belongs to the proxy's loop — the control plane, the state and
shadow stores, cutovers — through :class:`~strangler.admin.plane_loop.PlaneLoop`, one
thread-safe hop per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

log = logging.getLogger(__name__)

T = TypeVar("T")


class AdminServer:
    """``start()`` serves ``app`` on ``sock`` from a new thread; ``stop()`` undoes it."""

    def __init__(self, app: web.Application, sock: socket.socket, shutdown_timeout: float) -> None:
        self._app = app
        self._sock = sock
        self._shutdown_timeout = shutdown_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="strangler-admin", daemon=True
        )
        self._runner: web.AppRunner | None = None

    async def _there(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the admin loop and wait for it from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def start(self) -> None:
        self._thread.start()

        async def setup() -> None:
            self._runner = web.AppRunner(
                self._app,
                handle_signals=False,
                access_log=None,
                shutdown_timeout=self._shutdown_timeout,
            )
            await self._runner.setup()
            await web.SockSite(self._runner, self._sock).start()

        try:
            await self._there(setup())
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace: float = 0.0) -> None:
        """Stop serving (in-flight admin calls get ``shutdown_timeout``), end the thread."""
        if not self._thread.is_alive():
            return
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                await self._there(runner.cleanup())
            except Exception:
                log.exception("stopping the admin listener")
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        with contextlib.suppress(RuntimeError):
            self._loop.close()
