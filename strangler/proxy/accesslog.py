"""The access log: one JSON line per request, to stdout or a file (``access_log:``).

:meth:`AccessLog.line` is called from the exchange's one ``finish`` (and for the
requests the proxy refuses before routing). It formats the line there, one
f-string: the part that repeats across requests (method, route, mode, decision,
upstream, fallback, shadow) is one cached string (the last one reused while the
same objects come: no key to hash for a run of requests to one route), the
time's second is formatted once a second, its milliseconds and numbers below
1,000 come from tables, strings go through the C escaper of :mod:`json` (so a
line is ASCII), and the request id (checked to be a token by the parser) needs
none. No dict and no ``json.dumps`` per request, and a line is a string, which
the garbage collector never visits, rather than a tuple of the request's values
kept for later. Lines are written together with ``os.write``, at most every
``FLUSH_EVERY`` seconds or every ``FLUSH_LINES`` requests, whole and in order,
and at close; no I/O per request. The file is opened for appending
(``O_APPEND``: ``logrotate``'s ``copytruncate`` works), and each write first checks
whether the path still names the open file: a log moved away (``logrotate``'s
default ``create``) or deleted is reopened at the path, with no signal needed. A
write error is logged once and the lines dropped, never raised into an answer.
The cost is measured in ``bench/proxy.py --access-log`` and
``bench/shadow_instructions.py --access-log`` (bench/RESULTS.md).

Fields: ``time`` (UTC, ms), ``request_id``, ``method``, ``path`` (as routed),
``route`` (or ``-``), ``mode`` (the route's effective mode, or ``-``), ``decision``
(the upstream routing chose), ``upstream`` (who answered, after any fallback),
``status``, ``duration_us`` (microseconds), ``bytes_in`` (request body),
``bytes_out`` (bytes written to the client), ``fallback``, ``shadow`` (``mirrored`` when a copy went
to the shadow pipeline, else null; the comparison's outcome is in the shadow API).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from json.encoder import encode_basestring_ascii
from typing import Final

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.2
FLUSH_LINES = 2048
quote: Final = encode_basestring_ascii
_DASH = '"-"'
_MIRRORED = '"mirrored"'
_MS: Final = [f"{ms:03d}" for ms in range(1000)]
"""Milliseconds as the three digits of a line's time."""
_NUMBERS: Final = [str(n) for n in range(1000)]
"""0 to 999 as text, made once: statuses, small sizes."""
TailKey = tuple[str, str | None, str, str, str, bool, bool]
"""What repeats across requests: method, route, mode, decision, upstream, fallback, shadow."""
_NO_TAIL: Final[TailKey] = ("", None, "", "", "", False, False)


def _num(n: int) -> str:
    return _NUMBERS[n] if 0 <= n < 1000 else str(n)


def _tail(
    method: str,
    route: str | None,
    mode: str,
    decision: str,
    upstream: str,
    fallback: bool,
    mirrored: bool,
) -> str:
    route_q = quote(route) if route is not None else _DASH
    shadow = _MIRRORED if mirrored else "null"
    return (
        f'"method":{quote(method)},"route":{route_q},'
        f'"mode":{quote(mode)},"decision":{quote(decision)},"upstream":{quote(upstream)},'
        f'"fallback":{"true" if fallback else "false"},"shadow":{shadow}}}\n'
    )


class AccessLog:
    """Buffered JSON lines to ``target``: ``-`` (or ``stdout``) or a file path."""

    def __init__(self, target: str, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.loop = loop
        self._path: str | None = None if target in ("-", "stdout") else target
        self._fd = os.dup(1) if self._path is None else self._open(self._path)
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tails: dict[TailKey, str] = {}
        self._last: TailKey = _NO_TAIL
        """The key of the last line's tail, which is ``_last_tail``: a run of requests
        to one route is matched by identity, without hashing a key."""
        self._last_tail = ""
        self._clock = time.time
        self._second = -1
        self._stamp = ""
        self._failed = False

    @staticmethod
    def _open(path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(
        self,
        request_id: bytes,
        method: str,
        path: str,
        route: str | None,
        mode: str,
        decision: str,
        upstream: str,
        status: int,
        duration: float,
        bytes_in: int,
        bytes_out: int,
        fallback: bool,
        mirrored: bool,
    ) -> None:
        """One request's line, buffered until the next flush."""
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime('{"time":"%Y-%m-%dT%H:%M:%S.', time.gmtime(second))
        last = self._last
        if (
            method is last[0]
            and route is last[1]
            and mode is last[2]
            and decision is last[3]
            and upstream is last[4]
            and fallback == last[5]
            and mirrored == last[6]
        ):
            tail = self._last_tail
        else:
            tail = self._tail((method, route, mode, decision, upstream, fallback, mirrored))
        lines = self._lines
        lines.append(
            f'{self._stamp}{_MS[int((now - second) * 1000)]}Z",'
            f'"request_id":"{request_id.decode("latin-1")}","path":{quote(path)},'
            f'"status":{_num(status)},"duration_us":{_num(int(duration * 1e6))},'
            f'"bytes_in":{_num(bytes_in)},"bytes_out":{_num(bytes_out)},{tail}'
        )
        if len(lines) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = self.loop.call_later(FLUSH_EVERY, self.flush)

    def _tail(self, key: TailKey) -> str:
        """The cached tail for ``key`` (made on first use), now also the last one."""
        tail = self._tails.get(key)
        if tail is None:
            if len(self._tails) > 4096:
                self._tails.clear()
            tail = self._tails[key] = _tail(*key)
        self._last = key
        self._last_tail = tail
        return tail

    def flush(self) -> None:
        """Write what is buffered (called by the timer, past FLUSH_LINES, and at close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines = self._lines
        if not lines:
            return
        self._lines = []
        try:
            self._follow()
            data = "".join(lines).encode()  # ASCII: quote() escapes the rest
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except Exception as exc:  # never into an answer: flush runs inside finish too
            if not self._failed:
                self._failed = True
                log.error("access log %s: cannot write (%r); lines dropped", self.target, exc)

    def _follow(self) -> None:
        """Reopen the file at its path when the open one was moved away or deleted."""
        path = self._path
        if path is None:
            return
        try:
            named = os.stat(path)
        except FileNotFoundError:
            named = None
        opened = os.fstat(self._fd)
        if named is None or (named.st_ino, named.st_dev) != (opened.st_ino, opened.st_dev):
            fd = self._open(path)
            os.close(self._fd)
            self._fd = fd

    def close(self) -> None:
        self.flush()
        os.close(self._fd)
