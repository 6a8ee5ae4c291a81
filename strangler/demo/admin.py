"""The demo's view of the proxy's admin API: the same HTTP calls an operator makes.

Also the readers of the shadow report (counts, mismatching fields, samples).

The demo moves the route and reads its proofs only through the public admin
listener (``/api/routes``, overrides, ``/api/routes/{name}/shadow``,
``/metrics``), never through the proxy's objects, so what it shows is what a
person with curl would see. aiohttp errors are mapped to AdminError here.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from strangler.errors import AdminError


class AdminApi:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._session = session
        self._auth = {"Authorization": f"Bearer {token}"}

    async def _call(self, method: str, path: str, body: object | None = None) -> Any:
        try:
            async with self._session.request(
                method, self.url + path, json=body, headers=self._auth
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise AdminError(
                        f"{method} {path} answered {response.status}: {text[:200]}",
                        response.status,
                    )
                if response.content_type == "application/json":
                    return await response.json()
                return text
        except aiohttp.ClientError as exc:
            raise AdminError(f"{method} {self.url}{path} failed: {exc}") from exc

    async def routes(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/api/routes")
        return data

    async def route(self, name: str) -> dict[str, Any]:
        for route in (await self.routes())["routes"]:
            if route["name"] == name:
                found: dict[str, Any] = route
                return found
        raise AdminError(f"route {name!r} is not in /api/routes", 404)

    async def flip(self, name: str, mode: str, percent: float | None = None) -> None:
        body: dict[str, Any] = {"mode": mode}
        if percent is not None:
            body["percent"] = percent
        await self._call("PUT", f"/api/routes/{name}/override", body)

    async def reset(self, name: str) -> None:
        await self._call("DELETE", f"/api/routes/{name}/override")

    async def shadow(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", f"/api/routes/{name}/shadow")
        return data

    async def contexts(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/api/contexts")
        return data

    async def sync(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/api/sync")
        return data

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        text: str = await self._call("GET", "/metrics")
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != name:
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


# ------------------------------------------- reading GET /api/routes/{name}/shadow


def shadow_total(data: dict[str, Any]) -> int:
    counts = data.get("counts", {})
    return int(sum(counts.get(k, 0) for k in ("match", "mismatch", "error")))


def mismatched_fields(data: dict[str, Any]) -> dict[str, float]:
    fields = data.get("fields") or {}
    out: dict[str, float] = {}
    items = fields.items() if isinstance(fields, dict) else ((f["field"], f) for f in fields)
    for path, info in items:
        rate = info.get("rate", 0) if isinstance(info, dict) else float(info)
        noise = isinstance(info, dict) and info.get("noise")
        if rate and not noise:
            out[path] = float(rate)
    return out


def data_samples(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The latest stored comparisons of ``GET /api/routes/{name}/shadow``."""
    return list(data.get("samples") or ())


def mismatch_example(data: dict[str, Any]) -> str | None:
    for sample in data_samples(data):
        for diff in sample.get("differences") or ():
            return (
                f"e.g. GET {sample.get('request', {}).get('target', '?')}: {diff.get('path')} "
                f"legacy {json.dumps(diff.get('legacy'))} vs new {json.dumps(diff.get('new'))}"
            )
    return None
