"""The process runtime of ``strangler serve``: signals, workers, graceful shutdown.

With one worker the proxy and the admin listener run in this process. With
``--workers N`` (default: one per core, see :func:`worker_count`) the parent binds
the public socket once and forks N proxy workers that all accept on it, plus
one admin process (the admin listener binds in one place only); the parent
then only supervises: it forwards SIGHUP (reload) to every child, restarts a
child that dies after it had started well, and on SIGTERM/SIGINT asks every
child to stop — each stops accepting, lets in-flight requests finish within
the grace period and exits — then exits 0.

With ``state: memory://`` the parent also owns the state (overrides, rollback
counts, context owners, hold acknowledgements) and the shadow results: it serves
them on a Unix socket (:mod:`strangler.control.supervised`,
:mod:`strangler.shadow.supervised_store`) and every child reads and writes
them there, so a flip through the admin API reaches every worker at once and
the shadow API shows every worker's comparisons.

Workers share metrics through a spool folder the parent creates and removes.
The parent never runs an event loop or threads, so forking from it stays safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

from strangler.config import Config, split_listen
from strangler.control.supervised import SupervisedStateStore
from strangler.control.supervised_server import StateServer
from strangler.errors import StranglerError
from strangler.serve import SHUTDOWN_GRACE, bind_listener, start_proxy
from strangler.shadow.store import MemoryShadowStore
from strangler.shadow.supervised_store import SupervisedShadowStore, shadow_ops

log = logging.getLogger("strangler.serve")

STARTUP_WINDOW = 5.0
"""A child that exits sooner than this after starting failed to start: give up."""
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_HANDLED = {*_STOP_SIGNALS, signal.SIGHUP}
"""What a process acts on: a child keeps them blocked (pending) until its handlers are in."""
_WATCHED = {*_HANDLED, signal.SIGCHLD}


def run_loop(main: Coroutine[object, object, int], loop: str = "auto") -> int:
    """Run ``main`` on uvloop when it is installed (``auto``) or asked for, else asyncio.

    uvloop is the ``fast`` extra: measured in bench/proxy.py it takes about 6 CPU-µs
    off every proxied request (0.52x -> 0.64x NGINX's throughput on 2 cores).
    """
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                main.close()
                raise StranglerError(
                    "--loop uvloop: uvloop is not installed (pip install 'strangler[fast]')"
                ) from None
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def worker_count(requested: int) -> int:
    """``--workers`` resolved: 0 means one per core, whatever the state and routes."""
    return requested or os.cpu_count() or 1


def serve(
    config_path: str,
    config: Config,
    workers: int,
    grace: float = SHUTDOWN_GRACE,
    loop: str = "auto",
) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    count = worker_count(workers)
    if count == 1:
        return run_loop(_single(config_path, config, grace), loop)
    return _Supervisor(config_path, config, count, grace, loop).run()


# ---------------------------------------------------------------- one process


async def _single(config_path: str, config: Config, grace: float) -> int:
    running = await start_proxy(config, config_path=config_path)
    log.info("proxy on %s, admin on %s", running.proxy_url, running.admin_url)
    await _until_stopped(running.reload)
    log.info("stopping: letting in-flight requests finish (up to %gs)", grace)
    await running.close(grace)
    return 0


async def _until_stopped(on_hup: Callable[[], None] | None) -> None:
    """Wait for SIGTERM/SIGINT; SIGHUP calls ``on_hup`` (reload) meanwhile."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if on_hup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    # A child started with them blocked: one that came meanwhile is handled now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
    try:
        await stop.wait()
    finally:
        for sig in (*_STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)


# ---------------------------------------------------------------- workers


async def _stop_when_orphaned(parent: int) -> None:
    """A child whose supervisor died (SIGKILL, OOM) stops itself gracefully
    rather than serving on unsupervised."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("supervisor %d is gone; stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class _Child:
    role: str  # "worker" or "admin"
    pid: int
    started: float


class _Supervisor:
    def __init__(
        self, config_path: str, config: Config, count: int, grace: float, loop: str
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.count = count
        self.grace = grace
        self.loop = loop
        self.children: dict[int, _Child] = {}
        self.spool = Path(tempfile.mkdtemp(prefix="strangler-metrics-"))
        self.state: StateServer | None = None
        """``memory://`` state, owned here and served to the children."""

    def run(self) -> int:
        # Block the signals we handle, so they queue for sigtimedwait() instead of
        # interrupting; children keep them blocked until their own handlers are in.
        signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
        sock = bind_listener(*split_listen(self.config.listen))
        try:
            if self.config.state.url == "memory://":
                shadow = MemoryShadowStore()  # every worker's results, kept here
                self.state = StateServer(self.spool / "state.sock", shadow_ops(shadow))
            log.info("proxy on %s with %d workers", self.config.listen, self.count)
            for _ in range(self.count):
                self._spawn("worker", sock)
            self._spawn("admin", sock)
            return self._supervise(sock)
        finally:
            sock.close()
            if self.state is not None:
                self.state.close()
            shutil.rmtree(self.spool, ignore_errors=True)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED)

    def _spawn(self, role: str, sock: socket.socket) -> None:
        pid = os.fork()
        if pid == 0:  # the child: never returns into the supervisor's code
            code = 1
            try:
                # Still blocked: a SIGHUP or SIGTERM passed on while this child starts
                # waits for its handlers (_until_stopped) instead of killing it.
                signal.pthread_sigmask(signal.SIG_SETMASK, _HANDLED)
                if self.state is not None:
                    self.state.forget()
                code = run_loop(self._child_main(role, sock), self.loop)
            except StranglerError as exc:
                log.error("%s process %d: %s", role, os.getpid(), exc)
            except BaseException:
                log.exception("%s process %d failed", role, os.getpid())
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = _Child(role, pid, time.monotonic())

    async def _child_main(self, role: str, sock: socket.socket) -> int:
        parent = os.getppid()
        orphan_watch = asyncio.create_task(_stop_when_orphaned(parent))
        state = shadow = None
        if self.state is not None:
            state = SupervisedStateStore(self.state.path)
            shadow = SupervisedShadowStore(self.state.path)
        if role == "admin":
            sock.close()  # the admin process never accepts proxy traffic
            running = await start_proxy(
                self.config,
                config_path=self.config_path,
                proxy=False,
                spool_dir=self.spool,
                state=state,
                shadow_store=shadow,
            )
            log.info("admin on %s (pid %d)", running.admin_url, os.getpid())
        else:
            running = await start_proxy(
                self.config,
                config_path=self.config_path,
                proxy_sock=sock,
                admin=False,
                spool_dir=self.spool,
                count_reloads=False,
                state=state,
                shadow_store=shadow,
            )
        await _until_stopped(running.reload)
        orphan_watch.cancel()
        await running.close(self.grace)
        return 0

    def _supervise(self, sock: socket.socket) -> int:
        stopping = False
        deadline = 0.0
        code = 0
        while self.children:
            if self.state is not None:
                self.state.poll(0.05)  # serve the children's state calls between signals
                info = signal.sigtimedwait(_WATCHED, 0)
            else:
                info = signal.sigtimedwait(_WATCHED, 0.5)
            signum = info.si_signo if info is not None else None
            if signum in _STOP_SIGNALS and not stopping:
                stopping, deadline = True, time.monotonic() + self.grace + 5.0
                log.info("stopping %d processes (grace %gs)", len(self.children), self.grace)
                self._signal_all(signal.SIGTERM)
            elif signum == signal.SIGHUP:
                self._signal_all(signal.SIGHUP)
            for child, status in self._reap():
                exit_code = os.waitstatus_to_exitcode(status)
                if stopping:
                    continue
                if time.monotonic() - child.started < STARTUP_WINDOW:
                    log.error(
                        "%s process exited %d while starting; stopping", child.role, exit_code
                    )
                    stopping, deadline, code = True, time.monotonic() + self.grace + 5.0, 1
                    self._signal_all(signal.SIGTERM)
                else:
                    log.warning(
                        "%s process %d exited %d; restarting", child.role, child.pid, exit_code
                    )
                    self._spawn(child.role, sock)
            if stopping and time.monotonic() > deadline:
                log.error("processes still running after the grace period; killing them")
                self._signal_all(signal.SIGKILL)
                deadline = float("inf")
        return code

    def _reap(self) -> list[tuple[_Child, int]]:
        done = []
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                break
            if pid == 0:
                break
            child = self.children.pop(pid, None)
            if child is not None:
                done.append((child, status))
        return done

    def _signal_all(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
