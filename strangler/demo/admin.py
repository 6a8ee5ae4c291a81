"""The demo's view of the proxy's admin API: the same HTTP calls an operator makes.

The demo moves the route and reads its proofs only through the public admin
listener (``/api/routes``, overrides, ``/api/routes/{name}/shadow``,
``/metrics``), never through the proxy's objects, so what it shows is what a
person with curl would see. aiohttp errors are mapped to AdminError here.
"""

from __future__ import annotations

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
