"""The migration dashboard on the admin listener: ``GET /`` and ``GET /routes/{name}``.

Server-rendered HTML (the route table as it is at render time, so the page is
useful before any script runs) plus ``static/dashboard.js``, which polls the
public admin JSON API every 1.5 s — ``/api/routes``, ``/api/routes/{name}/shadow``,
``/api/audit``, ``/api/contexts`` and ``/api/sync`` — and re-renders. Buttons to
flip, reset and cut a context over call the same API with the admin token the
person typed, kept in ``sessionStorage``; without a token the page is read-only.
No build step, no framework.

This module never reads the state store, the shadow store or metrics itself:
everything live comes through the JSON API, like any other client (the one
exception: the page is rendered with the state notice of ``/api/routes``, so a
replica serving its local copy says so before any script runs).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path

from aiohttp import web

from strangler.admin.access import CONTROL, RUNTIME
from strangler.admin.app import state_notice
from strangler.admin.plane_loop import off_loop
from strangler.admin.shadow_section import SHADOW_SECTION
from strangler.routing.table import Route

STATIC = Path(__file__).parent / "static"


def _shown(notice: str | None) -> str:
    return " hidden" if notice is None else ""


def _page(title: str, page: str, body: str, route: str = "", notice: str | None = None) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · strangler</title>
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body data-page="{page}" data-route="{escape(route)}">
<header>
  <a class="brand" href="/">strangler</a>
  <span class="sub">migration dashboard</span>
  <span id="token-state" class="token"></span>
  <form id="token-form" autocomplete="off">
    <input id="token-input" type="password" placeholder="admin token" aria-label="admin token">
    <button id="token-use" type="submit">Use token</button>
    <button id="token-forget" type="button">Forget</button>
  </form>
</header>
<div id="reload-error" class="banner" hidden></div>
<div id="state-notice" class="banner"{_shown(notice)}>{escape(notice or "")}</div>
<div id="action-error" class="banner" hidden></div>
<main>{body}</main>
<script src="/static/dashboard.js"></script>
</body></html>"""


def _row(route: Route) -> str:
    name = escape(route.name)
    return (
        f'<tr data-route="{name}"><td><a href="/routes/{name}">{name}</a></td>'
        f'<td class="mode">{escape(route.mode)}</td>'
        f'<td class="percent">{route.percent:g}%</td>'
        f'<td class="source">{escape(route.source)}</td>'
        '<td class="rate">&ndash;</td><td class="errors">&ndash;</td>'
        '<td class="fallbacks">&ndash;</td><td class="match">&ndash;</td>'
        '<td class="trend"></td><td class="actions"></td></tr>'
    )


_HEAD = (
    "<tr><th>route</th><th>mode</th><th>percent</th><th>source</th><th>req/min</th>"
    "<th>error rate</th><th>fallbacks</th><th>shadow match</th><th>trend (5 min)</th>"
    "<th>change</th></tr>"
)


def _contexts(names: list[str]) -> str:
    rows = "".join(
        f'<tr data-context="{escape(n)}"><td>{escape(n)}</td><td class="owner">&ndash;</td>'
        '<td class="state">&ndash;</td><td class="last">&ndash;</td>'
        '<td class="non-owner">&ndash;</td><td class="actions"></td></tr>'
        for n in names
    )
    return f"""
<section><h2>Contexts: who owns writes and data</h2>
<table id="contexts" class="grid"><thead><tr><th>context</th><th>owner</th><th>state</th>
<th>last cutover</th><th>writes by the non-owner</th><th>move</th></tr></thead>
<tbody>{rows}</tbody></table>
</section>"""


def overview(request: web.Request) -> web.Response:
    table = request.app[RUNTIME].router.table
    rows = "".join(_row(r) for r in table.routes)
    contexts = request.app[RUNTIME].router.config.contexts
    body = f"""
<section><h2>Routes</h2>
<table id="routes" class="grid"><thead>{_HEAD}</thead><tbody>{rows}</tbody></table>
</section>{_contexts(list(contexts)) if contexts else ""}
<section><h2>Audit log</h2>
<table id="audit" class="grid"><thead><tr><th>when</th><th>action</th><th>route</th><th>who</th>
<th>from</th><th>to</th><th>reason</th></tr></thead><tbody></tbody></table>
</section>"""
    notice = state_notice(request.app[CONTROL])
    page = _page("Routes", "overview", body, notice=notice)
    return web.Response(text=page, content_type="text/html")


def route_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    route = request.app[RUNTIME].router.table.route(name)
    if route is None:
        raise web.HTTPNotFound(text=f"no route named {name!r}")
    body = f"""
<section><h2>Route <span class="name">{escape(name)}</span></h2>
<div class="scroll">
<table id="routes" class="grid"><thead>{_HEAD}</thead><tbody>{_row(route)}</tbody></table>
</div>
</section>
{SHADOW_SECTION}"""
    page = _page(name, "route", body, name, state_notice(request.app[CONTROL]))
    return web.Response(text=page, content_type="text/html")


def dashboard_extension() -> Callable[[web.Application], None]:
    """For ``build_admin_app(extensions=[...])``: the dashboard pages and their assets."""

    def extend(app: web.Application) -> None:
        async def index(request: web.Request) -> web.Response:
            return overview(request)

        async def one(request: web.Request) -> web.Response:
            return route_page(request)

        off_loop(index)  # they read the route table (immutable) and render: no hop needed
        off_loop(one)
        app.router.add_get("/", index)
        app.router.add_get("/routes/{name}", one)
        app.router.add_static("/static/", STATIC)

    return extend
