"""The deliverer's Kafka edges: a consumer group and the delivery DLQ producer.

The consumer commits only what was delivered. Both run their librdkafka calls on one
thread of their own, so the event loop never blocks on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

__all__ = ["DlqOut", "Incoming", "KafkaDlq", "KafkaIncoming", "MemoryDlq", "MemorySource", "Source"]

log = logging.getLogger(__name__)

TP = tuple[str, int]


class Incoming(NamedTuple):
    """One message read for delivery."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


class Source(Protocol):
    """Where a deliverer reads from and commits to."""

    async def poll(self, n: int, timeout: float) -> list[Incoming]:
        """Return up to `n` messages, waiting at most `timeout` seconds for the first."""
        ...

    async def commit(self, offsets: dict[TP, int], wait: bool = True) -> None:
        """Commit the next offset to read per partition (`wait`: until the broker confirmed)."""
        ...

    def revoked(self) -> list[TP]:
        """Return (and forget) the partitions taken from this consumer since the last call."""
        ...

    async def lag(self) -> dict[str, int]:
        """Return messages not yet read per topic (high watermark minus position)."""
        ...

    async def close(self) -> None:
        """Leave the group."""
        ...


class DlqOut(Protocol):
    """Where what no vendor will take goes."""

    async def put(self, records: Sequence[tuple[str | None, bytes]]) -> None:
        """Store the records; raise when they could not be stored."""
        ...


def _commit_failed(err: KafkaError | None, _parts: list[TopicPartition]) -> None:
    """Log a commit that did not wait and failed (the next commit of the partition covers it)."""
    if err is not None:
        log.warning("commit failed, the messages may be redelivered: %s", err.str())


class KafkaIncoming:
    """A consumer group on the deliverer's topics; no auto-commit."""

    def __init__(self, conf: dict[str, str], group: str, topics: Sequence[str]) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="deliver-consumer")
        self._revoked: list[TP] = []
        self._c = Consumer(
            {
                **conf,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                # The flow produces with idempotence; no transactions to wait for.
                "isolation.level": "read_uncommitted",
                "fetch.wait.max.ms": 5,
                # A deliverer killed -9 holds its partitions until its session times out:
                # 10 s (not Kafka's 45 s) before a restarted or other member takes over.
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 3_000,
                # Topics created after the deliverer started are found within 10 s.
                "topic.metadata.refresh.interval.ms": 10_000,
                "on_commit": _commit_failed,
            }
        )
        self._c.subscribe(list(topics), on_revoke=self._on_revoke, on_lost=self._on_revoke)

    def _on_revoke(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        self._revoked.extend((p.topic, p.partition) for p in parts)

    def _poll(self, n: int, timeout: float) -> list[Incoming]:
        # What is there now, or else the first message to come and what came with it:
        # `consume(n, timeout)` alone waits for n messages or the whole timeout, which put
        # 50 ms on every decision below 10,000 a second (bench/deliver_bench.py).
        got = self._c.consume(n, 0)
        if not got:
            first = self._c.poll(timeout)
            if first is not None:
                got = [first, *self._c.consume(n - 1, 0)] if n > 1 else [first]
        out = []
        for m in got:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", err.str())
                continue
            ts_type, ts = m.timestamp()
            out.append(
                Incoming(
                    m.topic() or "", m.partition() or 0, m.offset() or 0, m.key(), m.value(), ts if ts_type else None
                )
            )
        return out

    async def poll(self, n: int, timeout: float) -> list[Incoming]:
        """Consume on the consumer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._poll, n, timeout)

    def _commit(self, offsets: dict[TP, int], wait: bool) -> None:
        parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        if wait:
            self._c.commit(offsets=parts, asynchronous=False)
        else:
            self._c.commit(offsets=parts, asynchronous=True)

    async def commit(self, offsets: dict[TP, int], wait: bool = True) -> None:
        """Commit on the consumer's thread (a partition lost meanwhile is skipped).

        Not waiting saves the broker's round trip (7-9 ms a batch, measured) on the way to
        the next batch; a commit lost in a crash only redelivers what the vendor's dedup key
        or our record makes harmless. The last commit of a stop waits.
        """
        if not offsets:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._commit, offsets, wait)
        except KafkaException as exc:
            # A rebalance took a partition: its new owner redelivers from the last commit.
            log.warning("commit failed, the messages will be redelivered: %s", exc.args[0].str())

    def revoked(self) -> list[TP]:
        """Return the partitions revoked since the last call."""
        out, self._revoked = self._revoked, []
        return out

    def _lag(self) -> dict[str, int]:
        lag: dict[str, int] = {}
        assigned = self._c.assignment()
        if not assigned:
            return lag
        for tp in self._c.position(assigned):
            _low, high = self._c.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0:
                continue
            pos = tp.offset if tp.offset >= 0 else high
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - pos)
        return lag

    async def lag(self) -> dict[str, int]:
        """Return the read lag per topic from cached watermarks."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._lag)

    async def close(self) -> None:
        """Leave the group (offsets were committed as deliveries finished)."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._c.close)
        self._pool.shutdown(wait=False)


class KafkaDlq:
    """Produce delivery DLQ records and wait for Kafka to take them."""

    def __init__(self, conf: dict[str, str], topic: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="deliver-dlq")
        self._p = Producer({**conf, "enable.idempotence": True, "linger.ms": 1})
        self._topic = topic

    def _put(self, records: Sequence[tuple[str | None, bytes]]) -> None:
        errors: list[str] = []

        def report(err: KafkaError | None, _m: Message) -> None:
            if err is not None:
                errors.append(err.str())

        for key, value in records:
            self._p.produce(self._topic, value, key.encode() if key else None, on_delivery=report)
        left = self._p.flush(30)
        if left or errors:
            raise RuntimeError(f"delivery DLQ not acknowledged: {errors[:1] or [f'{left} left']}")

    async def put(self, records: Sequence[tuple[str | None, bytes]]) -> None:
        """Produce and flush on the producer's thread."""
        if records:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._put, records)


class MemorySource:
    """Messages from a list, commits remembered (tests, benchmarks)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self.committed: dict[TP, int] = {}
        self.lost: list[TP] = []
        self._offsets: dict[TP, int] = {}

    def add(self, topic: str, value: bytes, key: bytes | None = None, partition: int = 0) -> Incoming:
        """Append a message; return it with its offset."""
        offset = self._offsets.get((topic, partition), 0)
        self._offsets[(topic, partition)] = offset + 1
        m = Incoming(topic, partition, offset, key, value, int(time.time() * 1000))
        self.queue.put_nowait(m)
        return m

    async def poll(self, n: int, timeout: float) -> list[Incoming]:
        """Return what is queued, waiting up to `timeout` for the first."""
        out: list[Incoming] = []
        try:
            out.append(await asyncio.wait_for(self.queue.get(), timeout))
        except TimeoutError:
            return out
        while len(out) < n and not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    async def commit(self, offsets: dict[TP, int], wait: bool = True) -> None:
        """Remember the commits."""
        self.committed.update(offsets)

    def revoked(self) -> list[TP]:
        """Return the partitions marked lost."""
        out, self.lost = self.lost, []
        return out

    async def lag(self) -> dict[str, int]:
        """Return the queued count under one name."""
        return {"memory": self.queue.qsize()}

    async def close(self) -> None:
        """Nothing to close."""


class MemoryDlq:
    """Delivery DLQ records in a list."""

    def __init__(self) -> None:
        self.records: list[tuple[str | None, bytes]] = []

    async def put(self, records: Sequence[tuple[str | None, bytes]]) -> None:
        """Keep them."""
        self.records.extend(records)
