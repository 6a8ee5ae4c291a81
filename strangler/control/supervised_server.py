"""The supervisor's side of ``memory://`` under ``--workers N``: the state, served on a socket.

The same socket serves more operations given by the caller: the supervisor adds
the shadow results' (:mod:`strangler.shadow.supervised_store`), so every worker
merges its comparisons into the one store kept here.

The server is synchronous on purpose: the supervisor runs no event loop and no
thread (it forks workers), so it polls the socket between signal checks. The
state lives as long as the supervisor does: a worker that dies and is replaced
finds it intact; stopping ``strangler serve`` forgets it, as ``memory://`` says.
The workers' side is :mod:`strangler.control.supervised`, the wire
:mod:`strangler.control.supervised_wire`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryState
from strangler.control.supervised_wire import MAX_LINE, dump, override_from_json, snapshot_json

log = logging.getLogger(__name__)

Operation = Callable[[dict[str, Any]], Any]
"""One served operation: the call's arguments in, its JSON-ready result out."""

MAX_BACKLOG = 64 * 1024 * 1024
"""Bytes the server queues for a peer that does not read before it drops the peer."""


@dataclass(eq=False)
class _Peer:
    sock: socket.socket
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    subscribed: bool = False


class StateServer:
    """The supervisor's side: the state, and a Unix socket serving it (never blocks).

    ``more`` are further operations served on the socket (name -> handler of the
    call's arguments, returning its JSON-ready result)."""

    def __init__(self, path: Path, more: Mapping[str, Operation] | None = None) -> None:
        self.path = path
        self.state = MemoryState()
        self.state.listeners.append(self._announce)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: set[_Peer] = set()
        self._ops: dict[str, Operation] = {
            "snapshot": lambda a: snapshot_json(self.state.snapshot()),
            "version": lambda a: self.state.version,
            "set_override": self._set_override,
            "ownerships": lambda a: {k: v.to_dict() for k, v in self.state.ownerships.items()},
            "set_ownership": lambda a: self.state.set_ownership(
                Ownership.from_dict(a["ownership"]),
                expect=None if a["expect"] is None else Ownership.from_dict(a["expect"]),
            ),
            "beat": lambda a: self.state.beat(a["replica"], a["ttl"]),
            "replicas": lambda a: sorted(self.state.replicas()),
            "add": lambda a: self.state.add(a["key"], a["counts"], a["ttl"]),
            "totals": lambda a: self.state.totals(a["keys"]),
            "delete": lambda a: self.state.delete(a["keys"]),
            "push": lambda a: self.state.push(a["key"], a["value"], a["keep"]),
            "latest": lambda a: self.state.latest(a["key"], a["limit"]),
            "acquire": lambda a: self.state.acquire(a["key"], a["ttl"]),
            "release": lambda a: self.state.release(a["key"]),
            **(more or {}),
        }

    def _set_override(self, args: dict[str, Any]) -> dict[str, Any]:
        change = self.state.set_override(args["route"], override_from_json(args["override"]))
        return {
            "version": change.version,
            "previous": change.previous.to_dict() if change.previous else None,
        }

    def poll(self, timeout: float) -> None:
        """Serve whatever is ready, waiting up to ``timeout`` s for something to be."""
        for key, events in self._selector.select(timeout):
            peer = key.data
            if peer is None:
                self._accept()
                continue
            if events & selectors.EVENT_READ:
                self._read(peer)
            if events & selectors.EVENT_WRITE and peer in self._peers:
                self._send(peer)

    def close(self) -> None:
        for peer in list(self._peers):
            self._drop(peer)
        self._selector.close()
        self._listener.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def forget(self) -> None:
        """In a freshly forked child: close the inherited sockets, leave the state alone."""
        for peer in self._peers:
            peer.sock.close()
        self._listener.close()
        self._selector.close()

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            sock, _ = self._listener.accept()
            sock.setblocking(False)
            peer = _Peer(sock)
            self._peers.add(peer)
            self._selector.register(sock, selectors.EVENT_READ, peer)

    def _drop(self, peer: _Peer) -> None:
        self._peers.discard(peer)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(peer.sock)
        peer.sock.close()

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(peer)
            return
        peer.inbox += data
        while (end := peer.inbox.find(b"\n")) >= 0:
            line = bytes(peer.inbox[:end])
            del peer.inbox[: end + 1]
            self._queue(peer, self._answer(peer, line))
        if len(peer.inbox) > MAX_LINE:
            log.warning("dropping a state client that sent an over-long message")
            self._drop(peer)

    def _answer(self, peer: _Peer, line: bytes) -> dict[str, Any]:
        ident: Any = None
        try:
            message = json.loads(line)
            ident, op, args = message["id"], message["op"], message.get("args") or {}
            if op == "subscribe":
                peer.subscribed = True
                return {"id": ident, "result": self.state.version}
            return {"id": ident, "result": self._ops[op](args)}
        except Exception as exc:  # a bad request is answered, never fatal to the supervisor
            return {"id": ident, "error": f"{type(exc).__name__}: {exc}"}

    def _announce(self, version: int) -> None:
        for peer in list(self._peers):
            if peer.subscribed:
                self._queue(peer, {"version": version})

    def _queue(self, peer: _Peer, message: Mapping[str, Any]) -> None:
        if peer not in self._peers:
            return
        peer.outbox += dump(message)
        if len(peer.outbox) > MAX_BACKLOG:
            log.warning("dropping a state client that stopped reading")
            self._drop(peer)
            return
        self._send(peer)

    def _send(self, peer: _Peer) -> None:
        try:
            sent = peer.sock.send(peer.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(peer)
            return
        del peer.outbox[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.outbox else 0)
        self._selector.modify(peer.sock, events, peer)
