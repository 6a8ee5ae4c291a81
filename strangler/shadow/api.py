"""The shadow part of the admin API, and the match-rate hook for the control plane.

``shadow_routes(store, known)`` returns the aiohttp route definitions the admin
app mounts: ``GET /api/routes/{name}/shadow`` (the document :mod:`.report`
builds, per window), ``GET .../shadow/export`` (mismatches as contract-test
fixtures) and ``POST .../shadow/reset``. Reports are read once a second at most
per query and encoded in a worker thread, so a dashboard polling a large report
does not hold the proxy's event loop. :class:`MatchRates` is what
``runtime.shadow_match_rate`` points at: a synchronous, O(1) read of rates the
store was last asked for (refreshed off the request path by :meth:`run`), used
for ``/api/routes``' match rate and to refuse ``flip ... canary`` above
``rollback.mismatch_rate``.

Nothing here changes the store but the reset, which needs the admin token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from strangler.admin.access import RUNTIME, require_writer
from strangler.config import DEFAULT_SHADOW, CompareConfig
from strangler.errors import StateStoreError
from strangler.shadow.report import SampleQuery, fixtures
from strangler.shadow.report import report as build_report
from strangler.shadow.results import MAX_SAMPLES
from strangler.shadow.store import WINDOWS, RouteShadow, ShadowStore, Window

log = logging.getLogger(__name__)


def report(route: str, data: RouteShadow, query: SampleQuery | None = None) -> dict[str, Any]:
    """The JSON body of ``GET /api/routes/{name}/shadow`` (see :mod:`.report`)."""
    return build_report(route, data, query)


_CACHE_SECONDS = 1.0


class _Snapshots:
    """Encoded reports, kept for a second: however many dashboards poll, one
    store read and one encoding per route, window and query a second, and that
    encoding runs in a worker thread so a large report never holds the loop."""

    def __init__(
        self, store: ShadowStore, config_of: Callable[[str], CompareConfig | None]
    ) -> None:
        self._store = store
        self._config_of = config_of
        self._cache: dict[tuple[str, ...], tuple[float, bytes]] = {}

    async def get(
        self, name: str, window: Window, query: SampleQuery, fixtures_only: bool = False
    ) -> bytes:
        key = (name, window, repr(query), str(fixtures_only))
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        # Every stored sample (bounded) when filtering or exporting; else the page, and
        # at least 20 for the check of rules that name nothing.
        wanted = max(query.offset + query.limit, 20)
        data = await self._store.read(
            name, MAX_SAMPLES if (query.filtered or fixtures_only) else wanted, window
        )
        if fixtures_only:
            body = await asyncio.to_thread(_encode, fixtures, name, data.samples)
        else:
            config = self._config_of(name)
            body = await asyncio.to_thread(_encode, build_report, name, data, query, config)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (now, body)
        return body

    def forget(self, name: str) -> None:
        self._cache = {k: v for k, v in self._cache.items() if k[0] != name}


def _encode(build: Callable[..., Any], *args: Any) -> bytes:
    return json.dumps(build(*args), ensure_ascii=False, separators=(",", ":")).encode()


def _query(request: web.Request) -> tuple[Window, SampleQuery] | web.Response:
    q = request.query
    window = q.get("window", "all")
    if window not in WINDOWS:
        return _bad(f"window must be one of {', '.join(WINDOWS)}", "window")
    try:
        limit = max(0, min(int(q.get("samples", "20")), 50))
        offset = max(0, min(int(q.get("offset", "0")), MAX_SAMPLES))
    except ValueError:
        return _bad("samples and offset must be numbers", "samples")
    query = SampleQuery(
        limit, offset, q.get("endpoint") or None, q.get("field") or None, q.get("signature") or None
    )
    return window, query


def _bad(message: str, field: str) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=400)


def shadow_routes(
    store: ShadowStore,
    known: Callable[[str], bool] | None = None,
    config_of: Callable[[str], CompareConfig | None] | None = None,
) -> list[web.RouteDef]:
    """Routes for the admin app: ``app.router.add_routes(shadow_routes(store, known))``.

    ``GET .../shadow`` takes ``?window=all|version|5m``, ``?samples=N&offset=M`` and
    the filters ``endpoint``, ``field``, ``signature``; ``GET .../shadow/export`` the
    mismatches as contract-test fixtures; ``POST .../shadow/reset`` (admin token)
    forgets the route's results."""
    snapshots = _Snapshots(store, config_of or (lambda name: None))

    def unknown(name: str) -> web.Response | None:
        if known is not None and not known(name):
            return web.json_response({"error": f"no route named {name!r}"}, status=404)
        return None

    async def report(request: web.Request, *, fixtures_only: bool) -> web.Response | bytes:
        """The route's snapshot as JSON bytes, or the 4xx/503 answer that replaces it."""
        name = request.match_info["name"]
        parsed = _query(request)
        if isinstance(parsed, web.Response):
            return parsed
        missing = unknown(name)
        if missing is not None:
            return missing
        try:
            return await snapshots.get(name, *parsed, fixtures_only=fixtures_only)
        except StateStoreError as exc:
            return web.json_response({"error": str(exc)}, status=503)

    async def get_shadow(request: web.Request) -> web.Response:
        body = await report(request, fixtures_only=False)
        if isinstance(body, web.Response):
            return body
        return web.Response(body=body, content_type="application/json")

    async def export(request: web.Request) -> web.Response:
        body = await report(request, fixtures_only=True)
        if isinstance(body, web.Response):
            return body
        name = request.match_info["name"]
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}-mismatches.json"'},
        )

    async def reset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        who = require_writer(request)
        missing = unknown(name)
        if missing is not None:
            return missing
        try:
            await store.reset(name)
        except StateStoreError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        snapshots.forget(name)
        log.info("shadow results of route %r reset by %s", name, who)
        return web.json_response({"route": name, "reset": True})

    return [
        web.get("/api/routes/{name}/shadow", get_shadow),
        web.get("/api/routes/{name}/shadow/export", export),
        web.post("/api/routes/{name}/shadow/reset", reset),
    ]


def admin_extension(store: ShadowStore) -> Callable[[web.Application], None]:
    """For ``build_admin_app(extensions=[...])``: the shadow API on the admin app,
    404 for names the current route table does not have."""

    def extend(app: web.Application) -> None:
        def known(name: str) -> bool:
            return app[RUNTIME].router.table.route(name) is not None

        def config_of(name: str) -> CompareConfig | None:
            route = app[RUNTIME].router.table.route(name)
            if route is None:
                return None
            return (route.config.shadow or DEFAULT_SHADOW).compare

        app.router.add_routes(shadow_routes(store, known, config_of))

    return extend


class MatchRates:
    """``runtime.shadow_match_rate``: a route's recent match rate, 0..1, or None.

    Recent means the store's trend window (the last five minutes); with nothing
    compared in it, the all-time rate. Reading is a dict lookup; :meth:`refresh`
    (run every ``interval`` seconds by :meth:`run`) asks the store, so replicas
    sharing a Redis store all see the aggregate."""

    def __init__(self, store: ShadowStore, interval: float = 1.0) -> None:
        self._store = store
        self._interval = interval
        self._rates: dict[str, float | None] = {}

    def __call__(self, route: str) -> float | None:
        return self._rates.get(route)

    def mismatch_rate(self, route: str) -> float | None:
        rate = self._rates.get(route)
        return None if rate is None else 1.0 - rate

    async def refresh(self) -> None:
        rates: dict[str, float | None] = {}
        for route in await self._store.routes():
            data = await self._store.read(route, samples=0)
            matched = sum(m for _, m, _ in data.trend)
            compared = matched + sum(mm for _, _, mm in data.trend)
            if not compared:
                matched, compared = data.counts.get("match", 0), data.compared
            rates[route] = matched / compared if compared else None
        self._rates = rates

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except StateStoreError as exc:
                log.warning("shadow match rates not refreshed: %s", exc)
            await asyncio.sleep(self._interval)
