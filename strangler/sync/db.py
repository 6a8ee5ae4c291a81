"""Opening target and monolith databases with SQLAlchemy, and mapping their errors.

``postgresql://`` URLs use psycopg 3; SQLite files get WAL and a busy timeout so the
worker, ``verify`` and the demo's monolith can share them. ``db_error`` turns a
SQLAlchemy error into ``SyncError`` with a message that says where; nothing above
the sink sees a raw SQLAlchemy exception.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from strangler.errors import SyncError


def normalise_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str) -> Engine:
    """An engine for a target or monolith URL; raises SyncError if the URL is unusable."""
    try:
        url = normalise_url(url)
        # Server-side prepared statements get generic plans; with an array or a long
        # VALUES list those plans ignored the indexes (measured: 20x slower batches).
        args = {"prepare_threshold": None} if url.startswith("postgresql+psycopg") else {}
        engine = create_engine(url, pool_pre_ping=True, connect_args=args)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise SyncError(f"cannot open {safe_url(url)}: {exc}") from exc
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        creds, _, rest = tail.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{head}{sep}{user}:***@{rest}"
    return url


def db_error(where: str, exc: SQLAlchemyError) -> SyncError:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return SyncError(f"{where}: {detail}")


def is_connection_error(exc: Exception) -> bool:
    """A failure of the database itself (not of one event): fail the batch, retry later."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    if str(getattr(orig, "sqlstate", "") or "").startswith("54"):
        return False  # program limit exceeded (e.g. an index row too big): this event's data
    # psycopg's OperationalError family: connection lost, deadlock, serialization
    # failure, statement timeout — transient or global, never one event's fault.
    if any(
        c.__name__ == "OperationalError" and c.__module__.startswith("psycopg")
        for c in type(orig).__mro__
    ):
        return True
    # SQLite reports both kinds as OperationalError; only these mean "the database".
    text = str(orig or "").lower()
    return any(s in text for s in ("database is locked", "unable to open", "disk i/o error"))
