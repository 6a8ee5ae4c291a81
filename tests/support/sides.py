"""A legacy and a new upstream on loopback, a routes.yaml's ports, and a proxy run in
this event loop: the pieces the control-plane and cutover tests share (each keeps its
own request handler: what an upstream records is up to the test)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from strangler.config import load_config
from strangler.serve import RunningProxy, start_proxy
from tests.support.net import serve_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def catch_all(handler: Handler) -> web.Application:
    """An app answering every method and path with ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@contextlib.asynccontextmanager
async def two_sides(app: Callable[[str], web.Application]) -> AsyncIterator[tuple[str, str]]:
    """Serve ``app("legacy")`` and ``app("new")``; their base URLs."""
    async with serve_app(app("legacy")) as legacy, serve_app(app("new")) as new:
        yield legacy, new


@dataclass(frozen=True)
class Site:
    """A written routes.yaml and the ports it listens on."""

    config: Path
    port: int
    admin_port: int

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


@contextlib.asynccontextmanager
async def in_process(site: Site) -> AsyncIterator[RunningProxy]:
    """The proxy of ``site`` in this event loop (:func:`strangler.serve.start_proxy`)."""
    running = await start_proxy(load_config(site.config), config_path=site.config)
    try:
        yield running
    finally:
        await running.close(1.0)
