"""Kafka source and sink for the decision flow, on confluent-kafka.

Source: one assigned consumer per topic partition (no consumer group: offsets live in
Bytewax's recovery store, so a restart resumes from the last snapshot). Each poll is
non-blocking (`consume(n, 0)`); only a partition that came back empty waits, through
`next_awake`, for `idle_poll_ms`, so an idle partition never delays a busy one and an idle
flow does not spin.

Sink: one idempotent producer per sink partition, a delivery callback on every message,
`poll(0)` per batch to serve callbacks, and a `flush` at each snapshot (end of epoch), so
an epoch is only committed to the recovery store once its outputs are acknowledged
(at-least-once). A message that cannot be delivered fails the flow with `DeliveryError`:
it is never logged and dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from connectors.health import HEALTH
from connectors.metrics import CONSUMER_LAG, DELIVERY_FAILURES, EVENTS_READ
from flows.records import OutRecord, RawRecord

log = logging.getLogger(__name__)

__all__ = ["DeliveryError", "KafkaInput", "KafkaOutput", "list_partitions"]


class DeliveryError(RuntimeError):
    """Raised when Kafka did not acknowledge an output message: the flow must stop."""


def list_partitions(config: Mapping[str, str], topics: Iterable[str], timeout: float = 10.0) -> list[str]:
    """List `<partition>-<topic>` for every partition of the topics."""
    admin = AdminClient(dict[str, str | int | float | bool](config))
    parts: list[str] = []
    for topic in topics:
        try:
            md = admin.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            HEALTH.kafka_ok(False, f"metadata: {exc.args[0].str() if exc.args else exc}")
            raise
        tmd = md.topics[topic]
        if tmd.error is not None:
            HEALTH.kafka_ok(False, f"topic {topic}: {tmd.error.str()}")
            raise RuntimeError(f"cannot list partitions of Kafka topic {topic!r}: {tmd.error.str()}")
        parts.extend(f"{i}-{topic}" for i in sorted(tmd.partitions))
    HEALTH.kafka_ok(True)
    return parts


class _InputPartition(StatefulSourcePartition[RawRecord, int]):
    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        partition: int,
        start: int,
        batch_size: int,
        idle: timedelta,
        input_name: str,
    ) -> None:
        self._consumer = Consumer(config)
        self._topic = topic
        self._partition = partition
        self._tp = TopicPartition(topic, partition)
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self._batch_size = batch_size
        self._idle = idle
        self._next_offset = start
        self._awake: datetime | None = None
        self._read = EVENTS_READ.labels(input_name)
        self._lag = CONSUMER_LAG.labels(topic, str(partition))
        self._next_lag = 0.0
        HEALTH.assigned_partition()

    def next_batch(self) -> list[RawRecord]:
        HEALTH.beat()
        msgs = self._consumer.consume(self._batch_size, 0)
        now = time.monotonic()
        if now >= self._next_lag:
            self._next_lag = now + 2.0
            self._update_lag()
        if not msgs:
            self._awake = datetime.now(UTC) + self._idle
            return []
        self._awake = None
        out = []
        topic, part = self._topic, self._partition
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    HEALTH.kafka_ok(False, f"consume {topic}[{part}]: {err.str()}")
                    raise RuntimeError(f"fatal error consuming Kafka topic {topic!r} partition {part}: {err}")
                # Broker restarts, transport errors: librdkafka retries; stay up, say not ready.
                HEALTH.kafka_ok(False, f"consume {topic}[{part}]: {err.str()}")
                log.warning("kafka consumer error (retrying): %s", err.str())
                continue
            ts_type, ts = m.timestamp()
            offset = m.offset() or 0
            out.append(RawRecord(topic, m.key(), m.value(), part, offset, ts if ts_type else None))
            self._next_offset = offset + 1
        if out:
            self._read.inc(len(out))
            if HEALTH.error is not None:
                HEALTH.recovered()
        return out

    def _update_lag(self) -> None:
        # Cached: the high watermark arrives with every fetch response, no extra request.
        _low, high = self._consumer.get_watermark_offsets(self._tp, cached=True)
        if high >= 0 and self._next_offset >= 0:
            self._lag.set(max(0, high - self._next_offset))

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        if self._next_offset < 0:
            # Nothing read yet from a logical start (beginning/end): save the real position,
            # or a restart from "end" would skip what was produced in between.
            pos = self._consumer.position([self._tp])[0].offset
            if pos >= 0:
                return int(pos)
            low, high = self._consumer.get_watermark_offsets(self._tp, timeout=5.0)
            return int(high if self._next_offset == OFFSET_END else low)
        return self._next_offset

    def close(self) -> None:
        HEALTH.released_partition()
        self._consumer.close()


class KafkaInput(FixedPartitionedSource[RawRecord, int]):
    """Read every partition of the input topics as raw records."""

    def __init__(
        self,
        config: Mapping[str, str],
        topics: Iterable[str],
        *,
        from_end: bool = False,
        batch_size: int = 1000,
        idle_poll_ms: float = 1.0,
        input_names: Mapping[str, str] | None = None,
    ) -> None:
        self.config = dict(config)
        self.topics = list(topics)
        self.from_end = from_end
        self.batch_size = batch_size
        self.idle = timedelta(milliseconds=idle_poll_ms)
        self.input_names = dict(input_names or {})

    def list_parts(self) -> list[str]:
        """List every partition of every input topic (any worker can read any)."""
        return list_partitions(self.config, self.topics)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _InputPartition:
        """Open a consumer on one partition at its resumed offset."""
        idx, topic = for_part.split("-", 1)
        conf: dict[str, Any] = {
            # Offsets live in the recovery store; the group id is only required by librdkafka.
            "group.id": "stockguard-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        conf.update(self.config)
        if resume_state is not None:
            start = resume_state
        else:
            start = OFFSET_END if self.from_end else OFFSET_BEGINNING
        name = self.input_names.get(topic, topic)
        return _InputPartition(conf, topic, int(idx), start, self.batch_size, self.idle, name)


class _OutputPartition(StatefulSinkPartition[OutRecord, None]):
    def __init__(self, config: dict[str, Any], flush_timeout: float) -> None:
        self._producer = Producer(config)
        self._flush_timeout = flush_timeout
        self._failures: list[str] = []
        # Raise once: Bytewax aborts the process if close() raises again while unwinding.
        self._raised = False
        self.delivered = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            DELIVERY_FAILURES.inc()
            self._failures.append(f"{msg.topic()}: {err}")
        else:
            self.delivered += 1

    def _check(self) -> None:
        if self._failures and not self._raised:
            self._raised = True
            first = self._failures[0]
            n = len(self._failures)
            raise DeliveryError(f"{n} message(s) could not be delivered to Kafka; first: {first}")

    def write_batch(self, items: list[OutRecord]) -> None:
        produce = self._producer.produce
        cb = self._on_delivery
        for r in items:
            while True:
                try:
                    produce(r.topic, r.value, r.key, on_delivery=cb)
                    break
                except BufferError:
                    # The local queue is full: serve callbacks until there is room.
                    self._producer.poll(0.05)
                    self._check()
        self._producer.poll(0)
        self._check()

    def snapshot(self) -> None:
        start = time.monotonic()
        left = self._producer.flush(self._flush_timeout)
        self._check()
        if left and not self._raised:
            self._raised = True
            waited = time.monotonic() - start
            raise DeliveryError(f"{left} message(s) not acknowledged by Kafka after {waited:.1f} s")

    def close(self) -> None:
        # The last epoch's snapshot already flushed and checked; after a failure the
        # flow is unwinding and must not raise again.
        if not self._raised:
            self._producer.flush(self._flush_timeout)
            if self._failures or len(self._producer):
                log.error("kafka sink closed with %d undelivered message(s)", len(self._failures) + len(self._producer))


class KafkaOutput(FixedPartitionedSink[OutRecord, None]):
    """Produce output records to their topics, keyed per the contract."""

    def __init__(self, config: Mapping[str, str], parts: int = 1, flush_timeout: float = 30.0) -> None:
        self.config = dict(config)
        self.parts = parts
        self.flush_timeout = flush_timeout

    def list_parts(self) -> list[str]:
        """List the producer partitions; Bytewax spreads them over workers."""
        return [f"producer-{i}" for i in range(self.parts)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _OutputPartition:
        """Open an idempotent producer with delivery reports."""
        conf: dict[str, Any] = {
            # Ordered, duplicate-free retries; acks from all in-sync replicas.
            "enable.idempotence": True,
            "acks": "all",
            # No lingering: a decision is sent as soon as its batch is handed over (the
            # batch of one Bytewax activation already goes out as one request).
            "linger.ms": 0,
            "compression.type": "lz4",
        }
        conf.update(self.config)
        return _OutputPartition(conf, self.flush_timeout)
