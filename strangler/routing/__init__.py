"""Routing: which upstream answers a request.

``paths`` normalises request paths; ``route`` compiles one route; ``table``
compiles routes.yaml (plus runtime overrides) into an immutable
:class:`~strangler.routing.table.RouteTable` and matches requests against it;
``decision`` turns a match into a :class:`~strangler.routing.decision.Decision`
(upstream, sticky canary bucket, shadow target, fallback); ``router`` holds the
current table and swaps it in one assignment. Nothing in this package does I/O.
"""
