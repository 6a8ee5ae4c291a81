"""Fixtures for the CDC tests: a throwaway PostgreSQL database per session, targets,
and the sync config / monolith builders the tests share."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.sync_config import SyncConfig

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database ``strangler_sync_test_<random>``, dropped after the session."""
    name = f"strangler_sync_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session database with an empty public schema."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def sync_config(target_url: str, adapter: Any, **extra: Any) -> SyncConfig:
    """A sync config with one sqlite source ``mono`` and one target ``svc``."""
    data: dict[str, Any] = {
        "sources": [
            {"name": "mono", "kind": "sqlite",
             "options": {"database": "monolith.db", "tables": ["customers"]}},
        ],
        "targets": {"svc": target_url},
        "tables": [{"source": "customers", "target": "svc", "adapter": adapter}],
        **extra,
    }  # fmt: skip
    return SyncConfig.model_validate(data)
