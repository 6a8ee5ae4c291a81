"""Ports on loopback for the benchmark scripts (run as ``python3 bench/NAME.py``)."""

from __future__ import annotations

import socket
import time

from strangler.devstack.localstack import free_port

__all__ = ["free_port", "wait_for_port"]


def wait_for_port(port: int, timeout: float) -> None:
    """Return once something accepts on 127.0.0.1:port; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")
