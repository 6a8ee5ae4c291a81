"""The access log: one JSON line per request, to stdout or a file (``access_log:``).

:meth:`AccessLog.line` is called from the exchange's one ``finish`` (and for the
requests the proxy refuses before routing); it formats the line with
``%``-formatting and the C string escaper of :mod:`json` — no dict, no
``json.dumps`` per request — and appends it to a buffer. The buffer is written
with ``os.write`` at most every ``FLUSH_EVERY`` seconds, or at once past
``FLUSH_SIZE`` bytes, so the request path does one list append per request and
no I/O. Lines are appended to the file (``O_APPEND``: ``logrotate``'s
``copytruncate`` works); a write error is logged once and the lines dropped,
never raised into an answer.

Fields: ``time`` (UTC, ms), ``request_id``, ``method``, ``path`` (as routed),
``route`` (or ``-``), ``mode`` (the route's effective mode, or ``-``), ``decision``
(the upstream routing chose), ``upstream`` (who answered, after any fallback),
``status``, ``duration_ms``, ``bytes_in`` (request body), ``bytes_out`` (bytes
written to the client), ``fallback``, ``shadow`` (``mirrored`` when a copy went
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
FLUSH_SIZE = 64 * 1024

_LINE = (
    '{"time":"%s.%03dZ","request_id":"%s","method":"%s","path":%s,"route":%s,'
    '"mode":"%s","decision":%s,"upstream":%s,"status":%d,"duration_ms":%.3f,'
    '"bytes_in":%d,"bytes_out":%d,"fallback":%s,"shadow":%s}\n'
)


class AccessLog:
    """Buffered JSON lines to ``target``: ``-`` (or ``stdout``) or a file path."""

    def __init__(self, target: str, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.loop = loop
        if target in ("-", "stdout"):
            self._fd = os.dup(1)
        else:
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
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
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        text = _LINE % (
            self._stamp,
            int((now - second) * 1000),
            request_id.decode("latin-1"),
            method,
            quote(path),
            quote(route) if route is not None else '"-"',
            mode,
            quote(decision),
            quote(upstream),
            status,
            duration * 1000.0,
            bytes_in,
            bytes_out,
            "true" if fallback else "false",
            '"mirrored"' if mirrored else "null",
        )
        self._lines.append(text)
        self._size += len(text)
        if self._size > FLUSH_SIZE:
            self.flush()
        elif self._timer is None:
            self._timer = self.loop.call_later(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """Write what is buffered (called by the timer, past FLUSH_SIZE, and at close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        data = "".join(self._lines).encode("latin-1", "replace")
        self._lines = []
        self._size = 0
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.error("access log %s: cannot write (%s); lines dropped", self.target, exc)

    def close(self) -> None:
        self.flush()
        os.close(self._fd)
