"""Who may use the admin listener: the host names it answers to (DNS rebinding
protection), the bearer token of a write, and the JSON errors it answers with."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from strangler.config import AdminConfig, split_listen
from strangler.control.plane import ControlPlane
from strangler.runtime import Runtime

RUNTIME = web.AppKey("strangler.runtime", Runtime)
CONTROL = web.AppKey("strangler.control", ControlPlane)

_ERRORS: dict[int, type[web.HTTPException]] = {
    cls.status_code: cls
    for cls in (
        web.HTTPBadRequest,
        web.HTTPUnauthorized,
        web.HTTPForbidden,
        web.HTTPNotFound,
        web.HTTPConflict,
        web.HTTPServiceUnavailable,
    )
}


def allowed_host(admin: AdminConfig, host: str | None) -> bool:
    """Is ``host`` (a Host header) a name this admin listener answers to?

    A browser tricked by DNS rebinding sends the attacker's name, never an IP address,
    so addresses always pass; names must be ``localhost``, the ``listen`` host, or
    listed in ``admin.hosts`` (``*``: any)."""
    if host is None:
        return True  # no name was used (HTTP/1.0): nothing a rebinding page could send
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if admin.hosts is None:
        return name in ("localhost", split_listen(admin.listen)[0].lower())
    return "*" in admin.hosts or name in (h.lower().rstrip(".") for h in admin.hosts)


def host_guard(runtime: Runtime) -> Middleware:
    """Answer 421 to a Host header :func:`allowed_host` refuses."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        admin = runtime.router.config.admin
        if not allowed_host(admin, request.headers.get("Host")):
            return web.json_response(
                {
                    "error": f"this admin listener does not answer to host "
                    f"{request.headers.get('Host')!r} (DNS rebinding protection): list the "
                    "name under admin.hosts"
                },
                status=421,
            )
        return await handler(request)

    return guard


def error(status: int, message: str, field: str | None = None) -> web.HTTPException:
    """A JSON error response to raise from a handler (400, 401, 403, 404, 409 or 503)."""
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    cls = _ERRORS[status]
    headers = {"WWW-Authenticate": 'Bearer realm="strangler"'} if status == 401 else None
    return cls(text=json.dumps(body), content_type="application/json", headers=headers)


def fingerprint(token: str) -> str:
    """Who made a change, for the audit log, without writing the token down."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def require_writer(request: web.Request) -> str:
    """Check the bearer token of a write; returns who (for the audit) or raises 401/403."""
    runtime = request.app[RUNTIME]
    secret = runtime.router.config.admin.token
    if secret is None or not secret.get_secret_value():
        raise error(
            403,
            "writes are disabled: no admin token is configured (set admin.token in "
            "routes.yaml, e.g. token: ${STRANGLER_ADMIN_TOKEN})",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise error(401, "missing bearer token: send Authorization: Bearer <admin token>")
    expected = secret.get_secret_value()
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise error(401, "wrong admin token")
    return fingerprint(expected)
