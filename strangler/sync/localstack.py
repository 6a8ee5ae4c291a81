"""Moved to ``strangler.devstack.localstack`` (demo and test tooling, not the CDC
worker); this name is kept until every caller imports the new one."""

from strangler.devstack.localstack import LogicalPostgres, TansuBroker, free_port

__all__ = ["LogicalPostgres", "TansuBroker", "free_port"]
