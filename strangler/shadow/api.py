"""The shadow part of the admin API, and the match-rate hook for the control plane.

``shadow_routes(store, known)`` returns the aiohttp route definitions the admin
app mounts: ``GET /api/routes/{name}/shadow`` with counts, match rate,
per-field mismatch rates (noise flagged), a trend, and the latest mismatches
with both responses and the differing paths. :class:`MatchRates` is what
``runtime.shadow_match_rate`` points at: a synchronous, O(1) read of rates the
store was last asked for (refreshed off the request path by :meth:`run`), used
for ``/api/routes``' match rate and to refuse ``flip ... canary`` above
``rollback.mismatch_rate``.

Read-only: nothing here changes the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from strangler.errors import StateStoreError
from strangler.shadow.store import RouteShadow, ShadowStore

log = logging.getLogger(__name__)


def report(route: str, data: RouteShadow) -> dict[str, Any]:
    """The JSON body of ``GET /api/routes/{name}/shadow``."""
    compared = data.compared
    fields = [
        {
            "field": name,
            "mismatches": count,
            "rate": round(count / compared, 6) if compared else None,
            "noise": name in data.noise,
        }
        for name, count in sorted(data.fields.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {
        "route": route,
        "counts": dict(data.counts),
        "compared": compared,
        "match_rate": _rate(data.counts.get("match", 0), compared),
        "mismatch_rate": _rate(data.counts.get("mismatch", 0), compared),
        "fields": fields,
        "noise": sorted(data.noise),
        "trend": [
            {"at": at, "match": m, "mismatch": mm, "match_rate": _rate(m, m + mm)}
            for at, m, mm in data.trend
        ],
        "samples": [s.to_dict() for s in data.samples],
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def shadow_routes(
    store: ShadowStore, known: Callable[[str], bool] | None = None
) -> list[web.RouteDef]:
    """Routes for the admin app: ``app.router.add_routes(shadow_routes(store, known))``.

    ``known(name)`` says whether a route exists (else 404); ``?samples=N`` caps samples."""

    async def get_shadow(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if known is not None and not known(name):
            return web.json_response({"error": f"no route named {name!r}"}, status=404)
        try:
            limit = max(0, min(int(request.query.get("samples", "20")), 50))
        except ValueError:
            return web.json_response({"error": "samples must be a number"}, status=400)
        try:
            data = await store.read(name, limit)
        except StateStoreError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response(report(name, data))

    return [web.get("/api/routes/{name}/shadow", get_shadow)]


def admin_extension(store: ShadowStore) -> Callable[[web.Application], None]:
    """For ``build_admin_app(extensions=[...])``: the shadow API on the admin app,
    404 for names the current route table does not have."""

    def extend(app: web.Application) -> None:
        from strangler.admin.app import RUNTIME  # the admin app owns its keys

        def known(name: str) -> bool:
            return app[RUNTIME].router.table.route(name) is not None

        app.router.add_routes(shadow_routes(store, known))

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
