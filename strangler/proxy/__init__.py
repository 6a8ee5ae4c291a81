"""The data plane: an HTTP/1.1 reverse proxy on asyncio Protocols and llhttp (httptools).

server.py      ProxyServer: the listener, live connections, idle sweep, graceful close
connection.py  ClientConnection: request parsing, limits, smuggling checks, pipelining
request.py     ProxyRequest and RequestBody (a body stream with back-pressure)
forwarding.py  Forwarder: decision -> upstream, retries, fallback, recording
fastpath.py    the callback-only path for the common request
hold.py        the write hold: a context's writes wait while its ownership moves
exchange.py    one request/response on one upstream connection; the upstream head
attempt.py     Attempt: the sink an upstream response streams into
adapting.py    routes with an anti-corruption adapter (buffered)
shadowing.py   tee bodies for the shadow sink
tunnel.py      Upgrade / websocket tunnels
upstream.py    UpstreamConnection and UpstreamPool (keep-alive, connect, breaker)
registry.py    Upstreams: pools by name, following config reloads
sweep.py       upstream timeouts without a timer per request
circuit.py     CircuitBreaker
headers.py     hop-by-hop stripping, forwarded headers, heads in both directions
responses.py   the JSON errors the proxy writes itself
"""
