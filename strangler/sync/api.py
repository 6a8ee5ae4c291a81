"""HTTP status of the CDC worker: ``GET /api/sync`` (+ ``/metrics``, ``/healthz``).

``sync_routes(status_provider)`` gives the ``/api/sync`` route alone so the proxy's
admin app can mount it too (with a provider that reads a worker's status from
wherever it is kept); ``build_sync_app`` is the worker's own small admin listener.
Handlers only read: nothing here changes the worker.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from strangler.metrics import Metrics

StatusProvider = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
"""Returns the status document, or an awaitable of it (``Worker.status_document``)."""


def sync_routes(status_provider: StatusProvider) -> list[web.RouteDef]:
    async def sync_status(_request: web.Request) -> web.Response:
        found = status_provider()
        document = await found if inspect.isawaitable(found) else found
        return web.json_response(dict(document))

    return [web.get("/api/sync", sync_status)]


def build_sync_app(status_provider: StatusProvider, metrics: Metrics) -> web.Application:
    async def metrics_text(_request: web.Request) -> web.Response:
        body, content_type = metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.add_routes(sync_routes(status_provider))
    app.add_routes([web.get("/metrics", metrics_text), web.get("/healthz", healthz)])
    return app
