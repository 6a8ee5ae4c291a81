"""The ``kafka`` source: Debezium topics read by a kafka-python consumer group.

The production path: Debezium (Kafka Connect) writes the monolith's changes to
topics; any number of workers share them through one consumer group, scaling out by
partitions (Debezium keys records by primary key, so one row stays in one partition
and keeps its order).

Resume points are the target's: on start and on every rebalance, each assigned
partition is sought to the next offset stored in the target database with the rows
(``"topic/partition" -> offset``); a partition the target has never seen starts from
``start`` (earliest by default) — the group's committed offset is never trusted over
the target. After the target commit the offsets are also committed to the group, so
lag tooling sees progress.

kafka-python is blocking and not thread-safe, so the consumer lives on one dedicated
thread and every call to it goes through that thread. Nothing here is specific to a
broker; nothing here writes to a target.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError
from pydantic import Field, field_validator, model_validator

from strangler.errors import SyncError
from strangler.schema import Section
from strangler.sync.envelope import TypeRegistry
from strangler.sync.model import ChangeEvent
from strangler.sync.poison import Poison, parse_or_poison
from strangler.sync.source import Batch, ResumeLookup
from strangler.sync_config import SourceConfig, SyncConfig

log = logging.getLogger("strangler.sync")

_T = TypeVar("_T")


class KafkaOptions(Section):
    """``options:`` of a ``kind: kafka`` source."""

    bootstrap_servers: str | tuple[str, ...]
    """``host:port`` (or a list) of the Kafka brokers."""
    topics: tuple[str, ...] = ()
    """Debezium topics, e.g. ``monolith.public.customer``."""
    topic_pattern: str | None = None
    """A regular expression of topics (instead of ``topics``)."""
    group_id: str | None = None
    """Consumer group (default ``strangler-<source name>``)."""
    start: Literal["earliest", "latest"] = "earliest"
    """Where a partition the target has no offset for begins."""
    poll_timeout_ms: int = Field(500, ge=10, le=5000)
    session_timeout_ms: int = Field(10_000, ge=1000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    max_poll_interval_ms: int = Field(300_000, ge=1000)
    """Kept short in tests: a group waits up to this long for a vanished member."""
    consumer: dict[str, Any] = {}
    """Extra ``KafkaConsumer`` arguments (security, SASL, client_id, ...)."""

    @field_validator("topic_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_way(self) -> KafkaOptions:
        if bool(self.topics) == (self.topic_pattern is not None):
            raise ValueError("give exactly one of topics or topic_pattern")
        return self


def partition_key(topic: str, partition: int) -> str:
    """How a partition's offset is named in the target: ``topic/partition``."""
    return f"{topic}/{partition}"


class KafkaSource:
    """See the module docstring."""

    def __init__(
        self, name: str, options: KafkaOptions, *, types: TypeRegistry | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.types = types or {}
        self.skipped = 0
        """Records that were not change events we could read (handed on as poison)."""
        self.assigned: frozenset[str] = frozenset()
        """``topic/partition`` this member currently holds (empty until it joined)."""
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{name}")
        self._consumer: Any = None
        self._resume: ResumeLookup = dict

    # --------------------------------------------------------------- protocol

    async def start(self, resume: ResumeLookup) -> None:
        self._resume = resume
        if self._consumer is None:
            await self._call(self._open)

    async def next_batch(self, max_events: int) -> Batch | None:
        return await self._call(lambda: self._poll(max_events))

    async def ack(self, batch: Batch) -> None:
        if batch.offsets:
            await self._call(lambda: self._commit(batch.offsets))

    async def close(self) -> None:
        if self._consumer is not None:
            await self._call(self._close)
        # A fresh thread for a later start(); the consumer is gone, so nothing is lost.
        old, self._thread = self._thread, ThreadPoolExecutor(1, thread_name_prefix=self.name)
        old.shutdown(wait=False)

    # -------------------------------------------- on the consumer's own thread

    async def _call(self, work: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _open(self) -> None:

        opts = self.options
        servers = (
            [opts.bootstrap_servers]
            if isinstance(opts.bootstrap_servers, str)
            else list(opts.bootstrap_servers)
        )
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=servers,
                group_id=opts.group_id or f"strangler-{self.name}",
                enable_auto_commit=False,
                auto_offset_reset=opts.start,
                session_timeout_ms=opts.session_timeout_ms,
                heartbeat_interval_ms=opts.heartbeat_interval_ms,
                max_poll_interval_ms=opts.max_poll_interval_ms,
                **opts.consumer,
            )
        except KafkaError as exc:
            raise SyncError(
                f"kafka source {self.name}: cannot connect to {servers}: {exc}"
            ) from exc
        listener = _SeekToTarget(self, consumer)
        if opts.topic_pattern is not None:
            consumer.subscribe(pattern=opts.topic_pattern, listener=listener)
        else:
            consumer.subscribe(topics=list(opts.topics), listener=listener)
        self._consumer = consumer

    def _poll(self, max_events: int) -> Batch | None:

        try:
            polled = self._consumer.poll(
                timeout_ms=self.options.poll_timeout_ms, max_records=max_events
            )
        except KafkaError as exc:
            raise SyncError(f"kafka source {self.name}: {exc}") from exc
        if not polled:
            return None
        events: list[ChangeEvent] = []
        poison: list[Poison] = []
        offsets: dict[str, int] = {}
        for tp, records in polled.items():
            for record in records:
                where = f"{partition_key(record.topic, record.partition)}@{record.offset}"
                parsed = parse_or_poison(
                    record.value,
                    record.key,
                    source=self.name,
                    location=where,
                    types=self.types,
                    headers=record.headers or None,
                )
                if isinstance(parsed, Poison):
                    # Not a change we can order: dead-lettered with these offsets, loudly.
                    self.skipped += 1
                    poison.append(parsed)
                    log.error("source %s: poison record %s: %s", self.name, where, parsed.error)
                elif parsed is not None:
                    events.append(parsed)
            offsets[partition_key(tp.topic, tp.partition)] = records[-1].offset + 1
        return Batch(events, offsets, poison)

    def _commit(self, offsets: Mapping[str, int]) -> None:

        mine = self._consumer.assignment()
        commit = {}
        for key, offset in offsets.items():
            topic, _, partition = key.rpartition("/")
            tp = TopicPartition(topic, int(partition))
            if tp in mine:
                commit[tp] = OffsetAndMetadata(offset, "", -1)
        if not commit:
            return
        try:
            self._consumer.commit(commit)
        except KafkaError as exc:
            # The target already holds these offsets; the group's copy is only for lag tools.
            log.warning("source %s: group offset commit failed (harmless): %s", self.name, exc)

    def _seek(self, consumer: Any, partitions: Sequence[Any]) -> None:
        self.assigned = self.assigned | {partition_key(t.topic, t.partition) for t in partitions}
        if not partitions:
            return
        stored = self._resume()
        fresh = []
        for tp in partitions:
            offset = stored.get(partition_key(tp.topic, tp.partition))
            if offset is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, offset)
        if fresh and self.options.start == "earliest":
            consumer.seek_to_beginning(*fresh)
        elif fresh:
            consumer.seek_to_end(*fresh)
        log.info(
            "source %s: assigned %s",
            self.name,
            sorted(f"{t.topic}/{t.partition}" for t in partitions),
        )

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:
            consumer.close(autocommit=False)
        except Exception as exc:  # closing is best effort: the target holds the truth
            log.debug("closing kafka consumer: %s", exc)


class _SeekToTarget(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance listener: newly assigned partitions resume where the target says."""

    def __init__(self, source: KafkaSource, consumer: Any) -> None:
        self.source = source
        self.consumer = consumer

    def on_partitions_revoked(self, revoked: Any) -> None:
        # Batches are applied and acknowledged before the next poll, so nothing of a
        # revoked partition is in flight here.
        gone = {partition_key(tp.topic, tp.partition) for tp in revoked}
        self.source.assigned = self.source.assigned - gone

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.source._seek(self.consumer, list(assigned))


def build(
    config: SourceConfig,
    *,
    sync: SyncConfig,
    base_dir: Path | None = None,
    types: TypeRegistry | None = None,
) -> KafkaSource:
    """The worker's factory for ``kind: kafka`` (see ``sync_config.SOURCE_KINDS``)."""
    try:
        options = KafkaOptions.model_validate(dict(config.options))
    except ValueError as exc:
        raise SyncError(f"kafka source {config.name}: {exc}") from exc
    return KafkaSource(config.name, options, types=types)
