"""The data plane: an HTTP/1.1 reverse proxy on asyncio Protocols and llhttp (httptools).

server.py      ProxyServer: the listener, live connections, idle sweep, graceful close
connection.py  ClientConnection: request parsing, limits, smuggling checks, pipelining
request.py     ProxyRequest and RequestBody (a body stream with back-pressure)
dispatch.py    Dispatcher: route a parsed request, make its Exchange, pick its strategy
exchange.py    Exchange: one request from head to answer, and its one finish; Host
outcome.py     Failure (typed failure kinds), Answer, RequestRecord
fastpath.py    strategy: the callback-only path for the common request
forwarding.py  strategy: the task path (Forwarder: retries, fallback, breaker)
adapting.py    strategy: routes with an anti-corruption adapter (buffered)
tunnel.py      strategy: Upgrade / websocket tunnels
attempt.py     Attempt: one try on one upstream, the sink its response streams into
roundtrip.py   one request/response on one upstream connection; the upstream head
hold.py        the write hold: a context's writes wait while its ownership moves
shadowing.py   ShadowSink / ShadowTap: what the proxy asks of the shadow pipeline
upstream.py    UpstreamConnection and UpstreamPool (keep-alive, connect, breaker)
registry.py    Upstreams: pools by name, following config reloads
sweep.py       upstream timeouts without a timer per request
circuit.py     CircuitBreaker
headers.py     hop-by-hop stripping, forwarded headers, heads in both directions
responses.py   the JSON errors the proxy writes itself

Nothing here imports the shadow, control, admin or sync packages (import-linter
contracts in pyproject.toml); the process is seen through ``exchange.Host``.
"""
