"""The routes.yaml the demo writes into its work folder, from the ports it got.

It is a real routes.yaml, loaded by the real loader and hot-reloaded by the
real watcher: the demo changes the customers adapter by rewriting this file,
exactly as an operator would. Comments are kept so a reader of the work folder
learns the format from it. Nothing here starts anything.
"""

from __future__ import annotations

from dataclasses import dataclass

ADAPTERS = {
    "draft": "adapters.customers:CustomerApiWholeUnits",
    "fixed": "adapters.customers:CustomerApi",
}
"""The customers HTTP adapter: the first draft (with the credit-limit mistake) and the fix."""
ROW_ADAPTER = "adapters.customers:CustomerRows"
CIRCUIT_COOLDOWN = 1.0
"""Seconds the customers upstream's breaker stays open after failures (routes.yaml below)."""


@dataclass(frozen=True)
class DemoPorts:
    proxy: int
    admin: int
    monolith: int
    customers: int
    sync: int = 0


def render_routes_yaml(
    ports: DemoPorts,
    *,
    token: str,
    adapter: str,
    state: str,
    sync_sources: str,
    service_db: str,
    monolith_db: str,
    way_back: bool = True,
) -> str:
    return _head(ports, token, adapter, state) + (
        _with_context(sync_sources, service_db, monolith_db, ports)
        if way_back
        else _without_context(sync_sources, service_db, ports)
    )


def _head(ports: DemoPorts, token: str, adapter: str, state: str) -> str:
    return f"""\
# Written by `strangler demo`: the sample migration's routes.yaml, on this run's ports.
# Edit it while the demo runs: the proxy reloads it (a bad edit is rejected, shown in
# /api/routes and on the dashboard, and the last good config keeps serving).
listen: 127.0.0.1:{ports.proxy}
admin:
  listen: 127.0.0.1:{ports.admin}
  token: {token}          # generated for this run; `export STRANGLER_ADMIN_TOKEN=...`
state: {state}
legacy: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:{ports.monolith}", timeout: 10s}}
  customers:
    url: "http://127.0.0.1:{ports.customers}"
    timeout: 2s
    circuit: {{failures: 5, cooldown: {CIRCUIT_COOLDOWN:g}s}}
routes:
  # Reads of the customers context move to the new service. Writes stay with the
  # monolith, which still owns the data; CDC (sync: below) copies them across.
  - name: customers
    match:
      path: /api/customers/**
      methods: [GET, HEAD]
    to: customers
    mode: legacy                      # the demo walks it with runtime overrides
    sticky: [header:X-User-Id, ip]
    fallback: true                    # service fails -> legacy answers GETs
    adapter: {ADAPTERS[adapter]}
    shadow:
      percent: 100
      compare:
        ignore: [body.AS_OF_TS]       # the monolith stamps every answer with the time
    rollback:
      error_rate: 0.05                # > 5% of the service's answers failing in 30s
      window: 30s
      min_requests: 50
"""


def _with_context(sync_sources: str, service_db: str, monolith_db: str, ports: DemoPorts) -> str:
    return f"""\
  # Writes of the customers context go to whoever owns it (contexts: below): the
  # monolith until `strangler cutover customers --to service`, then the service.
  - name: customer-writes
    match:
      path: /api/customers/**
      methods: [POST, PUT]
    to: customers
    adapter: {ADAPTERS["fixed"]}
contexts:
  customers:
    routes: [customers, customer-writes]
    tables: [customer]                # the monolith table whose data the context owns
    hold_timeout: 5s                  # the drain must finish within it, or the cutover aborts
    max_lag: 3s
{_sync_head(sync_sources, service_db, ports)}\
    monolith: "{monolith_db}"         # written only by the way back (service -> monolith)
  tables:
    - source: customer
      target: customers
      from_source: monolith
      adapter: {ROW_ADAPTER}
      reverse:                        # while the service owns the context
        source: service
        target: monolith
"""


def _without_context(sync_sources: str, service_db: str, ports: DemoPorts) -> str:
    return f"""\
{_sync_head(sync_sources, service_db, ports)}\
  tables:
    - source: customer
      target: customers
      adapter: {ROW_ADAPTER}
"""


def _sync_head(sync_sources: str, service_db: str, ports: DemoPorts) -> str:
    """The ``sync:`` section up to its targets, the service's database first."""
    return f"""\
sync:
  listen: 127.0.0.1:{ports.sync}
  sources:
{sync_sources.rstrip()}
  targets:
    customers: "{service_db}"
"""
