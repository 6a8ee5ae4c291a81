"""A relay for tests, benchmarks and demos: Debezium embedded -> Kafka topics.

In production Debezium runs in Kafka Connect and writes the topics itself; this relay
stands in for it on a laptop or in CI (no Connect cluster needed). It runs the same
embedded engine as the ``debezium`` source and produces each record unchanged (JSON
key and value, tombstones as null values) to the topic Debezium names
(``<topic.prefix>.<schema>.<table>``), keyed by the record key so one row stays in
one partition, exactly as Connect does. Records without a key (truncates) go to every
partition: each partition then sees the truncate after its own earlier changes, so a
consumer never applies a row change that happened before the truncate after it
(Connect gives no such guarantee; see "The sources in detail" in README.md). A batch is marked
processed only after the producer has flushed it, so a restart re-sends at most the
batch in flight.

Never used by the worker; never writes anywhere but the broker.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from strangler.errors import SyncError
from strangler.sync.sources.embedded_engine import EmbeddedEngine, RawRecord

log = logging.getLogger("strangler.sync")


class DebeziumRelay:
    """``start()`` runs Debezium and relays to ``bootstrap``; ``stop()`` (idempotent) ends it."""

    def __init__(
        self,
        properties: Mapping[str, str],
        bootstrap: str,
        *,
        partitions: int = 3,
        log_level: str = "WARN",
    ) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.sent = 0
        """Records produced and flushed so far."""
        self._topics: set[str] = set()
        self._producer: KafkaProducer | None = None
        # As Kafka Connect is set up in README.md: the types travel with the events
        # (the embedded source reads them from the catalog instead; Connect cannot).
        properties = {
            **properties,
            "key.converter.schemas.enable": "true",
            "value.converter.schemas.enable": "true",
        }
        self._engine = EmbeddedEngine(
            properties, self._relay, name=f"relay-{properties.get('name', '')}", log_level=log_level
        )

    @property
    def failure(self) -> str | None:
        return self._engine.failure

    def start(self) -> None:
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, retries=5
            )
        except KafkaError as exc:
            raise SyncError(f"relay: cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        self._engine.start()

    def stop(self) -> None:
        self._engine.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=10)

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create ``topics`` with ``partitions`` partitions if they do not exist yet."""
        missing = [t for t in topics if t not in self._topics]
        if not missing:
            return
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            for topic in missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(
                        [NewTopic(topic, num_partitions=self.partitions, replication_factor=1)]
                    )
                self._topics.add(topic)
        finally:
            admin.close()

    def _relay(self, records: Sequence[RawRecord]) -> None:
        producer = self._producer
        if producer is None:
            raise SyncError("relay is stopped")
        self.ensure_topics(sorted({r.destination for r in records}))
        futures = []
        for r in records:
            value = None if r.value is None else r.value.encode()
            if r.key is None:
                for partition in sorted(producer.partitions_for(r.destination) or {0}):
                    futures.append(producer.send(r.destination, value=value, partition=partition))
            else:
                futures.append(producer.send(r.destination, key=r.key.encode(), value=value))
        producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused a record
        self.sent += len(records)
