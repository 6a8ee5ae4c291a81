"""The admin app's view of the proxy's event loop: which handlers may run on the admin
thread (:func:`off_loop`) and the middleware that sends the others to the proxy's loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])


class PlaneLoop:
    """The proxy's event loop, as seen from the admin app's.

    The admin listener runs on a thread of its own (:mod:`strangler.admin.server`);
    the control plane, the stores and cutovers belong to the proxy's loop. ``run``
    runs a coroutine there and waits for it here (directly when both are one loop,
    as in tests that build the app alone). A write already sent completes even if
    the admin client goes away."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop

    def here(self) -> bool:
        return self.loop is None or asyncio.get_running_loop() is self.loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.here():
            return await coro
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.shield(asyncio.wrap_future(future))


_OFF_LOOP: set[Callable[..., Any]] = set()


def off_loop(handler: H) -> H:
    """Mark an admin handler that may run on the admin thread: it reads only immutable
    values (the route table, config) or goes through :class:`PlaneLoop` itself.
    Unmarked handlers (extensions that call the stores) run on the proxy's loop."""
    _OFF_LOOP.add(handler)
    return handler


def hop(plane: PlaneLoop) -> Middleware:
    """Run every handler not marked :func:`off_loop` on the proxy's loop."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.handler
        if (
            plane.here()
            or getattr(route, "__func__", route) in _OFF_LOOP
            or isinstance(request.match_info.route.resource, web.StaticResource)
        ):
            return await handler(request)
        await request.read()  # the body is read here, on the loop that owns the socket
        return await plane.run(_respond(handler, request))

    return middleware


async def _respond(handler: Handler, request: web.Request) -> web.StreamResponse:
    return await handler(request)


PLANE = web.AppKey("strangler.plane", PlaneLoop)
