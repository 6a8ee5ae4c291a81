"""Anti-corruption adapters on the data plane: the protocol and how config names one.

An adapter translates between the legacy API and the new service's: ``request``
rewrites what is sent to the new upstream; ``response`` turns the new service's
answer back into the shape legacy clients expect (also applied before a shadow
comparison, so like is compared with like). Both are pure and synchronous.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from strangler.message import HttpRequest, HttpResponse


@runtime_checkable
class HttpAdapter(Protocol):
    def request(self, request: HttpRequest) -> HttpRequest:
        """The request to send to the new upstream, from the one the legacy client sent."""
        ...

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """The legacy-shaped response, from the new upstream's answer to ``request``.

        ``request`` is the client's original (legacy) request.
        """
        ...
