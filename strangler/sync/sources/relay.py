"""Moved to ``strangler.devstack.relay`` (demo and test tooling, not a CDC source);
this name is kept until every caller imports the new one."""

from strangler.devstack.relay import DebeziumRelay

__all__ = ["DebeziumRelay"]
