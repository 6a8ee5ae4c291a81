"""The access log: one JSON line per request, to stdout or a file (``access_log:``).

:meth:`AccessLog.line` is called from the exchange's one ``finish`` (and for the
requests the proxy refuses before routing). Lines are f-strings with the C
string escaper of :mod:`json` (names quoted once and cached) — no dict, no
``json.dumps`` per request. The request path only appends a tuple; lines are
formatted and written with ``os.write`` together, at most every ``FLUSH_EVERY``
seconds or every ``FLUSH_LINES`` requests, so there is no I/O per request. Lines
are appended to the file (``O_APPEND``: ``logrotate``'s ``copytruncate`` works);
a write error is logged once and the lines dropped, never raised into an answer.

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
from json.encoder import encode_basestring_ascii as quote

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.2
FLUSH_LINES = 512
_DASH = '"-"'
_MIRRORED = '"mirrored"'


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


Entry = tuple[float, bytes, str, str, str | None, str, str, str, int, float, int, int, bool, bool]


class AccessLog:
    """Buffered JSON lines to ``target``: ``-`` (or ``stdout``) or a file path."""

    def __init__(self, target: str, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.loop = loop
        if target in ("-", "stdout"):
            self._fd = os.dup(1)
        else:
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._entries: list[Entry] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tails: dict[tuple[str, str | None, str, str, str, bool, bool], str] = {}
        self._second = -1
        self._stamp = ""
        self._failed = False

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
        """One request: kept as a tuple here, formatted with the others at the flush."""
        entries = self._entries
        entries.append(
            (
                time.time(),
                request_id,
                method,
                path,
                route,
                mode,
                decision,
                upstream,
                status,
                duration,
                bytes_in,
                bytes_out,
                fallback,
                mirrored,
            )
        )
        if len(entries) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = self.loop.call_later(FLUSH_EVERY, self.flush)

    def _format(self, entry: Entry) -> str:
        now = entry[0]
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # What repeats across requests (method, route, mode, decision, upstream,
        # fallback, shadow) is one cached string.
        key = (entry[2], entry[4], entry[5], entry[6], entry[7], entry[12], entry[13])
        tail = self._tails.get(key)
        if tail is None:
            if len(self._tails) > 4096:
                self._tails.clear()
            tail = self._tails[key] = _tail(*key)
        return (
            f'{{"time":"{self._stamp}.{int((now - second) * 1000):03d}Z",'
            f'"request_id":"{entry[1].decode("latin-1")}","path":{quote(entry[3])},'
            f'"status":{entry[8]},"duration_us":{int(entry[9] * 1e6)},'
            f'"bytes_in":{entry[10]},"bytes_out":{entry[11]},{tail}'
        )

    def flush(self) -> None:
        """Write what is buffered (called by the timer, past FLUSH_LINES, and at close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        entries = self._entries
        if not entries:
            return
        self._entries = []
        try:
            data = "".join([self._format(e) for e in entries]).encode("latin-1", "replace")
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except Exception as exc:  # never into an answer: flush runs inside finish too
            if not self._failed:
                self._failed = True
                log.error("access log %s: cannot write (%r); lines dropped", self.target, exc)

    def close(self) -> None:
        self.flush()
        os.close(self._fd)
