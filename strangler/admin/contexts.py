"""``GET /api/contexts`` and ``POST /api/contexts/{name}/cutover`` on the admin app.

A context's view: its owner, state and epoch (from the state store, else the
last state this process applied), its routes with their effective modes, its
tables, the writes held here now, and the last cutover. A cutover answers 200
with what happened when the context moved, 409 with the reason when it was
refused (nothing touched) or aborted (everything stayed with the old owner),
404 for an unknown context, 401/403 without the token, 503 when the state store
cannot be reached (before anything is held).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from strangler.admin.access import CONTROL, RUNTIME, error, require_writer
from strangler.control.cutover import CutoverRefused, Cutovers, UnknownContext
from strangler.control.ownership import OWNERS, unowned
from strangler.errors import StateStoreError

CUTOVERS = web.AppKey("strangler.cutovers", Cutovers)


def contexts_extension(cutovers: Cutovers) -> Any:
    """For ``build_admin_app(extensions=[...])``."""

    def extend(app: web.Application) -> None:
        app[CUTOVERS] = cutovers
        app.router.add_get("/api/contexts", list_contexts)
        app.router.add_post("/api/contexts/{name}/cutover", cutover)

    return extend


async def list_contexts(request: web.Request) -> web.Response:
    runtime, control, cutovers = request.app[RUNTIME], request.app[CONTROL], request.app[CUTOVERS]
    config = runtime.router.config
    stale: str | None = None
    try:
        owned = (await control.store.snapshot()).ownerships
    except StateStoreError as exc:
        owned, stale = dict(runtime.router.ownerships), str(exc)
    table = runtime.router.table
    contexts = []
    for name, context in config.contexts.items():
        ownership = owned.get(name) or unowned(name)
        last = None
        if stale is None:
            try:
                last = await cutovers.last(name)
            except StateStoreError as exc:
                stale = str(exc)
        gate = runtime.hold.gates.get(name)
        routes = []
        for route_name in context.routes:
            route = table.route(route_name)
            if route is not None:
                routes.append(
                    {
                        "name": route.name,
                        "mode": route.mode,
                        "percent": route.percent,
                        "source": route.source,
                        "methods": list(route.methods) if route.methods else None,
                        "writes_to": route.to if route.owner == "service" else table.legacy,
                    }
                )
        contexts.append(
            {
                "name": name,
                "owner": ownership.owner,
                "state": ownership.state,
                "epoch": ownership.epoch,
                "changed_at": ownership.changed_at or None,
                "by": ownership.by or None,
                "cutover": ownership.cutover or None,
                "to": ownership.to,
                "routes": routes,
                "tables": list(context.tables),
                "hold_timeout": context.hold_timeout,
                "max_held": context.max_held,
                "max_lag": context.max_lag,
                "held_here": gate.held if gate is not None else 0,
                "last_cutover": last,
            }
        )
    return web.json_response({"contexts": contexts, "state_error": stale})


async def cutover(request: web.Request) -> web.Response:
    who = require_writer(request)
    cutovers = request.app[CUTOVERS]
    name = request.match_info["name"]
    try:
        cutovers.context(name)
    except UnknownContext as exc:
        raise error(404, str(exc)) from None
    text = await request.text()
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError as exc:
        raise error(400, f"body is not JSON: {exc}", "body") from None
    if not isinstance(body, dict) or set(body) - {"to"}:
        raise error(400, 'body must be {"to": "service"} or {"to": "legacy"}', "body")
    to = body.get("to")
    if to not in OWNERS:
        raise error(400, f"to: {to!r} is not service or legacy", "to")
    try:
        result = await cutovers.run(name, to, who=who)
    except CutoverRefused as exc:
        raise error(409, f"cutover of {name!r} to {to} refused: {exc}") from None
    except StateStoreError as exc:
        raise error(
            503,
            f"cutover of {name!r} not started, nothing held: {exc}. Retry when the state "
            "store is back",
        ) from None
    view = result.to_dict()
    if result.done:
        return web.json_response(view)
    view["error"] = f"cutover of {name!r} to {to} aborted, nothing moved: {result.reason}"
    return web.json_response(view, status=409)
