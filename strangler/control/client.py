"""A small synchronous client of the admin API, for ``strangler status``, ``flip`` and ``cutover``.

Every failure becomes :class:`~strangler.errors.AdminError` with the HTTP status
(0 when the admin listener cannot be reached) and the server's own message, so
the commands can print one clear line. :func:`admin_url` finds where to talk:
``--admin``, else ``$STRANGLER_ADMIN``, else ``admin.listen`` from routes.yaml,
else ``http://127.0.0.1:8081``. Used only from the command line, never by the proxy.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from strangler.config import split_listen
from strangler.errors import AdminError, ConfigError, Problem
from strangler.yaml_source import read_yaml

DEFAULT_ADMIN = "http://127.0.0.1:8081"


def _listen_url(listen: str) -> str:
    host, port = split_listen(listen)
    # A wildcard bind is reachable on loopback; an IPv6 literal needs brackets.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _config_listen(path: Path, env: Mapping[str, str]) -> str | None:
    try:
        data = read_yaml(path.read_text(encoding="utf-8"), env).data
    except (OSError, ConfigError) as exc:
        raise ConfigError(
            [Problem("", f"cannot read the admin address: {exc}")], str(path)
        ) from exc
    admin = data.get("admin") if isinstance(data, dict) else None
    listen = admin.get("listen") if isinstance(admin, dict) else None
    if listen is None:
        return None
    try:
        return _listen_url(str(listen))
    except ValueError:
        raise ConfigError(
            [Problem("admin.listen", f"{listen!r} is not host:port")], str(path)
        ) from None


def admin_url(
    explicit: str | None, config: str | None, env: Mapping[str, str] | None = None
) -> str:
    """Where the admin API is. Raises ConfigError if an explicit ``config`` cannot be read."""
    env = os.environ if env is None else env
    if explicit:
        return explicit.rstrip("/")
    if env.get("STRANGLER_ADMIN"):
        return env["STRANGLER_ADMIN"].rstrip("/")
    if config is not None:
        return _config_listen(Path(config), env) or DEFAULT_ADMIN
    implicit = Path("routes.yaml")
    if implicit.is_file():
        try:
            return _config_listen(implicit, env) or DEFAULT_ADMIN
        except ConfigError:
            pass  # an unrelated routes.yaml in the current folder; use the default
    return DEFAULT_ADMIN


class AdminClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def routes(self) -> dict[str, Any]:
        return self._call("GET", "/api/routes")

    def contexts(self) -> dict[str, Any]:
        return self._call("GET", "/api/contexts")

    def cutover(self, context: str, to: str) -> dict[str, Any]:
        """Run a cutover; an aborted one raises AdminError(409) like a refused one, with
        the result document in ``AdminError.body``."""
        return self._call("POST", f"/api/contexts/{_quote(context)}/cutover", {"to": to})

    def audit(self, limit: int | None = None) -> dict[str, Any]:
        return self._call("GET", "/api/audit" + (f"?limit={limit}" if limit else ""))

    def set_override(
        self, route: str, mode: str, percent: float | None = None, *, force: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": mode}
        if percent is not None:
            body["percent"] = percent
        if force:
            body["force"] = True
        return self._call("PUT", f"/api/routes/{_quote(route)}/override", body)

    def clear_override(self, route: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/routes/{_quote(route)}/override")

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token and method != "GET":
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            message, answer = _server_message(exc)
            raise AdminError(message, exc.code, answer) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(f"cannot reach the admin API at {self.base_url}: {reason}") from exc
        try:
            result = json.loads(payload or b"{}")
        except ValueError as exc:
            raise AdminError(f"{url} did not answer JSON; is it a strangler admin API?") from exc
        if not isinstance(result, dict):
            raise AdminError(f"{url} answered unexpected JSON")
        return result


def _quote(route: str) -> str:
    return urllib.parse.quote(route, safe="")


def _server_message(exc: urllib.error.HTTPError) -> tuple[str, dict[str, Any]]:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    if isinstance(body.get("error"), str):
        return str(body["error"]), body
    return f"{exc.code} {exc.reason}", body
