"""Kafka source and sink for the decision flow, on confluent-kafka.

Source: the topic partitions are dealt into a fixed number of groups (by default one per
worker), each read by one assigned consumer (no consumer group: offsets live in Bytewax's
recovery store, so a restart resumes from the last snapshot). Each poll is one
non-blocking `consume(n, 0)` over all of a group's partitions; only a group that came back
empty waits, through `next_awake`, for `idle_poll_ms`, so an idle flow does not spin.

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


class _InputPartition(StatefulSourcePartition[RawRecord, dict[str, int]]):
    """Read a fixed group of topic partitions with one consumer."""

    def __init__(
        self,
        config: dict[str, Any],
        parts: list[tuple[str, int]],
        resume: dict[str, int] | None,
        default_start: int,
        batch_size: int,
        idle: timedelta,
        input_names: Mapping[str, str],
    ) -> None:
        self._consumer = Consumer(config)
        self._batch_size = batch_size
        self._idle = idle
        resume = resume or {}
        # "<partition>-<topic>" -> next offset to read (negative: a logical start).
        self._next: dict[str, int] = {}
        assign = []
        for topic, p in parts:
            key = f"{p}-{topic}"
            start = resume.get(key, default_start)
            self._next[key] = start
            assign.append(TopicPartition(topic, p, start))
        self._consumer.assign(assign)
        self._tps = [TopicPartition(topic, p) for topic, p in parts]
        self._awake: datetime | None = None
        self._read = {topic: EVENTS_READ.labels(input_names.get(topic, topic)) for topic, _p in parts}
        self._lag = {f"{p}-{topic}": CONSUMER_LAG.labels(topic, str(p)) for topic, p in parts}
        self._next_lag = 0.0
        for _ in parts:
            HEALTH.assigned_partition()
        self._parts = len(parts)

    def next_batch(self) -> list[RawRecord]:
        HEALTH.beat()
        # One non-blocking call for every partition of the group: no per-partition waits.
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
        nxt = self._next
        for m in msgs:
            err = m.error()
            topic = m.topic() or ""
            part = m.partition() or 0
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
            nxt[f"{part}-{topic}"] = offset + 1
        if out:
            if len(self._read) == 1:
                next(iter(self._read.values())).inc(len(out))
            else:
                counts: dict[str, int] = {}
                for r in out:
                    counts[r.topic] = counts.get(r.topic, 0) + 1
                for topic, n in counts.items():
                    self._read[topic].inc(n)
            if HEALTH.error is not None:
                HEALTH.recovered()
        return out

    def _update_lag(self) -> None:
        # Cached: the high watermark arrives with every fetch response, no extra request.
        for tp in self._tps:
            key = f"{tp.partition}-{tp.topic}"
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            nxt = self._next[key]
            if high >= 0 and nxt >= 0:
                self._lag[key].set(max(0, high - nxt))

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> dict[str, int]:
        state = {}
        positions = None
        for tp in self._tps:
            key = f"{tp.partition}-{tp.topic}"
            nxt = self._next[key]
            if nxt < 0:
                # Nothing read yet from a logical start (beginning/end): save the real
                # position, or a restart from "end" would skip what was produced meanwhile.
                if positions is None:
                    positions = {(p.topic, p.partition): p.offset for p in self._consumer.position(self._tps)}
                pos = positions.get((tp.topic, tp.partition), -1)
                if pos < 0:
                    low, high = self._consumer.get_watermark_offsets(tp, timeout=5.0)
                    pos = high if nxt == OFFSET_END else low
                nxt = int(pos)
            state[key] = nxt
        return state

    def close(self) -> None:
        for _ in range(self._parts):
            HEALTH.released_partition()
        self._consumer.close()


class KafkaInput(FixedPartitionedSource[RawRecord, dict[str, int]]):
    """Read every partition of the input topics as raw records.

    The topic partitions are dealt round-robin into `groups` fixed source partitions, one
    consumer each: one `consume` call serves all of a group's partitions (a consumer per
    topic partition meant a call, a batch through the flow and a fetch session per
    partition). The state of a group is the next offset of each of its partitions. The
    part names carry the group count, so a store written with another count is not
    resumed into the wrong partitions: its partitions start per `from_end` instead.
    """

    def __init__(
        self,
        config: Mapping[str, str],
        topics: Iterable[str],
        *,
        groups: int = 1,
        from_end: bool = False,
        batch_size: int = 1000,
        idle_poll_ms: float = 1.0,
        input_names: Mapping[str, str] | None = None,
    ) -> None:
        self.config = dict(config)
        self.topics = list(topics)
        self.groups = max(1, groups)
        self.from_end = from_end
        self.batch_size = batch_size
        self.idle = timedelta(milliseconds=idle_poll_ms)
        self.input_names = dict(input_names or {})
        self._members: dict[str, list[tuple[str, int]]] | None = None

    def _group_members(self) -> dict[str, list[tuple[str, int]]]:
        if self._members is None:
            members: dict[str, list[tuple[str, int]]] = {f"{g}-of-{self.groups}": [] for g in range(self.groups)}
            for i, part in enumerate(list_partitions(self.config, self.topics)):
                idx, topic = part.split("-", 1)
                members[f"{i % self.groups}-of-{self.groups}"].append((topic, int(idx)))
            self._members = members
        return self._members

    def list_parts(self) -> list[str]:
        """List the source partitions: `<group>-of-<groups>`."""
        return list(self._group_members())

    def build_part(self, step_id: str, for_part: str, resume_state: dict[str, int] | None) -> _InputPartition:
        """Open one consumer on the group's topic partitions at their resumed offsets."""
        conf: dict[str, Any] = {
            # Offsets live in the recovery store; the group id is only required by librdkafka.
            "group.id": "stockguard-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        conf.update(self.config)
        start = OFFSET_END if self.from_end else OFFSET_BEGINNING
        return _InputPartition(
            conf,
            self._group_members()[for_part],
            resume_state,
            start,
            self.batch_size,
            self.idle,
            self.input_names,
        )


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
