"""One legacy request answered two ways: by the monolith, or by a service through an adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from strangler.adapter import HttpAdapter
from strangler.message import HttpRequest, HttpResponse, make_headers


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    def normalised(self) -> Answer:
        """Without the volatile ``AS_OF_TS`` stamp (checked to be present and well formed)."""
        if isinstance(self.body, dict) and "AS_OF_TS" in self.body:
            stamp = self.body["AS_OF_TS"]
            assert isinstance(stamp, str) and len(stamp) == 14 and stamp.isdigit(), stamp
            return Answer(self.status, {k: v for k, v in self.body.items() if k != "AS_OF_TS"})
        return self


def legacy_request(method: str, target: str, body: bytes = b"") -> HttpRequest:
    path, _, query = target.partition("?")
    headers = {"Content-Type": "application/json"} if body else {}
    return HttpRequest(
        headers=make_headers(headers), body=body, method=method, path=path, query=query
    )


async def direct(session: aiohttp.ClientSession, base: str, request: HttpRequest) -> Answer:
    async with session.request(
        request.method, base + request.target, data=request.body, headers=request.headers
    ) as resp:
        return Answer(resp.status, await resp.json())


async def adapted(
    session: aiohttp.ClientSession, base: str, adapter: HttpAdapter, request: HttpRequest
) -> Answer:
    """What the proxy does for a route in ``new`` mode: adapt, forward, adapt back."""
    upstream = adapter.request(request)
    async with session.request(
        upstream.method, base + upstream.target, data=upstream.body, headers=upstream.headers
    ) as resp:
        response = HttpResponse(
            status=resp.status, headers=make_headers(resp.headers.items()), body=await resp.read()
        )
    legacy = adapter.response(request, response)
    return Answer(legacy.status, legacy.json())
