"""Adapters named by import path in the routing tests."""

from strangler.message import HttpRequest, HttpResponse


class Rename:
    def request(self, request: HttpRequest) -> HttpRequest:
        return request.replace(path=request.path.replace("/c/", "/v2/c/"))

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class NotAnAdapter:
    pass
