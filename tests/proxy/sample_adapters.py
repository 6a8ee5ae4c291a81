"""Adapters named by import path in the proxy tests."""

from __future__ import annotations

from strangler.message import HttpRequest, HttpResponse


class CustomerApi:
    """Legacy ``/api/customers/7`` with ``name`` <-> new ``/v2/customers/7`` with ``full_name``."""

    def request(self, request: HttpRequest) -> HttpRequest:
        rewritten = request.replace(
            method="POST" if request.method == "PUT" else request.method,
            path=request.path.replace("/api/customers/", "/v2/customers/"),
            query="v=2",
        ).with_headers(X_Api_Version="2", Cookie=None)
        if request.body:
            data = request.json()
            data["full_name"] = data.pop("name")
            rewritten = rewritten.with_json(data)
        return rewritten

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        data = response.json()
        seen = data.get("seen", {})
        return (
            response.replace(status=200 if response.status == 201 else response.status)
            .with_json(
                {
                    "name": seen.get("body", {}).get("full_name"),
                    "answered_path": seen.get("path"),
                    "answered_method": seen.get("method"),
                    "api_version": seen.get("api_version"),
                    "had_cookie": seen.get("had_cookie"),
                }
            )
            .with_headers(X_Shape="legacy")
        )


class Broken:
    def request(self, request: HttpRequest) -> HttpRequest:
        raise RuntimeError("adapter bug")

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class BrokenResponse:
    def request(self, request: HttpRequest) -> HttpRequest:
        return request

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        raise KeyError("missing")
