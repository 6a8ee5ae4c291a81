"""Real pieces for the edge tests: `strangler serve` as a process, upstreams whose
every byte on the wire is recorded, and a raw-socket client that reads what the
proxy really sends (status line, reason phrase, headers, close or not)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httptools

from tests.support.net import free_port

# ------------------------------------------------------------------ upstreams


@dataclass
class Seen:
    """One request as an upstream parsed it off the wire."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int
    """Which upstream connection it came on (0, 1, ...)."""

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


Answer = Callable[[Seen], "bytes | Awaitable[bytes]"]


def ok(seen: Seen) -> bytes:
    """The default answer: 200 with the target it saw as JSON."""
    body = json.dumps({"target": seen.target, "method": seen.method}).encode()
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % len(body)
        + body
    )


class _Parse:
    """httptools callbacks collecting complete requests."""

    def __init__(self, connection: int) -> None:
        self.connection = connection
        self.done: list[Seen] = []
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body = b""
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", [], b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("latin-1")
        self.done.append(
            Seen(method, self._url.decode("latin-1"), self._headers, self._body, self.connection)
        )


class WireUpstream:
    """An upstream that records the raw bytes it receives and every request it parses,
    and answers each with ``answer(seen)`` (bytes, or a coroutine giving bytes).

    After a request asking to upgrade, the bytes that follow are kept in
    ``tunnelled`` (what reached it around the proxy's HTTP handling)."""

    def __init__(self, answer: Answer = ok) -> None:
        self.answer = answer
        self.raw = bytearray()
        self.requests: list[Seen] = []
        self.tunnelled = bytearray()
        self.connections = 0
        self.url = ""
        self.changed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        parse = _Parse(number)
        upgraded = False
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                self.raw += data
                if upgraded:
                    self.tunnelled += data
                    self.changed.set()
                    continue
                try:
                    parse.parser.feed_data(data)
                except httptools.HttpParserUpgrade as exc:
                    upgraded = True
                    offset = exc.args[0] if exc.args else len(data)
                    self.tunnelled += data[offset:]
                done, parse.done = parse.done, []
                for seen in done:
                    self.requests.append(seen)
                    self.changed.set()
                    out = self.answer(seen)
                    if inspect.isawaitable(out):
                        out = await out
                    assert isinstance(out, bytes)
                    writer.write(out)
                    await writer.drain()
        except (ConnectionError, httptools.HttpParserError):
            return
        finally:
            writer.close()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Seen]:
        """Wait until at least ``count`` requests arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"upstream got {len(self.requests)} requests, expected {count}: "
                    f"{bytes(self.raw)[:600]!r}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return self.requests


@contextlib.asynccontextmanager
async def wire_upstream(answer: Answer = ok) -> AsyncIterator[WireUpstream]:
    upstream = WireUpstream(answer)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield upstream
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


# ------------------------------------------------------------- the proxy


@dataclass
class Serving:
    process: asyncio.subprocess.Process
    port: int
    admin_port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def routes(self) -> dict[str, dict[str, Any]]:
        """``GET /api/routes`` by route name."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.admin + "/api/routes") as response,
        ):
            data = await response.json()
        return {route["name"]: route for route in data["routes"]}


def config_text(config: dict[str, Any], port: int, admin_port: int) -> str:
    full = {
        "listen": f"127.0.0.1:{port}",
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": "secret"},
        "state": "memory://",
        **config,
    }
    return json.dumps(full, indent=2)  # JSON is YAML


class ServeFailed(AssertionError):
    """`strangler serve` exited before it was serving."""


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, config: dict[str, Any], *args: str) -> AsyncIterator[Serving]:
    """Run ``strangler serve -c routes.yaml *args`` as a real process for ``config``
    (listen, admin and state are filled in); killed at the end if still running."""
    port, admin_port = free_port(), free_port()
    path = tmp_path / "routes.yaml"
    path.write_text(config_text(config, port, admin_port))
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strangler",
        "serve",
        "-c",
        str(path),
        *args,
        cwd=str(tmp_path),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    serving = Serving(process, port, admin_port, path)
    try:
        await _until_serving(serving)
        yield serving
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _until_serving(serving: Serving, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if serving.process.returncode is not None:
                assert serving.process.stderr is not None
                err = (await serving.process.stderr.read()).decode(errors="replace")
                raise ServeFailed(
                    f"strangler serve exited {serving.process.returncode}: {err.strip()[-800:]}"
                )
            try:
                async with session.get(serving.admin + "/healthz") as response:
                    if response.status < 500:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise ServeFailed(f"strangler serve not serving after {timeout}s")
            await asyncio.sleep(0.1)
    # Past healthz, stderr is not read by anyone: drain it so the process never blocks.
    assert serving.process.stderr is not None
    asyncio.get_running_loop().create_task(_drain(serving.process.stderr))
    await wait_listening(serving.port)


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# ------------------------------------------------------------ the client


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    status_line: bytes = b""

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


class _ResponseParse:
    """Parses one response; anything after its end is ignored (tests send one at a time)."""

    def __init__(self, head_only: bool) -> None:
        self.head_only = head_only
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.reason = b""
        self.status = 0
        self.headed = False
        self.complete = False
        self.parser = httptools.HttpResponseParser(self)

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.headed = True
        self.status = self.parser.get_status_code()
        if self.head_only:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


@dataclass
class RawClient:
    """One client connection speaking raw bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    buffer: bytearray = field(default_factory=bytearray)
    """Bytes read by :meth:`closed` and not handed out yet."""
    eof: bool = False

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self, deadline: float) -> bytes | None:
        """Next bytes; b"" at EOF, None when the deadline passed."""
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        if self.eof:
            return b""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            data = await asyncio.wait_for(self.reader.read(65536), left)
        except TimeoutError:
            return None
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
        return data

    async def response(self, timeout: float = 10.0, head_only: bool = False) -> Response:
        """The next response; AssertionError saying what came if none within ``timeout``.
        A body delimited by the close ends at EOF."""
        parse = _ResponseParse(head_only)
        deadline = time.monotonic() + timeout
        seen = bytearray()
        while not parse.complete:
            data = await self._read(deadline)
            if data is None or (not data and not parse.headed):
                state = "timed out" if data is None else "closed"
                raise AssertionError(
                    f"no complete response within {timeout}s ({state}): {bytes(seen)[:400]!r}"
                )
            if not data:
                break  # close-delimited body
            seen += data
            try:
                parse.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                parse.complete = True
            except httptools.HttpParserError as exc:
                if not parse.complete:
                    message = f"malformed response {exc}: {bytes(seen)[:400]!r}"
                    raise AssertionError(message) from exc
        line = bytes(seen).split(b"\r\n", 1)[0]
        return Response(
            parse.status,
            parse.reason.decode("latin-1"),
            line.split(b" ", 1)[0].decode("latin-1"),
            parse.headers,
            parse.body,
            line,
        )

    async def closed(self, timeout: float = 5.0) -> bool:
        """True if the proxy closes the connection within ``timeout`` (bytes read on
        the way are kept for the next read)."""
        if self.eof:
            return True
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except TimeoutError:
                return False
            except ConnectionError:
                data = b""
            if not data:
                self.eof = True
                return True
            self.buffer += data

    async def everything(self, timeout: float = 5.0) -> bytes:
        """All bytes until the proxy closes or ``timeout`` passes."""
        await self.closed(timeout)
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = RawClient(reader, writer)
    try:
        yield client
    finally:
        client.close()


async def one(port: int, data: bytes, timeout: float = 10.0) -> Response:
    """Send ``data`` on a fresh connection and read one response."""
    async with connect(port) as client:
        await client.send(data)
        return await client.response(timeout)


def get(target: str, host: str = "edge.test", extra: str = "") -> bytes:
    """A plain HTTP/1.1 GET head (``extra``: more header lines, each ending in CRLF)."""
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


def tags(response: Response) -> tuple[str | None, str | None]:
    return response.header("x-strangler-route"), response.header("x-strangler-upstream")
