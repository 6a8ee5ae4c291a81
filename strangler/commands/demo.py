"""``strangler demo [--exit] [--stack embedded|local] [--port N] [--admin-port N] [--workdir DIR]``.

Starts the sample migration's stack, walks the ``customers`` route through its
lifecycle printing each step's proof, then (without ``--exit``) keeps serving
with the dashboard URL and admin token printed until Ctrl-C. With ``--exit`` it
stops after the steps: exit 0 only if every step's check passed, 1 naming the
failing step otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp

from strangler.demo.admin import AdminApi
from strangler.demo.backends import Backend, EmbeddedBackend, LocalBackend
from strangler.demo.context import Demo
from strangler.demo.migration import MIGRATION, STEPS
from strangler.demo.report import Report
from strangler.demo.stack import DemoStack, make_workdir
from strangler.demo.steps import run_steps
from strangler.demo.traffic import Traffic, steady, users

BACKGROUND_USERS = 50
T = TypeVar("T")


def run(args: argparse.Namespace) -> int:
    # The proxy's own warnings (a rollback, a rejected reload) are part of the story:
    # show them, indented under the step that caused them.
    logging.basicConfig(level=logging.WARNING, format="      (log) %(message)s")
    # kafka-python warns about its own selector timing under load; not part of the story.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    return asyncio.run(_demo(args))


async def _demo(args: argparse.Namespace) -> int:
    report = Report()
    workdir, keep = make_workdir(args.workdir)
    backend: Backend = LocalBackend() if args.stack == "local" else EmbeddedBackend()
    stack = DemoStack(
        workdir,
        backend=backend,
        proxy_port=args.port,
        admin_port=args.admin_port,
        keep_workdir=keep,
    )
    report.banner(
        "strangler demo: moving the `customers` context out of the sample monolith",
        f"work folder {workdir}" + ("" if keep else " (removed at exit)"),
    )
    stop = asyncio.Event()
    _trap_signals(stop)
    try:
        if not await _until_stopped(_start(stack), stop):
            return _interrupted(report)
        # Again: the JVM of the local stack's Debezium installs its own SIGINT handler.
        _trap_signals(stop)
        report.banner(
            "stack started",
            f"monolith   {stack.monolith_url}  ({stack.monolith_db})",
            f"customers  {stack.service_url}  ({stack.service_db})",
            f"proxy      {stack.proxy_url}",
            f"admin      {stack.admin_url}  (dashboard, API, /metrics)",
            f"config     {stack.routes_yaml}",
            *backend.describe(),
            *_port_notes(args, stack),
        )
        async with aiohttp.ClientSession() as session, Traffic(stack.proxy_url) as traffic:
            admin = AdminApi(session, stack.admin_url, stack.admin_token)
            demo = Demo(stack, admin, traffic, report)
            outcome = await _until_stopped(
                run_steps(STEPS if backend.way_back else MIGRATION, demo, report), stop
            )
            if outcome is None:
                return _interrupted(report)
            if args.exit:
                return 0 if outcome.ok else 1
            background = asyncio.create_task(
                steady(traffic, users(BACKGROUND_USERS, "visitor"), demo.pick_customer(), 20)
            )
            _serve_banner(report, stack)
            try:
                await stop.wait()
                report.block("", "stopping: traffic, proxy, sync worker, services, monolith")
            finally:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        return 0 if outcome.ok else 1
    finally:
        await stack.close()


async def _start(stack: DemoStack) -> bool:
    await stack.start()
    return True


def _trap_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None if ``stop`` was set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _interrupted(report: Report) -> int:
    report.block("", "interrupted: stopping everything the demo started")
    return 130


def _port_notes(args: argparse.Namespace, stack: DemoStack) -> list[str]:
    notes = []
    for asked, url, what in (
        (args.port, stack.proxy_url, "proxy"),
        (args.admin_port, stack.admin_url, "admin"),
    ):
        got = int(url.rsplit(":", 1)[1])
        if asked and got != asked:
            notes.append(f"note: port {asked} was taken; the {what} listens on {got}")
    return notes


def _serve_banner(report: Report, stack: DemoStack) -> None:
    report.block(
        "",
        f"The demo keeps running, with ~20 GET/s from {BACKGROUND_USERS} sticky users "
        "so the dashboard has live numbers. Try it:",
        f"  dashboard   {stack.admin_url}/   (admin token: {stack.admin_token})",
        f"  proxy       curl -H 'X-User-Id: alice' {stack.proxy_url}/api/customers/42",
        f"  status      strangler status --admin {stack.admin_url}",
        f"  flip        STRANGLER_ADMIN_TOKEN={stack.admin_token} "
        f"strangler flip customers canary --percent 25 --admin {stack.admin_url}",
        f"  config      {stack.routes_yaml}  (edit it: the proxy reloads it)",
        f"  sync        curl {stack.sync.url if stack.sync else '?'}/api/sync",
        "Press Ctrl-C to stop.",
    )
