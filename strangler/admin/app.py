"""The admin listener: routes and overrides API, audit, /metrics, /healthz.

:func:`build_admin_app` returns the aiohttp application ``strangler serve`` (and
the demo) bind to ``admin.listen``. Other parts add their pages through
``extensions`` — callables that receive the app and register routes on it
(the shadow API, the dashboard) — and the CDC status through ``sync_status``.
They find the runtime and control plane under :data:`RUNTIME` and
:data:`CONTROL`, and protect their own writes with :func:`require_writer`.

Writes need ``Authorization: Bearer <admin.token>`` (compared in constant
time); with no token configured they are refused (403), never open. Every
error is JSON ``{"error": ..., "field": ...}`` with a status a script can act
on: 400 bad body (naming the field), 401/403 token, 404 unknown route, 409
canary refused while shadow mismatches are too high (or a context's write route,
which follows its owner), 503 state store down.
Nothing here is on the request path of the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from strangler.control.plane import (
    ControlPlane,
    InvalidOverride,
    OwnedRoute,
    UnknownRoute,
    validate_override,
)
from strangler.errors import StateStoreError
from strangler.metrics import Metrics
from strangler.override import Override
from strangler.routing.table import Route
from strangler.runtime import Runtime
from strangler.tasks import stop_task

from .access import CONTROL, RUNTIME, error, host_guard, require_writer
from .plane_loop import PLANE, PlaneLoop, hop, off_loop
from .traffic import Traffic, TrafficWindow

AdminExtension = Callable[[web.Application], None]
"""Registers more routes on the admin app (e.g. ``strangler.shadow.api``)."""

SyncStatus = Callable[[], Awaitable[Mapping[str, Any]]]
"""Returns the CDC status document served at ``GET /api/sync``."""

TRAFFIC = web.AppKey("strangler.traffic", TrafficWindow)

_BODY_KEYS = frozenset({"mode", "percent", "force"})


def build_admin_app(
    runtime: Runtime,
    control: ControlPlane,
    *,
    metrics: Metrics | None = None,
    extensions: Sequence[AdminExtension] = (),
    sync_status: SyncStatus | None = None,
    plane_loop: asyncio.AbstractEventLoop | None = None,
) -> web.Application:
    """The admin application. ``metrics`` feeds ``/metrics`` and the traffic figures.
    It answers only the host names ``admin.hosts`` allows (421 otherwise).
    ``plane_loop`` is the proxy's loop when the app runs on another (its own thread)."""
    plane = PlaneLoop(plane_loop)
    app = web.Application(middlewares=[host_guard(runtime), hop(plane)])
    app[RUNTIME] = runtime
    app[CONTROL] = control
    app[PLANE] = plane
    handlers = _Handlers(runtime, control, metrics, sync_status, plane)
    if metrics is not None:
        app[TRAFFIC] = handlers.traffic = TrafficWindow(metrics.snapshot)
        app.cleanup_ctx.append(handlers.sampling)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/api/routes", handlers.routes)
    app.router.add_put("/api/routes/{name}/override", handlers.put_override)
    app.router.add_delete("/api/routes/{name}/override", handlers.delete_override)
    app.router.add_get("/api/audit", handlers.audit)
    if sync_status is not None:
        app.router.add_get("/api/sync", handlers.sync)
    for extend in extensions:
        extend(app)
    return app


# ------------------------------------------------------------------ helpers


def _mismatch_rate(runtime: Runtime, route: str) -> float | None:
    if runtime.shadow_match_rate is None:
        return None
    try:
        rate = runtime.shadow_match_rate(route)
    except Exception:  # a broken hook must not block the operator; show no rate
        return None
    return None if rate is None else 1.0 - rate


def state_notice(control: ControlPlane) -> str | None:
    """What a person should know about the state this process routes by (None: all well);
    shown by ``/api/routes`` and the dashboard."""
    if control.source == "local_copy":
        saved = control.local_copy_saved_at
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(saved)) if saved else "?"
        path = control.local_copy.path if control.local_copy is not None else "?"
        return (
            f"state store {control.store.url} unreachable since start: serving the local "
            f"copy saved {when} ({path}); changes are refused until it answers"
        )
    if control.store.shared and not control.connected:
        return (
            f"state store {control.store.url} unreachable: routing continues with the "
            "last-known table; changes are refused until it answers"
        )
    return None


def route_view(runtime: Runtime, route: Route, traffic: Traffic | None = None) -> dict[str, Any]:
    """One route as ``GET /api/routes`` shows it (the dashboard uses the same shape)."""
    match_rate = None
    if runtime.shadow_match_rate is not None:
        with contextlib.suppress(Exception):
            match_rate = runtime.shadow_match_rate(route.name)
    override = route.override.to_dict() if route.override is not None else None
    return {
        "name": route.name,
        "mode": route.mode,
        "percent": route.percent,
        "source": route.source,
        "reason": route.override.reason if route.override is not None else None,
        "to": route.to,
        "config": route.config.model_dump(mode="json", exclude_none=True),
        "override": override,
        "traffic": traffic.to_dict() if traffic is not None else None,
        "shadow_match_rate": match_rate,
    }


@dataclass(eq=False)  # handlers are compared and hashed by identity
class _Handlers:
    runtime: Runtime
    control: ControlPlane
    metrics_source: Metrics | None
    sync_status: SyncStatus | None
    plane: PlaneLoop
    traffic: TrafficWindow | None = None

    async def sampling(self, app: web.Application) -> Any:
        """Snapshot the counters every few seconds so "last minute" has a baseline."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(5.0)
                if self.traffic is not None and self.traffic.due():
                    self.traffic.sample()

        task = asyncio.create_task(loop())
        yield
        await stop_task(task)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(self, request: web.Request) -> web.Response:
        if self.metrics_source is None:
            raise error(404, "metrics are not collected in this process")
        body, content_type = self.metrics_source.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    def _view(self, route: Route, recent: Mapping[str, Traffic]) -> dict[str, Any]:
        return route_view(self.runtime, route, recent.get(route.name))

    async def routes(self, request: web.Request) -> web.Response:
        router = self.runtime.router
        table = router.table
        recent = self.traffic.recent() if self.traffic is not None else {}
        control = self.control
        return web.json_response(
            {
                "routes": [self._view(route, recent) for route in table.routes],
                "config_version": router.config_version,
                "last_reload_error": router.last_reload_error,
                "state": {
                    "url": control.store.url,
                    "shared": control.store.shared,
                    "connected": control.connected,
                    "error": control.last_error,
                    "source": control.source,
                    "notice": state_notice(control),
                    "local_copy": (
                        {
                            "path": str(control.local_copy.path),
                            "saved_at": control.local_copy_saved_at,
                        }
                        if control.local_copy is not None
                        else None
                    ),
                },
            }
        )

    def _route(self, request: web.Request) -> Route:
        name = request.match_info["name"]
        route = self.runtime.router.table.route(name)
        if route is None:
            raise error(404, f"no route named {name!r} in routes.yaml")
        return route

    async def _body(self, request: web.Request) -> dict[str, Any]:
        text = await request.text()
        try:
            body = json.loads(text, parse_constant=_reject_constant) if text.strip() else None
        except ValueError as exc:
            raise error(400, f"body is not JSON: {exc}", "body") from None
        if not isinstance(body, dict):
            raise error(400, 'body must be a JSON object like {"mode": "canary", "percent": 10}')
        for key in body:
            if key not in _BODY_KEYS:
                raise error(400, f"unknown field {key!r} (allowed: mode, percent, force)", key)
        if "mode" not in body:
            raise error(400, "mode is required (legacy, shadow, canary or new)", "mode")
        if not isinstance(body.get("force", False), bool):
            raise error(400, "force must be true or false", "force")
        return body

    async def put_override(self, request: web.Request) -> web.Response:
        who = require_writer(request)
        route = self._route(request)
        body = await self._body(request)
        mode, percent, force = body["mode"], body.get("percent"), body.get("force", False)
        try:
            # Validate before the canary guard so a bad body is a 400 naming its field.
            validate_override(mode, percent)
        except InvalidOverride as exc:
            raise error(400, str(exc), exc.field) from None
        if mode == "canary" and not force:
            self._guard_canary(route)
        try:
            change = await self.plane.run(
                self.control.set_override(route.name, mode, percent, who=who)
            )
        except StateStoreError as exc:
            raise _store_down(exc) from None
        except OwnedRoute as exc:
            raise error(409, str(exc), "mode") from None
        except UnknownRoute as exc:  # routes.yaml was reloaded in between
            raise error(404, str(exc)) from None
        return self._changed(route.name, change.previous)

    def _guard_canary(self, route: Route) -> None:
        rollback = route.config.rollback
        limit = rollback.mismatch_rate if rollback is not None else None
        rate = _mismatch_rate(self.runtime, route.name)
        if limit is None or rate is None or not math.isfinite(rate) or rate <= limit:
            return
        raise error(
            409,
            f"refusing canary for {route.name!r}: shadow mismatch rate {rate:.1%} is above "
            f"rollback.mismatch_rate {limit:.1%}; fix the mismatches or send "
            '"force": true (strangler flip --force)',
            "mode",
        )

    async def delete_override(self, request: web.Request) -> web.Response:
        who = require_writer(request)
        name = request.match_info["name"]
        try:
            change = await self.plane.run(self.control.clear_override(name, who=who))
        except StateStoreError as exc:
            raise _store_down(exc) from None
        except UnknownRoute as exc:
            raise error(404, str(exc)) from None
        return self._changed(name, change.previous)

    def _changed(self, name: str, previous: Override | None) -> web.Response:
        route = self.runtime.router.table.route(name)
        view: dict[str, Any] = (
            route_view(self.runtime, route) if route is not None else {"name": name}
        )
        view["previous"] = previous.to_dict() if previous is not None else None
        return web.json_response(view)

    async def audit(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", "")
        if raw and not raw.isdigit():
            raise error(400, f"limit must be a whole number, not {raw!r}", "limit")
        try:
            entries = await self.plane.run(self.control.audit.latest(int(raw) if raw else None))
        except StateStoreError as exc:
            raise _store_down(exc) from None
        return web.json_response({"entries": entries})

    async def sync(self, request: web.Request) -> web.Response:
        assert self.sync_status is not None  # the route is only added with a provider
        return web.json_response(dict(await self.plane.run(_status(self.sync_status))))


async def _status(source: SyncStatus) -> Mapping[str, Any]:
    return await source()


for _handler in (
    _Handlers.healthz,
    _Handlers.metrics,
    _Handlers.routes,
    _Handlers.put_override,
    _Handlers.delete_override,
    _Handlers.audit,
    _Handlers.sync,
):
    off_loop(_handler)  # they read immutable values, and reach the plane through PlaneLoop


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _store_down(exc: StateStoreError) -> web.HTTPException:
    return error(
        503,
        f"override not changed: {exc}. Routing continues with the last-known table; "
        "retry when the state store is back",
    )
