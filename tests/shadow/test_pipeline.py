"""The pipelined shadow channel (``strangler.shadow.pipeline``) against real targets.

Most targets here are a raw asyncio server written below, so the test decides
every byte of an answer and counts the connections the channel opened; the
slow target is an aiohttp app. The end of the file drives the channel through
:class:`~strangler.shadow.mirror.ShadowMirror` with the shadow lab (conftest).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from strangler.config import CircuitConfig, UpstreamConfig
from strangler.proxy.headers import RawHeaders
from strangler.proxy.upstream import UpstreamPool
from strangler.shadow import pipeline, pipeline_connection
from strangler.shadow.client import encode, encode_get, get_parts
from strangler.shadow.failure import (
    CHANNEL_CLOSED,
    CIRCUIT_OPEN,
    TOO_LARGE,
    FailureKind,
    MirrorFailure,
)
from strangler.shadow.pipeline import ShadowChannel
from strangler.shadow.pipeline_connection import Fields
from tests.shadow.conftest import Lab, dead_url, drain, route_config
from tests.support.net import serve_app

Failed = MirrorFailure | None

LIMIT = 64 * 1024

# ------------------------------------------------------------------ raw target

HOLD = b""
"""What an answer function returns to leave a request unanswered (the target hangs)."""


def answer(body: bytes, *, close: bool = False, status: str = "200 OK") -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + extra + b"\r\n" + body


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    connection: int
    """Which accepted connection (1-based) carried it."""


Answer = Callable[[Request, int], bytes]
"""(request, its 1-based number on its connection) -> the raw bytes to write back."""


def echo(request: Request, nth: int) -> bytes:
    return answer(request.path.encode())


@dataclass
class RawTarget:
    """A loopback HTTP/1.1 server that reads pipelined GETs and writes what ``respond``
    says, closing the connection after an answer carrying ``Connection: close``."""

    respond: Answer = echo
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    url: str = ""
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.append(writer)
        nth = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for item in lines:
                    if item:
                        name, _, value = item.partition(":")
                        headers[name.strip().lower()] = value.strip()
                request = Request(line.split(" ")[1], headers, number)
                self.requests.append(request)
                nth += 1
                data = self.respond(request, nth)
                if data == HOLD:
                    continue
                writer.write(data)
                await writer.drain()
                if b"connection: close" in data.split(b"\r\n\r\n", 1)[0].lower():
                    # A lingering close, as real servers do: FIN first, then drop what
                    # the client already sent, so no RST destroys answers in flight.
                    writer.write_eof()
                    while await reader.read(65536):
                        pass
                    return
        except ConnectionError:
            return
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RawTarget]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            await server.wait_closed()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


# ------------------------------------------------------------------ the channel


class Result(NamedTuple):
    status: int
    headers: RawHeaders
    body: bytes
    error: MirrorFailure | None
    seconds: float


@dataclass
class Calls:
    """The ``done`` callbacks of one test: in the order they were called, and how often."""

    order: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    """Requests whose ``done`` was called more than once (must stay empty)."""

    def send(
        self, pool: UpstreamPool, channel: ShadowChannel, path: str, limit: int = LIMIT
    ) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()

        def answered(
            request: Sent, status: int, fields: Fields, body: bytes, error: Failed, secs: float
        ) -> None:
            if future.done():
                self.extra.append(path)
                return
            self.order.append(path)
            future.set_result(Result(status, list(fields.items()), body, error, secs))

        data = encode(pool, pool.config, "GET", path.encode(), [(b"Host", b"client.example")], b"")
        channel.enqueue(Sent(data, limit, answered))
        return future


class Sent:
    """One GET on the channel (a ``pipeline.Request``), answered to a test's callback."""

    def __init__(self, data: bytes, limit: int, on_answer: pipeline_connection.Answer) -> None:
        self.data = data
        self.limit = limit
        self.sent = time.monotonic()
        self.retried = False
        self.on_answer = on_answer


@asynccontextmanager
async def open_channel(
    url: str, max_connections: int = 16, **config: Any
) -> AsyncIterator[tuple[UpstreamPool, ShadowChannel]]:
    """A channel built the way ``ShadowClient`` builds one; closed with its pool."""
    settings = {"timeout": 5.0, **config}
    pool = UpstreamPool("target", UpstreamConfig(url=url, **settings), asyncio.get_running_loop())
    channel = ShadowChannel(pool, max_connections)
    try:
        yield pool, channel
    finally:
        channel.close()
        pool.close()
        await asyncio.sleep(0)


async def results(*futures: asyncio.Future[Result], within: float = 5.0) -> list[Result]:
    return list(await asyncio.wait_for(asyncio.gather(*futures), within))


async def warm(calls: Calls, pool: UpstreamPool, channel: ShadowChannel) -> None:
    """One answered request: the channel has now seen how fast the target is."""
    (first,) = await results(calls.send(pool, channel, "/warm"))
    assert first.error is None and first.body == b"/warm"


# ------------------------------------------------------------------ pipelining


async def test_gets_sent_in_one_turn_travel_pipelined_on_one_connection() -> None:
    calls = Calls()
    async with RawTarget().running() as target, open_channel(target.url) as (pool, channel):
        await warm(calls, pool, channel)
        assert pipeline.FAST > 0
        paths = [f"/item/{i}" for i in range(20)]
        futures = [calls.send(pool, channel, path) for path in paths]  # one loop turn
        answered = await results(*futures)

    assert [r.error for r in answered] == [None] * 20
    assert [r.status for r in answered] == [200] * 20
    assert [r.body for r in answered] == [p.encode() for p in paths]
    assert calls.order == ["/warm", *paths]  # answered in the order sent
    assert calls.extra == []
    # The warm connection carried the whole burst: one connection, not twenty.
    assert target.connections == 1
    assert target.paths() == ["/warm", *paths]
    assert all(r.headers["x-strangler-shadow"] == "1" for r in target.requests)
    # The target's own Host, not the client's.
    assert {r.headers["host"] for r in target.requests} == {target.url.removeprefix("http://")}


async def test_before_any_answer_requests_are_not_pipelined() -> None:
    """Until the target has proved fast, a request waits behind no other."""
    calls = Calls()
    async with RawTarget().running() as target, open_channel(target.url) as (pool, channel):
        answered = await results(*(calls.send(pool, channel, f"/cold/{i}") for i in range(4)))
    assert [r.body for r in answered] == [f"/cold/{i}".encode() for i in range(4)]
    assert target.connections == 4


async def test_a_busy_proxy_keeps_pipelining_to_a_fast_target() -> None:
    """Our own loop's lag is not the target's: when every turn of the proxy's loop
    takes 100 ms, a fast target's answers wait that long to be read, and still
    count as fast (else a loaded proxy would stop batching just when it most needs to)."""
    calls = Calls()
    async with RawTarget().running() as target, open_channel(target.url) as (pool, channel):
        await warm(calls, pool, channel)
        loop = asyncio.get_running_loop()
        for round_ in range(10):
            futures = [calls.send(pool, channel, f"/busy/{round_}/{i}") for i in range(4)]
            loop.call_soon(time.sleep, 0.1)  # a busy turn right after the write
            answered = await results(*futures)
            assert [r.error for r in answered] == [None] * 4
        assert channel.latency < pipeline.FAST
        assert channel.depth == pipeline.MAX_DEPTH


def slow_app(delay: float, peers: list[int]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peers.append(peername[1] if peername else 0)
        await asyncio.sleep(delay)
        return web.Response(text=request.path)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    return app


async def test_a_slow_target_gets_one_request_per_connection() -> None:
    calls = Calls()
    peers: list[int] = []
    async with (
        serve_app(slow_app(0.5, peers)) as url,
        open_channel(url) as (pool, channel),
    ):
        await warm(calls, pool, channel)  # 0.5 s: the channel now knows the target is slow
        started = time.monotonic()
        answered = await results(*(calls.send(pool, channel, f"/slow/{i}") for i in range(5)))
        took = time.monotonic() - started

    assert [r.body for r in answered] == [f"/slow/{i}".encode() for i in range(5)]
    assert [r.error for r in answered] == [None] * 5
    # Pipelined behind each other they would take 5 x 0.5 s; side by side about 0.5 s.
    assert took < 2.0
    assert len(set(peers[1:])) == 5  # five connections for the five


# ------------------------------------------------------------------ closed connections


def keep_alive_limit(limit: int) -> Answer:
    """Like a server with ``keepalive_requests``: the ``limit``-th answer closes."""

    def respond(request: Request, nth: int) -> bytes:
        return answer(request.path.encode(), close=nth >= limit)

    return respond


async def test_requests_owed_when_the_target_closes_are_asked_again_on_a_new_connection() -> None:
    calls = Calls()
    target = RawTarget(keep_alive_limit(3))
    async with target.running(), open_channel(target.url) as (pool, channel):
        await warm(calls, pool, channel)  # request 1 of connection 1
        paths = [f"/ka/{i}" for i in range(4)]  # 2 and 3 (closes) answered, 2 owed
        answered = await results(*(calls.send(pool, channel, path) for path in paths))
        later = await results(calls.send(pool, channel, "/later"))

    assert [r.error for r in answered] == [None] * 4
    assert [r.body for r in answered] == [p.encode() for p in paths]
    assert later[0].body == b"/later"
    assert calls.extra == []
    assert target.connections >= 2
    # Connection 1 answered three (the third saying close); the owed two went on 2.
    # (The target stops reading a connection it closes, so it records them once.)
    assert [(r.path, r.connection) for r in target.requests[:5]] == [
        ("/warm", 1),
        ("/ka/0", 1),
        ("/ka/1", 1),
        ("/ka/2", 2),
        ("/ka/3", 2),
    ]


async def test_requests_lost_twice_end_in_an_error_each_exactly_once() -> None:
    """A GET is sent once more, not forever: when the second connection closes too,
    what it still owed ends in an error — never silence, never two callbacks."""
    calls = Calls()
    target = RawTarget(keep_alive_limit(2))
    async with target.running(), open_channel(target.url) as (pool, channel):
        await warm(calls, pool, channel)
        paths = [f"/lost/{i}" for i in range(8)]
        answered = await results(*(calls.send(pool, channel, path) for path in paths))

    assert sorted(calls.order) == sorted(["/warm", *paths])
    assert calls.extra == []
    errors = [r.error for r in answered if r.error is not None]
    ok = [r.body for r in answered if r.error is None]
    assert ok and errors
    assert all(error.kind is FailureKind.CONNECT for error in errors)
    assert set(ok) <= {p.encode() for p in paths}
    for result, path in zip(answered, paths, strict=True):
        assert result.error is not None or result.body == path.encode()


async def test_closing_the_channel_ends_requests_in_flight_once() -> None:
    calls = Calls()
    target = RawTarget(lambda request, nth: HOLD)
    async with target.running():
        async with open_channel(target.url) as (pool, channel):
            futures = [calls.send(pool, channel, f"/held/{i}") for i in range(3)]
            deadline = time.monotonic() + 5
            while len(target.requests) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        answered = await results(*futures)
        late = Calls()
        (after,) = await results(late.send(pool, channel, "/after-close"))
    assert [r.error for r in answered] == [CHANNEL_CLOSED] * 3
    assert calls.extra == []
    assert after.error is not None  # a closed channel sends nothing
    assert "/after-close" not in target.paths()


# ------------------------------------------------------------------ failures


async def test_a_target_that_never_answers_times_out() -> None:
    calls = Calls()
    target = RawTarget(lambda request, nth: HOLD)
    async with target.running(), open_channel(target.url, timeout=0.3) as (pool, channel):
        started = time.monotonic()
        answered = await results(*(calls.send(pool, channel, f"/hang/{i}") for i in range(3)))
        took = time.monotonic() - started

    assert all(r.error is not None and r.error.kind is FailureKind.TIMEOUT for r in answered)
    assert took < 4.0
    assert calls.extra == []
    assert len(target.requests) == 3  # they were sent: the wait was for the answer


async def test_a_body_over_the_limit_is_too_large_and_the_next_request_is_answered() -> None:
    def respond(request: Request, nth: int) -> bytes:
        if request.path.startswith("/big"):
            return answer(b"x" * 5000)
        return answer(request.path.encode())

    calls = Calls()
    target = RawTarget(respond)
    async with target.running(), open_channel(target.url) as (pool, channel):
        await warm(calls, pool, channel)
        big, behind = await results(
            calls.send(pool, channel, "/big", limit=1000),
            calls.send(pool, channel, "/behind-big", limit=1000),  # pipelined behind it
        )
        (after,) = await results(calls.send(pool, channel, "/after", limit=1000))
        (fits,) = await results(calls.send(pool, channel, "/big-fits", limit=10_000))

    assert big.error == TOO_LARGE
    assert (behind.error, behind.body) == (None, b"/behind-big")
    assert (after.error, after.status, after.body) == (None, 200, b"/after")
    assert (fits.error, len(fits.body)) == (None, 5000)
    assert calls.extra == []


async def test_answers_too_large_do_not_open_the_circuit() -> None:
    """A big answer is the target working: it must not trip the breaker."""
    calls = Calls()
    target = RawTarget(lambda request, nth: answer(b"x" * 5000))
    circuit = CircuitConfig(failures=2, cooldown=30)
    async with target.running(), open_channel(target.url, circuit=circuit) as (pool, channel):
        for _ in range(5):
            (big,) = await results(calls.send(pool, channel, "/big", limit=1000))
            assert big.error == TOO_LARGE
        (fits,) = await results(calls.send(pool, channel, "/big", limit=LIMIT))
    assert fits.error is None and len(fits.body) == 5000


async def test_a_dead_target_fails_to_connect_then_the_circuit_opens() -> None:
    calls = Calls()
    circuit = CircuitConfig(failures=3, cooldown=30)
    async with open_channel(dead_url(), circuit=circuit) as (pool, channel):
        for i in range(3):
            (failed,) = await results(calls.send(pool, channel, f"/dead/{i}"))
            assert failed.error is not None and failed.error.kind is FailureKind.CONNECT, failed
        future = calls.send(pool, channel, "/dead/open")
        assert future.done()  # no socket, no loop turn: answered inside send()
        error = future.result().error
        assert error == CIRCUIT_OPEN, error
    assert calls.extra == []


async def test_a_malformed_answer_is_an_error_and_the_channel_keeps_working() -> None:
    def respond(request: Request, nth: int) -> bytes:
        if request.path == "/garbage":
            return b"THIS IS NOT HTTP\r\n\r\n"
        return answer(request.path.encode())

    calls = Calls()
    target = RawTarget(respond)
    async with target.running(), open_channel(target.url) as (pool, channel):
        (bad,) = await results(calls.send(pool, channel, "/garbage"))
        (good,) = await results(calls.send(pool, channel, "/fine"))
        await warm(calls, pool, channel)
        # Pipelined: the garbage fails what waits behind it on that connection, once each.
        burst = await results(
            calls.send(pool, channel, "/garbage"), calls.send(pool, channel, "/behind")
        )
        (again,) = await results(calls.send(pool, channel, "/again"))

    assert bad.error is not None and bad.error.kind is FailureKind.MALFORMED, bad
    assert (good.error, good.body) == (None, b"/fine")
    assert all(r.error is not None and r.error.kind is FailureKind.MALFORMED for r in burst)
    assert (again.error, again.body) == (None, b"/again")
    assert calls.extra == []


async def test_chunked_and_interim_answers_are_parsed_in_a_pipelined_burst() -> None:
    def respond(request: Request, nth: int) -> bytes:
        body = request.path.encode()
        if request.path.endswith("/chunked"):
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            return head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        if request.path.endswith("/interim"):
            return b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + answer(body)
        return answer(body)

    calls = Calls()
    target = RawTarget(respond)
    async with target.running(), open_channel(target.url) as (pool, channel):
        await warm(calls, pool, channel)
        paths = ["/1/chunked", "/2/interim", "/3", "/4/chunked", "/5/interim"]
        answered = await results(*(calls.send(pool, channel, path) for path in paths))
    assert [(r.error, r.status, r.body) for r in answered] == [
        (None, 200, p.encode()) for p in paths
    ]
    # The 103's headers are not the answer's.
    assert all(name.lower() != b"link" for r in answered for name, _ in r.headers)
    assert target.connections == 1


async def test_a_repeated_header_keeps_its_first_value_answer_after_answer() -> None:
    def respond(request: Request, nth: int) -> bytes:
        body = request.path.encode()
        head = b"HTTP/1.1 200 OK\r\nX-Tag: first%s\r\nContent-Length: %d\r\n" % (body, len(body))
        return head + b"X-Tag: second\r\nx-tag: third\r\n\r\n" + body

    calls = Calls()
    target = RawTarget(respond)
    async with target.running(), open_channel(target.url) as (pool, channel):
        await warm(calls, pool, channel)
        paths = ["/1", "/2", "/3"]
        answered = await results(*(calls.send(pool, channel, path) for path in paths))
    for path, result in zip(paths, answered, strict=True):
        # What the comparison reads (``headers.get``) is the first value, and no
        # answer's headers leak into the next one's.
        tags = [v for n, v in result.headers if n.lower() == b"x-tag"]
        assert tags[0] == b"first" + path.encode()
        assert b"second" not in tags


async def test_an_answer_delimited_by_close_is_an_answer() -> None:
    calls = Calls()
    target = RawTarget(
        lambda request, nth: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"until-eof"
    )
    async with target.running(), open_channel(target.url) as (pool, channel):
        (result,) = await results(calls.send(pool, channel, "/eof"))
    assert (result.error, result.body) == (None, b"until-eof")


# ------------------------------------------------------------------ through the mirror


async def burst(url: str, n: int, path: str = "/api/customers/{i}") -> list[int]:
    """``n`` client GETs at once through the lab's front."""
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> int:
            headers = {"X-User-Id": str(i)}
            async with session.get(url + path.format(i=i), headers=headers) as resp:
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_a_burst_of_matching_gets_is_counted_once_each(lab: Lab) -> None:
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    assert await burst(url, 50) == [200] * 50
    await drain(mirror)
    assert mirror.in_flight == 0
    data = await lab.store.read("customers")
    assert data.counts["match"] == 50
    assert data.counts["mismatch"] == data.counts["error"] == data.counts["dropped"] == 0
    assert lab.outcomes == [("customers", "match")] * 50
    assert lab.comparisons == [("customers", True)] * 50
    assert sorted(s["path"] for s in lab.new.seen) == sorted(
        f"/api/customers/{i}" for i in range(50)
    )
    assert all(s["headers"]["X-Strangler-Shadow"] == "1" for s in lab.new.seen)


async def test_a_burst_of_differing_gets_is_counted_as_mismatches_with_the_field(
    lab: Lab,
) -> None:
    lab.new.body = lambda r: {"id": r.path.rsplit("/", 1)[-1], "name": "Bob"}
    lab.legacy.body = lambda r: {"id": r.path.rsplit("/", 1)[-1], "name": "Ada"}
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    assert await burst(url, 50) == [200] * 50
    await drain(mirror)
    assert mirror.in_flight == 0
    data = await lab.store.read("customers")
    assert data.counts["mismatch"] == 50 and data.counts["match"] == 0
    assert data.fields == {"body.name": 50}
    assert lab.comparisons == [("customers", False)] * 50


async def test_matches_and_mismatches_mixed_in_one_burst_are_each_counted_once(
    lab: Lab,
) -> None:
    """Byte-identical answers (counted from the callback) and differing ones (compared
    in a task) interleave on the same pipelined connections."""

    def new_body(request: web.Request) -> dict[str, Any]:
        number = int(request.path.rsplit("/", 1)[-1])
        return {"id": number, "name": "Bob" if number % 2 else "Ada"}

    lab.new.body = new_body
    lab.legacy.body = lambda r: {"id": int(r.path.rsplit("/", 1)[-1]), "name": "Ada"}
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    for _ in range(2):
        assert await burst(url, 40) == [200] * 40
    await drain(mirror)
    assert mirror.in_flight == 0
    data = await lab.store.read("customers")
    assert (data.counts["match"], data.counts["mismatch"]) == (40, 40)
    assert data.fields == {"body.name": 40}
    assert sorted(lab.comparisons) == sorted(
        [("customers", True)] * 40 + [("customers", False)] * 40
    )


async def test_a_mirrored_answer_over_max_body_is_skipped(lab: Lab) -> None:
    lab.new.body = lambda r: {"name": "Ada", "blob": "x" * 5000}
    config = route_config(lab.legacy.url, lab.new.url, shadow={"max_body": 1000})
    url, mirror, _ = await lab.start(config)
    assert await burst(url, 5) == [200] * 5
    await drain(mirror)
    assert mirror.in_flight == 0
    data = await lab.store.read("customers")
    assert data.counts["skipped"] == 5
    assert data.counts["error"] == data.counts["match"] == data.counts["mismatch"] == 0


async def test_a_get_encoded_from_the_targets_parts_is_the_general_encoding() -> None:
    """The pipelined lane builds GETs from per-target constant parts; they must be the
    same bytes the general encoder writes (target prefix, Host, marker, no hop-by-hop)."""
    headers: RawHeaders = [
        (b"Host", b"client.example"),
        (b"Accept", b"application/json"),
        (b"Connection", b"keep-alive"),
        (b"X-Strangler-Shadow", b"1"),
        (b"Cookie", b"a=1"),
    ]
    for url in ("http://127.0.0.1:9", "http://svc.internal:8080/base/"):
        config = UpstreamConfig(url=url)
        pool = UpstreamPool("t", config, asyncio.get_running_loop())
        parts = get_parts(pool, config)
        assert parts is not None
        for target in (b"/p", b"/p/q?x=1&y=%20"):
            data = encode_get(parts, target, headers)
            assert data == encode(pool, config, "GET", target, headers, b"")
            assert data.count(b"X-Strangler-Shadow") == 1 and b"keep-alive" not in data
        pool.close()
    # With ``host: client`` the Host is the client's: the general encoder's job.
    client_host = UpstreamConfig(url="http://127.0.0.1:9", host="client")
    pool = UpstreamPool("t", client_host, asyncio.get_running_loop())
    assert get_parts(pool, client_host) is None
    assert b"Host: client.example\r\n" in encode(pool, client_host, "GET", b"/", headers, b"")
    pool.close()


async def test_a_target_that_drops_pipelined_requests_gets_one_per_connection() -> None:
    """A server that answers the first request on a connection and closes it without
    saying so (no ``Connection: close``) cannot take pipelining: after a few such
    closes the channel stops batching, and from then on every GET is answered."""
    connections = 0

    async def first_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(head.split(b" ")[1]))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(first_only, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    calls = Calls()
    try:
        async with open_channel(url) as (pool, channel):
            await warm(calls, pool, channel)
            for round_ in range(pipeline.STRIKES):  # batches of 4: 1 answered, 3 owed
                await results(*(calls.send(pool, channel, f"/r{round_}/{i}") for i in range(4)))
            assert channel.depth == 1
            later = await results(*(calls.send(pool, channel, f"/late/{i}") for i in range(8)))
            assert [r.error for r in later] == [None] * 8
            assert [r.body for r in later] == [f"/late/{i}".encode() for i in range(8)]
    finally:
        server.close()
        await server.wait_closed()
    assert calls.extra == []
