"""Where the demo's data and state live: the embedded backend (SQLite files, memory://).

A backend provides the database URLs of the monolith and the customers service,
the ``state:`` of the proxy and the ``sync:`` section that captures the
monolith, and starts/stops whatever servers that needs. The stack
(:mod:`strangler.demo.stack`) runs the same apps, proxy and steps on any backend.
Backends never start the apps or the proxy themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Backend(Protocol):
    name: str

    async def start(self, workdir: Path) -> None: ...

    async def stop(self) -> None: ...

    @property
    def monolith_db(self) -> str: ...

    @property
    def service_db(self) -> str: ...

    def state_yaml(self) -> str:
        """The routes.yaml ``state:`` value (a URL, or a mapping in flow style)."""
        ...

    def sync_sources_yaml(self) -> str:
        """The ``sources:`` list of the ``sync:`` section, indented four spaces."""
        ...

    def describe(self) -> list[str]:
        """Lines for the banner: what runs where."""
        ...


class EmbeddedBackend:
    """No servers: SQLite files in the work folder, state in the proxy's memory."""

    name = "embedded"

    def __init__(self) -> None:
        self.workdir = Path(".")

    async def start(self, workdir: Path) -> None:
        self.workdir = workdir
        for name in ("monolith.db", "customers.db"):
            for suffix in ("", "-wal", "-shm"):
                (workdir / (name + suffix)).unlink(missing_ok=True)

    async def stop(self) -> None:
        return None

    @property
    def monolith_db(self) -> str:
        return f"sqlite:///{self.workdir / 'monolith.db'}"

    @property
    def service_db(self) -> str:
        return f"sqlite:///{self.workdir / 'customers.db'}"

    def state_yaml(self) -> str:
        return "memory://"

    def sync_sources_yaml(self) -> str:
        return f"""\
    - name: monolith
      kind: sqlite                    # triggers write Debezium-shaped envelopes to a table
      options:
        database: {self.workdir / "monolith.db"}
        tables: [customer]
        poll_interval: 50ms
"""

    def describe(self) -> list[str]:
        return ["backend    embedded: SQLite files, memory:// state, SQLite capture source"]
