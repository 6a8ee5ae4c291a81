"""An anti-corruption adapter for the shadow tests: v2 paths and ``fullName``."""

from __future__ import annotations

from strangler.message import HttpRequest, HttpResponse


class CustomerAdapter:
    def request(self, request: HttpRequest) -> HttpRequest:
        return request.replace(path=request.path.replace("/api/customers", "/v2/customers"))

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        data = response.json()
        return response.with_json({"id": data["id"], "name": data["fullName"]})
