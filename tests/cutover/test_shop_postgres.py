"""The acceptance run of test_shop.py on PostgreSQL 15 with real Debezium embedded capturing
both databases (the monolith's and the service's) at once: 4 writers, 10 cutovers, every
acknowledged write in both databases exactly once, none failed, verify clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strangler.devstack.localstack import LogicalPostgres

from .shop import postgres_databases, shop
from .test_shop import ten_cutovers_under_four_writers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[LogicalPostgres]:
    with LogicalPostgres(databases=("shop", "customers")) as pg:
        yield pg


async def test_writers_lose_nothing_on_postgres_and_debezium(
    tmp_path: Path, cluster: LogicalPostgres
) -> None:
    dbs = postgres_databases(cluster, "shop", "customers")
    async with shop(tmp_path, dbs=dbs) as found:
        await ten_cutovers_under_four_writers(found)
