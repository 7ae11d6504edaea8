"""Kafka source and sink for the decision flow, on confluent-kafka.

Source: the topic partitions are dealt into a fixed number of groups (by default one per
worker), each read by one assigned consumer (no consumer group: offsets live in Bytewax's
recovery store, so a restart resumes from the last snapshot). Each poll is one
non-blocking `consume(n, 0)` over all of a group's partitions; only a group that came back
empty waits, through `next_awake`, for `idle_poll_ms`, so an idle flow does not spin.

Behind (after a restart or an outage), a group hands its partitions' messages over in
timestamp order (`connectors.ordering`), so the backlogs of stock, orders and triggers are
decided in the interleaving they were produced in, not one partition's fetch after another.

Sink: one idempotent producer per sink partition, a delivery callback on every message,
`poll(0)` per batch to serve callbacks, and a `flush` at each snapshot (end of epoch), so
an epoch is only committed to the recovery store once its outputs are acknowledged
(at-least-once). Decisions carry the position of their trigger as a header (the journal
read back after a restart). A message Kafka refuses as too large goes to the DLQ; one that
cannot be delivered at all fails the flow with `DeliveryError` naming the broker: it is
never logged and dropped.

Outages: a probe asks the brokers for metadata every two seconds and drives readiness and
`stockguard_kafka_up`. Sources keep polling (librdkafka reconnects), a snapshot never
needs the broker, and the sink's snapshot waits for acknowledgements while the broker is
away. Past `kafka.outage_tolerance` the sources raise and the process exits non-zero.
SIGTERM/SIGINT (`STOP`) end every source's stream: the flow drains and exits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
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

from stockguard.config.settings import Settings
from stockguard.connectors.health import HEALTH, STOP, Health
from stockguard.connectors.journal import SOURCE_HEADER
from stockguard.connectors.metrics import CONSUMER_LAG, DELIVERY_FAILURES, EVENTS_READ, KAFKA_UP
from stockguard.connectors.ordering import TimestampMerger
from stockguard.flows.encoding import Encoder, wall_clock_ms
from stockguard.flows.framing import frame_messages
from stockguard.flows.records import OutRecord, RawRecord

log = logging.getLogger(__name__)

__all__ = ["DeliveryError", "KafkaInput", "KafkaOutput", "KafkaProbe", "list_partitions"]

# Product state first, triggers last: within one millisecond, the stock a trigger was
# produced after is the likelier order (ties cannot be told apart across partitions).
TOPIC_RANK = {"products": 0, "campaigns": 1, "stock": 2, "orders": 3, "clickstream": 4, "triggers": 5}


def _error_text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else None
    return arg.str() if isinstance(arg, KafkaError) else str(exc)


class _RateLimitedLog:
    """Log a recurring warning at most once per interval, with the count since."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.next = 0.0
        self.suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self.next:
            self.suppressed += 1
            return
        self.next = now + self.interval_s
        if self.suppressed:
            log.warning(msg + " (and %d more since)", *args, self.suppressed)
        else:
            log.warning(msg, *args)
        self.suppressed = 0


class DeliveryError(RuntimeError):
    """Raised when Kafka did not acknowledge an output message: the flow must stop."""


def list_partitions(
    config: Mapping[str, str], topics: Iterable[str], timeout: float = 10.0, tolerance_s: float = 0.0
) -> list[str]:
    """List `<partition>-<topic>` for every partition of the topics.

    While the brokers do not answer, retry for up to `tolerance_s` seconds.
    """
    admin = AdminClient(dict[str, str | int | float | bool](config))
    deadline = time.monotonic() + tolerance_s
    parts: list[str] = []
    for topic in topics:
        while True:
            try:
                md = admin.list_topics(topic, timeout=timeout)
                break
            except KafkaException as exc:
                HEALTH.kafka_ok(False, f"metadata: {_error_text(exc)}")
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"Kafka at {config.get('bootstrap.servers')} did not answer for the partitions "
                        f"of {topic!r}: {_error_text(exc)}"
                    ) from None
                log.warning("kafka metadata not available yet (retrying): %s", _error_text(exc))
                time.sleep(1.0)
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
        merge_wait_s: float = 0.0,
        merge_buffer: int = 5000,
    ) -> None:
        self._consumer = Consumer(config)
        self._batch_size = batch_size
        self._idle = idle
        resume = resume or {}
        # "<partition>-<topic>" -> next offset to hand over (negative: a logical start).
        self._next: dict[str, int] = {}
        # "<partition>-<topic>" -> next offset to fetch (ahead of _next while ordering).
        self._fetched: dict[str, int] = {}
        assign = []
        for topic, p in parts:
            key = f"{p}-{topic}"
            start = resume.get(key, default_start)
            self._next[key] = start
            self._fetched[key] = start
            assign.append(TopicPartition(topic, p, start))
        self._consumer.assign(assign)
        self._tps = [TopicPartition(topic, p) for topic, p in parts]
        self._tp_of = {f"{tp.partition}-{tp.topic}": tp for tp in self._tps}
        self._awake: datetime | None = None
        self._read = {topic: EVENTS_READ.labels(input_names.get(topic, topic)) for topic, _p in parts}
        self._lag = {f"{p}-{topic}": CONSUMER_LAG.labels(topic, str(p)) for topic, p in parts}
        self._next_lag = 0.0
        self._errors = _RateLimitedLog()
        # Ordering only matters across partitions.
        self._merger: TimestampMerger | None = None
        if merge_wait_s > 0 and len(parts) > 1:
            rank = {topic: TOPIC_RANK.get(input_names.get(topic, ""), 99) for topic, _p in parts}
            self._merger = TimestampMerger(self._next, rank, merge_wait_s, merge_buffer)
        self._paused: set[str] = set()
        for _ in parts:
            HEALTH.assigned_partition()
        self._parts = len(parts)

    def next_batch(self) -> list[RawRecord]:
        HEALTH.beat()
        if STOP.is_set():
            # SIGTERM/SIGINT: end the stream; what was handed over is drained and snapshot.
            raise StopIteration
        if HEALTH.fatal is not None:
            raise RuntimeError(HEALTH.fatal)
        # One non-blocking call for every partition of the group: no per-partition waits.
        msgs = self._consumer.consume(self._batch_size, 0)
        now = time.monotonic()
        if now >= self._next_lag:
            self._next_lag = now + 2.0
            self._update_lag()
        merger = self._merger
        if not msgs and (merger is None or not merger.held):
            self._awake = datetime.now(UTC) + self._idle
            return []
        out: list[RawRecord] = []
        # The per-message framing is compiled (flows.framing); errors are rare and handled here.
        for m in frame_messages(msgs, self._fetched, out):
            err = m.error()
            topic = m.topic() or ""
            part = m.partition() or 0
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            if err.fatal():
                HEALTH.kafka_ok(False, f"consume {topic}[{part}]: {err.str()}")
                raise RuntimeError(f"fatal error consuming Kafka topic {topic!r} partition {part}: {err}")
            # Broker restarts, transport errors: librdkafka retries; the probe says not ready.
            HEALTH.kafka_ok(False, f"consume {topic}[{part}]: {err.str()}")
            self._errors.warning("kafka consumer error (retrying): %s", err.str())
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
        if merger is not None:
            for r in out:
                merger.add(f"{r.partition}-{r.topic}", r)
            out = merger.take(self._lagging, now)
            self._pace(merger)
        nxt = self._next
        for r in out:
            nxt[f"{r.partition}-{r.topic}"] = r.offset + 1
        if not out:
            self._awake = datetime.now(UTC) + self._idle
            return []
        self._awake = None
        return out

    def _lagging(self, key: str) -> bool:
        """Tell whether a partition has messages not fetched yet (unknown counts as yes)."""
        _low, high = self._consumer.get_watermark_offsets(self._tp_of[key], cached=True)
        nxt = self._fetched[key]
        return high < 0 or nxt < 0 or high > nxt

    def _pace(self, merger: TimestampMerger) -> None:
        """Pause partitions whose buffer is full, resume them once it has drained."""
        for key in self._next:
            if key in self._paused:
                if len(merger.buffers[key]) <= merger.cap // 2:
                    self._paused.discard(key)
                    self._consumer.resume([self._tp_of[key]])
            elif merger.full(key):
                self._paused.add(key)
                self._consumer.pause([self._tp_of[key]])

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
        # No broker call here: a snapshot during an outage must not fail. A partition not
        # read yet keeps its logical start, or the cached end when starting from the end
        # (a restart from "end" would skip what was produced meanwhile).
        state = {}
        for key, nxt in self._next.items():
            if nxt == OFFSET_END:
                _low, high = self._consumer.get_watermark_offsets(self._tp_of[key], cached=True)
                if high >= 0:
                    nxt = int(high)
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
        merge_wait_ms: float = 0.0,
        merge_buffer: int = 5000,
        outage_tolerance_s: float = 0.0,
    ) -> None:
        self.config = dict(config)
        self.merge_wait_s = merge_wait_ms / 1000
        self.merge_buffer = merge_buffer
        self.outage_tolerance_s = outage_tolerance_s
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
            parts = list_partitions(self.config, self.topics, tolerance_s=self.outage_tolerance_s)
            for i, part in enumerate(parts):
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
            self.merge_wait_s,
            self.merge_buffer,
        )


class _OutputPartition(StatefulSinkPartition[OutRecord, None]):
    def __init__(self, config: dict[str, Any], flush_timeout: float, encoder: Encoder, health: Health) -> None:
        self._producer = Producer(config)
        self._servers = config.get("bootstrap.servers", "?")
        self._flush_timeout = flush_timeout
        self._encoder = encoder
        self._health = health
        self._failures: list[str] = []
        # Records Kafka refused as too large, to send to the DLQ instead.
        self._refused: list[OutRecord] = []
        # Raise once: Bytewax aborts the process if close() raises again while unwinding.
        self._raised = False
        self.delivered = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
            return
        topic = msg.topic()
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE and topic != self._encoder.t.dlq:
            # The topic's own limit is below ours: the message cannot ever be delivered.
            key = msg.key()
            self._refused.append(self._too_large(topic, key.decode() if key else None, msg.value() or b"", err.str()))
            return
        DELIVERY_FAILURES.inc()
        self._failures.append(f"{topic}: {err}")

    def _too_large(self, topic: str, key: str | None, value: bytes, why: str) -> OutRecord:
        return self._encoder.dead_letter(
            topic, None, None, key, value, f"output: Kafka refused {len(value):,} bytes as too large ({why})"
        )

    def _check(self) -> None:
        if self._refused:
            refused, self._refused = self._refused, []
            self._produce(refused)
        if self._failures and not self._raised:
            self._raised = True
            first = self._failures[0]
            n = len(self._failures)
            raise DeliveryError(f"{n} message(s) could not be delivered to Kafka at {self._servers}; first: {first}")

    def _produce(self, items: list[OutRecord]) -> None:
        produce = self._producer.produce
        cb = self._on_delivery
        for r in items:
            while True:
                try:
                    if r.source is None:
                        produce(r.topic, r.value, r.key, on_delivery=cb)
                    else:
                        produce(r.topic, r.value, r.key, on_delivery=cb, headers=[(SOURCE_HEADER, r.source)])
                    break
                except BufferError:
                    # The local queue is full (an outage fills it): serve callbacks until
                    # there is room, and tell the health checks the loop is alive.
                    self._health.beat()
                    self._producer.poll(0.05)
                    self._check()
                    self._fatal()
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    if isinstance(err, KafkaError) and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                        if r.topic == self._encoder.t.dlq:
                            DELIVERY_FAILURES.inc()
                            log.error("a dead-letter record of %d bytes is too large for Kafka: dropped", len(r.value))
                            break
                        r = self._too_large(r.topic, r.key, r.value, err.str())
                        continue
                    raise

    def _fatal(self) -> None:
        if self._health.fatal is not None and not self._raised:
            self._raised = True
            raise DeliveryError(self._health.fatal)

    def write_batch(self, items: list[OutRecord]) -> None:
        self._produce(items)
        self._producer.poll(0)
        self._check()

    def snapshot(self) -> None:
        # Wait for every acknowledgement: through an outage too (librdkafka retries until
        # message.timeout.ms, set past the outage tolerance), beating so the process is
        # seen alive, failing only on a delivery error or past the tolerance.
        reachable_wait = 0.0
        while True:
            started = time.monotonic()
            left = self._producer.flush(1.0)
            self._check()
            if not left and not self._refused:
                return
            self._health.beat()
            self._fatal()
            if self._health.kafka_reachable:
                # Only time with the broker answering counts against flush_timeout.
                reachable_wait += time.monotonic() - started
                if reachable_wait > self._flush_timeout and not self._raised:
                    self._raised = True
                    raise DeliveryError(
                        f"{left} message(s) not acknowledged by Kafka at {self._servers} "
                        f"after {reachable_wait:.1f} s while it answered"
                    )

    def close(self) -> None:
        # The last epoch's snapshot already flushed and checked; after a failure the
        # flow is unwinding and must not raise again.
        if not self._raised:
            self._producer.flush(self._flush_timeout)
            if self._failures or len(self._producer):
                log.error("kafka sink closed with %d undelivered message(s)", len(self._failures) + len(self._producer))


class KafkaOutput(FixedPartitionedSink[OutRecord, None]):
    """Produce output records to their topics, keyed per the contract."""

    def __init__(
        self,
        config: Mapping[str, str],
        parts: int = 1,
        flush_timeout: float = 30.0,
        settings: Settings | None = None,
        outage_tolerance_s: float = 0.0,
    ) -> None:
        self.config = dict(config)
        self.parts = parts
        self.flush_timeout = flush_timeout
        self.settings = settings or Settings()
        self.outage_tolerance_s = outage_tolerance_s

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
            # Keep retrying through an outage the flow rides out; then fail, never drop.
            "message.timeout.ms": int((self.outage_tolerance_s + self.flush_timeout) * 1000),
            "message.max.bytes": self.settings.kafka.max_message_bytes,
        }
        conf.update(self.config)
        return _OutputPartition(conf, self.flush_timeout, Encoder(self.settings, wall_clock_ms), HEALTH)


class KafkaProbe:
    """Ask the brokers for metadata every few seconds: readiness, a metric, log lines.

    Past `tolerance_s` without an answer, `Health.fatal` is set: sources and sinks raise
    and the process exits non-zero with a message naming the brokers.
    """

    def __init__(
        self,
        config: Mapping[str, str],
        tolerance_s: float,
        interval_s: float = 2.0,
        health: Health = HEALTH,
        clock: Callable[[], float] = time.monotonic,
        topic: str | None = None,
    ) -> None:
        self.admin = AdminClient(dict[str, str | int | float | bool](config))
        self.topic = topic  # one that exists (ours): asking for a missing one may create it
        self.servers = config.get("bootstrap.servers", "?")
        self.tolerance_s = tolerance_s
        self.interval_s = interval_s
        self.health = health
        self.clock = clock
        self.down_since: float | None = None
        self._stop = threading.Event()

    def check(self) -> bool:
        """Probe once; update health, the metric and the log on every transition."""
        try:
            # Metadata of one topic of ours, not of the whole cluster: the answer for every
            # topic is built into Python objects while holding the GIL, 24-80 ms each probe
            # on a broker with 1,755 topics, measured as the gateway's and the flow's
            # latency tail. (DescribeCluster needs Kafka 2.8 and the mock cluster lacks it.)
            self.admin.list_topics(self.topic, timeout=self.interval_s)
        except KafkaException as exc:
            return self._down(_error_text(exc))
        if self.down_since is not None:
            log.warning(
                "kafka reachable again",
                extra={"sg_brokers": self.servers, "sg_outage_s": round(self.clock() - self.down_since, 1)},
            )
            self.down_since = None
        self.health.kafka_ok(True)
        KAFKA_UP.set(1)
        return True

    def _down(self, why: str) -> bool:
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
            log.warning("kafka unreachable: riding through", extra={"sg_brokers": self.servers, "sg_error": why})
        self.health.kafka_ok(False, f"kafka unreachable: {why}")
        KAFKA_UP.set(0)
        down = now - self.down_since
        if down > self.tolerance_s and self.health.fatal is None:
            self.health.fatal = (
                f"Kafka at {self.servers} unreachable for {down:.0f} s, more than kafka.outage_tolerance "
                f"({self.tolerance_s:.0f} s): {why}"
            )
            log.error(self.health.fatal)
        return False

    def start(self) -> KafkaProbe:
        """Probe from a daemon thread until `stop`."""

        def loop() -> None:
            while not self._stop.is_set():
                started = self.clock()
                self.check()
                self._stop.wait(max(0.0, self.interval_s - (self.clock() - started)))

        threading.Thread(target=loop, name="stockguard-kafka-probe", daemon=True).start()
        return self

    def stop(self) -> None:
        """End the probe thread."""
        self._stop.set()
