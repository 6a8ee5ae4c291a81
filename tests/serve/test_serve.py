"""`strangler serve` end to end: hot reload with traffic flowing, SIGHUP, graceful stop,
workers whose metrics add up. Real upstreams on loopback, real proxy processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from strangler.config import load_config
from strangler.process import STARTUP_WINDOW
from strangler.serve import bind_listener, start_proxy
from tests.support.net import free_port

from .conftest import routes_yaml
from .support import side, strangler_serve, upstreams


def write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()  # move mtime on clearly, whatever the filesystem's granularity
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def eventually(check: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():  # type: ignore[operator]
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{check} did not become true within {timeout}s")
        await asyncio.sleep(0.1)


async def metric(session: aiohttp.ClientSession, admin: str, name: str, **labels: str) -> float:
    async with session.get(admin + "/metrics") as response:
        text = await response.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def test_reload_with_requests_flowing_none_fail(tmp_path: Path) -> None:
    async with upstreams() as up, aiohttp.ClientSession() as session:
        path = tmp_path / "routes.yaml"
        write(path, routes_yaml(port=0, admin_port=0, legacy_url=up.legacy, new_url=up.new))
        running = await start_proxy(load_config(path), config_path=path)
        try:
            url = running.proxy_url + "/api/customers/7"
            seen: list[str] = []
            failures: list[BaseException] = []
            stop = asyncio.Event()

            async def traffic() -> None:
                while not stop.is_set():
                    try:
                        seen.append(await side(session, url))
                    except Exception as exc:  # any failure is the test failing
                        failures.append(exc)

            flowing = [asyncio.create_task(traffic()) for _ in range(4)]
            # a slow request started on the old table finishes there
            slow = asyncio.create_task(side(session, url + "?sleep=1.5"))
            await asyncio.sleep(0.2)
            write(
                path,
                routes_yaml(port=0, admin_port=0, legacy_url=up.legacy, new_url=up.new, mode="new"),
            )

            async def on_new() -> bool:
                return bool(seen) and seen[-1] == "new"

            await eventually(on_new)
            assert await slow == "legacy"
            # now a broken file: rejected, the last good table keeps answering
            write(path, routes_yaml(port=0, admin_port=0, mode="new\n    percent: 140"))

            async def rejected() -> bool:
                async with session.get(running.admin_url + "/api/routes") as response:
                    body = await response.json()
                return body["last_reload_error"] is not None

            await eventually(rejected)
            before = len(seen)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*flowing)
            assert not failures, failures[:3]
            assert set(seen[before:]) == {"new"}
            async with session.get(running.admin_url + "/api/routes") as response:
                body = await response.json()
            assert (
                "routes[0].percent" in body["last_reload_error"]
                and "140" in body["last_reload_error"]
            )
            assert body["config_version"] == 2
            assert body["routes"][0]["mode"] == "new"
            admin = running.admin_url
            assert (
                await metric(session, admin, "strangler_config_reloads_total", result="accepted")
                == 1
            )
            assert (
                await metric(session, admin, "strangler_config_reloads_total", result="rejected")
                == 1
            )
        finally:
            await running.close(1)


async def test_sighup_reloads_and_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    async with upstreams() as up, aiohttp.ClientSession() as session:
        path = tmp_path / "routes.yaml"
        text = routes_yaml(port=port, admin_port=admin_port, legacy_url=up.legacy, new_url=up.new)
        path.write_text(text)
        async with strangler_serve(path, port, admin_port) as serve:
            async with session.get(serve.admin + "/api/routes") as response:
                assert (await response.json())["config_version"] == 1
            serve.send(signal.SIGHUP)

            async def reloaded() -> bool:
                async with session.get(serve.admin + "/api/routes") as response:
                    return bool((await response.json())["config_version"] == 2)

            await eventually(reloaded)
            assert (
                await metric(
                    session, serve.admin, "strangler_config_reloads_total", result="accepted"
                )
                == 1
            )

            slow = [
                asyncio.create_task(side(session, serve.proxy + f"/api/customers/{i}?sleep=1.5"))
                for i in range(3)
            ]
            await asyncio.sleep(0.5)
            serve.send(signal.SIGTERM)
            assert await asyncio.gather(*slow) == ["legacy"] * 3
            assert await serve.wait() == 0
        try:
            async with (
                aiohttp.ClientSession() as fresh,
                fresh.get(f"http://127.0.0.1:{port}/") as r,
            ):
                raise AssertionError(f"still serving after SIGTERM: {r.status}")
        except aiohttp.ClientConnectionError:
            pass


async def test_workers_metrics_add_up_and_stop_gracefully(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    state = f"{{url: 'redis://127.0.0.1:6379/0', namespace: 'serve-test-{uuid.uuid4().hex}'}}"
    async with upstreams() as up:
        path = tmp_path / "routes.yaml"
        path.write_text(
            routes_yaml(
                port=port,
                admin_port=admin_port,
                state=state,
                legacy_url=up.legacy,
                new_url=up.new,
                mode="new",
            )
        )
        async with strangler_serve(path, port, admin_port, "--workers", "2") as serve:
            sent = 0
            # a fresh connection per request so both workers get a share of the accepts
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(10):
                    results = await asyncio.gather(
                        *(side(session, serve.proxy + "/api/customers/1") for _ in range(20))
                    )
                    assert set(results) == {"new"}
                    sent += len(results)

                async def all_counted() -> bool:
                    total = await metric(
                        session, serve.admin, "strangler_requests_total", route="customers"
                    )
                    return total == sent

                await eventually(all_counted)
                hist = await metric(
                    session,
                    serve.admin,
                    "strangler_request_duration_seconds_count",
                    route="customers",
                )
                assert hist == sent
                assert (
                    await metric(
                        session, serve.admin, "strangler_route_mode", route="customers", mode="new"
                    )
                    == 1
                )
                # in-flight requests on every worker finish after SIGTERM
                slow = [
                    asyncio.create_task(side(session, serve.proxy + f"/api/customers/{i}?sleep=1"))
                    for i in range(6)
                ]
                await asyncio.sleep(0.4)
                serve.send(signal.SIGTERM)
                assert await asyncio.gather(*slow) == ["new"] * 6
            assert await serve.wait() == 0


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


async def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    state = f"{{url: 'redis://127.0.0.1:6379/0', namespace: 'serve-test-{uuid.uuid4().hex}'}}"
    async with upstreams() as up, aiohttp.ClientSession() as session:
        path = tmp_path / "routes.yaml"
        path.write_text(
            routes_yaml(
                port=port, admin_port=admin_port, state=state, legacy_url=up.legacy, new_url=up.new
            )
        )
        async with strangler_serve(path, port, admin_port, "--workers", "2") as serve:
            first = children(serve.process.pid)
            assert len(first) == 3  # two workers and the admin process
            # past the start-up window, a crash is a restart rather than a failed start
            await asyncio.sleep(STARTUP_WINDOW + 0.5)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)

            async def replaced() -> bool:
                now = children(serve.process.pid)
                return victim not in now and len(now) == 3

            await eventually(replaced)
            for _ in range(20):
                assert await side(session, serve.proxy + "/api/customers/1") == "legacy"
            # SIGHUP to the parent reloads every process. The edit keeps the file's size
            # and mtime, so the once-a-second poll cannot see it: only SIGHUP can.
            before = path.stat()
            text = path.read_text()
            edited = text.replace("mode: legacy", "mode: new   ")
            assert edited != text and len(edited) == len(text)
            path.write_text(edited)
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            await asyncio.sleep(2.5)
            assert await side(session, serve.proxy + "/api/customers/1") == "legacy"
            serve.send(signal.SIGHUP)
            fresh = aiohttp.TCPConnector(force_close=True)  # reach every worker

            async def everywhere_new() -> bool:
                async with aiohttp.ClientSession(connector=fresh, connector_owner=False) as s:
                    sides = {await side(s, serve.proxy + "/api/customers/1") for _ in range(20)}
                return sides == {"new"}

            await eventually(everywhere_new)
            await fresh.close()
            serve.send(signal.SIGTERM)
            assert await serve.wait() == 0


async def test_a_path_escaping_the_root_is_400_and_never_forwarded(tmp_path: Path) -> None:
    async with upstreams() as up:
        path = tmp_path / "routes.yaml"
        path.write_text(routes_yaml(port=0, admin_port=0, legacy_url=up.legacy, new_url=up.new))
        running = await start_proxy(load_config(path))
        try:
            host, port = running.proxy_address or ("", 0)
            seen: list[str] = []
            for target in ("/../etc/passwd", "/api/%2e%2e/%2E%2E/secret", "/a%zz"):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                await writer.drain()
                status_line = await reader.readline()
                seen.append(status_line.decode())
                writer.close()
                await writer.wait_closed()
        finally:
            await running.close(1)
        assert all(line.split()[1] == "400" for line in seen), seen
        assert up.hits == []


async def test_the_admin_listener_serves_health_metrics_routes_and_dashboard(
    tmp_path: Path,
) -> None:
    async with upstreams() as up, aiohttp.ClientSession() as session:
        path = tmp_path / "routes.yaml"
        path.write_text(routes_yaml(port=0, admin_port=0, legacy_url=up.legacy, new_url=up.new))
        running = await start_proxy(load_config(path), config_path=path)
        try:
            admin = running.admin_url
            async with session.get(admin + "/healthz") as response:
                assert response.status == 200
            async with session.get(admin + "/metrics") as response:
                assert response.content_type == "text/plain"
                assert "strangler_route_mode" in await response.text()
            async with session.get(admin + "/api/routes") as response:
                body = await response.json()
            assert body["config_version"] == 1 and body["last_reload_error"] is None
            (route,) = body["routes"]
            assert (route["name"], route["mode"], route["percent"]) == ("customers", "legacy", 0)
            assert route["source"] == "config" and route["override"] is None
            assert route["config"]["match"] == {"path": "/api/customers/**"}
            async with session.get(admin + "/") as response:
                assert response.status == 200 and response.content_type == "text/html"
        finally:
            await running.close(1)


async def test_a_port_in_use_is_a_clear_error_and_exit_1(tmp_path: Path) -> None:
    taken = bind_listener("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        path = tmp_path / "routes.yaml"
        path.write_text(routes_yaml(port=port, admin_port=free_port()))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "strangler", "serve", "-c", str(path),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        taken.close()
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}".encode() in err
    assert b"Traceback" not in err


def gone(pid: int) -> bool:
    """Exited (reaped, or a zombie waiting for whoever adopted it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    state = f"{{url: 'redis://127.0.0.1:6379/0', namespace: 'serve-test-{uuid.uuid4().hex}'}}"
    path = tmp_path / "routes.yaml"
    path.write_text(routes_yaml(port=port, admin_port=admin_port, state=state))
    async with strangler_serve(path, port, admin_port, "--workers", "2") as serve:
        kids = children(serve.process.pid)
        assert len(kids) == 3
        serve.process.kill()
        await serve.process.wait()

        async def all_gone() -> bool:
            return all(gone(pid) for pid in kids)

        await eventually(all_gone, timeout=15)
