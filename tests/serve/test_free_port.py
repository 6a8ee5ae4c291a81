"""The ports tests and ``strangler demo --stack local`` give their servers.

Found under load in the suite: ``strangler serve: cannot listen on 127.0.0.1:45699:
Address already in use`` — the port came from ``bind(0)``, i.e. from the kernel's
ephemeral range, and an outgoing connection made before the server started took it
as its local end. Ports now come from below that range, where no outgoing
connection is ever given one."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from strangler.devstack.localstack import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_ports_are_below_the_range_outgoing_connections_take() -> None:
    if not RANGE.exists():
        pytest.skip("no Linux ephemeral port range to stay out of")
    low = int(RANGE.read_text().split()[0])
    if low < 11_000:
        pytest.skip(f"the ephemeral range starts at {low}: no room below it")
    ports = [free_port() for _ in range(50)]
    assert all(port < low for port in ports)
    assert len(set(ports)) == 50  # never the same port twice in one process


def test_a_port_handed_out_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def test_a_port_in_use_is_never_handed_out() -> None:
    # Every port from this process's free_port is bound here at once: none repeats.
    held = []
    try:
        for _ in range(20):
            sock = socket.socket()
            sock.bind(("127.0.0.1", free_port()))
            held.append(sock)
    finally:
        for sock in held:
            sock.close()
