"""Where a CDC run's CPU goes: CPU seconds per kind of process or thread, from /proc.

The worker's threads are told apart by their names: the JVM's just-in-time compiler
(``C1``/``C2 CompilerThread``), its garbage collector (``GC``/``G1`` threads), Debezium's
connector thread (``debezium-postgresconnector-...``: decoding the replication stream),
the engine's pools (``pool-N-thread-M``: converting records to JSON, and the thread that
hands each batch to Python and parses it), and the Python threads (``python3``: the sink
and the asyncio helpers). PostgreSQL's processes by their title: walsenders, the
backends of each database, background workers. A process that ends between two samples
keeps the CPU of its last sample. Linux only.

    split = CpuSplit(worker_pid=None)      # samples every 0.3 s on a daemon thread
    split.worker_pid = pid                 # once the worker runs
    mark = split.mark()
    ...
    split.since(mark)                      # {"worker:jvm:jit": 7.7, "pg:walsender": 1.5, ...}
"""

from __future__ import annotations

import os
import threading
import time

_TICK = os.sysconf("SC_CLK_TCK")
Sample = dict[tuple[str, int], tuple[str, float]]


def _stat(path: str) -> tuple[str, float] | None:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    end = text.rfind(")")
    fields = text[end + 2 :].split()
    return text[text.find("(") + 1 : end], (int(fields[11]) + int(fields[12])) / _TICK


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _thread_kind(comm: str, main: bool) -> str:
    if comm.startswith(("python", "strangler")):
        return "worker:py:" + ("main" if main else "threads")
    if "GC" in comm or comm.startswith("G1"):
        return "worker:jvm:gc"
    if "CompilerThre" in comm:
        return "worker:jvm:jit"
    if comm.startswith("debezium-postg"):
        return "worker:jvm:connector"
    return "worker:jvm:" + comm


def _process_kind(pid: int, comm: str) -> str:
    title = _title(pid)
    if title.startswith("postgres:"):
        if "walsender" in title:
            return "pg:walsender"
        if "logical replication" in title:
            return "pg:native_apply"
        words = title.split()
        # "postgres: <user> <database> <client> <state>"
        return f"pg:backend:{words[2]}" if len(words) > 3 and "(" in words[3] else "pg:other"
    return "pgbench" if comm == "pgbench" else "other"


def sample(worker_pid: int | None) -> Sample:
    out: Sample = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == worker_pid:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                found = _stat(f"/proc/{pid}/task/{tid}/stat")
                if found is not None:
                    out[("t", int(tid))] = (_thread_kind(found[0], int(tid) == pid), found[1])
            continue
        found = _stat(f"/proc/{pid}/stat")
        if found is not None:
            out[("p", pid)] = (_process_kind(pid, found[0]), found[1])
    return out


class CpuSplit(threading.Thread):
    def __init__(self, worker_pid: int | None = None, every: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.worker_pid = worker_pid
        self._every = every
        self._last: Sample = {}
        self._lock = threading.Lock()
        self.start()

    def run(self) -> None:
        while True:
            now = sample(self.worker_pid)
            with self._lock:
                self._last.update(now)
            time.sleep(self._every)

    def mark(self) -> Sample:
        while not self._last:  # the first sample is the zero point
            time.sleep(0.05)
        with self._lock:
            return dict(self._last)

    def since(self, mark: Sample) -> dict[str, float]:
        """CPU seconds per kind since ``mark``, largest first."""
        time.sleep(self._every * 1.5)
        with self._lock:
            now = dict(self._last)
        out: dict[str, float] = {}
        for key, (kind, cpu) in now.items():
            used = cpu - mark.get(key, (kind, 0.0))[1]
            if used > 0:
                out[kind] = out.get(kind, 0.0) + used
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.05}
