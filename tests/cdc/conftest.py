"""Fixtures for the end-to-end CDC tests: one throwaway PostgreSQL cluster with
``wal_level=logical`` and one Tansu (Kafka-protocol) broker per test session.

Both come from ``strangler.devstack.localstack`` (the code ``strangler demo --stack local``
uses) and are stopped at the end of the session. Other test areas may reuse them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strangler.devstack.localstack import LogicalPostgres, TansuBroker

DATABASES = (
    "monolith",
    "service",
    "monolith_k",
    "service_k",
    "monolith_c",
    "service_c",
    "monolith_r",
    "service_r",
    "monolith_rk",
    "service_rk",
    "monolith_p",
    "service_p",
    "monolith_kt",
    "service_kt",
    "monolith_pk",
    "service_pk",
    "monolith_rp",
    "service_rp",
)
"""Debezium-source tests use monolith -> service, Kafka-path tests monolith_k -> service_k,
the command-line test monolith_c -> service_c, the two-way tests monolith_r <-> service_r
(Debezium both ways), monolith_rk <-> service_rk (the way back through Kafka) and the
``pgoutput``-source tests monolith_p -> service_p (monolith_pk -> service_pk killed,
monolith_rp <-> service_rp both ways)."""


@pytest.fixture(scope="session")
def logical_pg() -> Iterator[LogicalPostgres]:
    # One slot per Debezium source, and the session's tests keep theirs (a restarted
    # worker resumes from it): the default 10 ran out once the two-way tests came.
    with LogicalPostgres(databases=DATABASES, max_replication_slots=40) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as tansu:
        yield tansu
