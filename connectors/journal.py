"""Read the decision journal back from our own output topics after a restart.

The Kafka sink writes each decision with a `stockguard-source` header: the position
(`topic/partition/offset`) of the trigger it decides. On a restart each decision
partition asks for what it emitted since its snapshot; this reads the approved, suppressed
and retracted topics from that time (less a margin for clocks) up to their high
watermarks, once per process, and hands each partition its share (see `state.journal`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from stockguard.config.settings import Settings
from stockguard.connectors.metrics import JOURNAL_RECORDS
from stockguard.state.decision import partition_of
from stockguard.state.journal import PartitionJournal, recorded_from_message

__all__ = ["SOURCE_HEADER", "KafkaJournal"]

log = logging.getLogger(__name__)

SOURCE_HEADER = "stockguard-source"
# Producer timestamps are wall clocks of possibly other hosts: read from a little earlier.
_MARGIN_MS = 60_000


class KafkaJournal:
    """Give each decision partition the decisions and retractions it emitted since a time."""

    def __init__(self, config: Mapping[str, str], settings: Settings, store_created_ms: int) -> None:
        self.config = dict(config)
        t = settings.topics
        self.decision_topics = (t.approved, t.suppressed)
        self.retracted_topic = t.retracted
        self.partitions = settings.decision_partitions
        self.tolerance_s = settings.kafka.outage_tolerance / 1000
        # A partition with no snapshot of its own reads from the latest snapshot seen in
        # this process (the resume epoch is no older), else from the store's creation.
        self.store_created_ms = store_created_ms
        self._latest_snapshot_ms: int | None = None
        self._lock = threading.Lock()
        self._since: int | None = None
        self._cache: dict[int, PartitionJournal] = {}
        self._read_ms = 0

    def __call__(self, index: int, snapshot_ms: int | None) -> PartitionJournal | None:
        """Return the journal of one decision partition (once), or None when it is empty."""
        with self._lock:
            if snapshot_ms is not None:
                if self._latest_snapshot_ms is None or snapshot_ms > self._latest_snapshot_ms:
                    self._latest_snapshot_ms = snapshot_ms
                since = snapshot_ms
            else:
                since = self._latest_snapshot_ms if self._latest_snapshot_ms is not None else self.store_created_ms
            since -= _MARGIN_MS
            if self._since is None or since < self._since:
                # One read serves every partition of the process; an earlier start reads again.
                started = time.monotonic()
                self._cache = self.read(since)
                self._since = since
                self._read_ms = round((time.monotonic() - started) * 1000)
            journal = self._cache.pop(index, None)
        if journal is not None and len(journal):
            log.info(
                "decision journal read back",
                extra={
                    "sg_partition": index,
                    "sg_decisions": sum(len(d) for d in journal.decisions.values()),
                    "sg_retractions": len(journal.retracted),
                    "sg_read_ms": self._read_ms,
                },
            )
            return journal
        return None

    def read(self, since_ms: int) -> dict[int, PartitionJournal]:
        """Read every partition's journal from `since_ms` to the current end of the topics."""
        deadline = time.monotonic() + self.tolerance_s
        while True:
            try:
                return self._read(since_ms)
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"cannot read the decision journal from Kafka at {self.config.get('bootstrap.servers')}: "
                        f"{exc.args[0].str() if exc.args else exc}"
                    ) from None
                log.warning("decision journal: Kafka not reachable, retrying: %s", exc)
                time.sleep(1.0)

    def _read(self, since_ms: int) -> dict[int, PartitionJournal]:
        conf: dict[str, Any] = {
            "group.id": "stockguard-journal-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
        }
        conf.update(self.config)
        consumer = Consumer(conf)
        try:
            topics = (*self.decision_topics, self.retracted_topic)
            md = consumer.list_topics(timeout=10)
            tps: list[TopicPartition] = []
            for topic in topics:
                tmd = md.topics.get(topic)
                if tmd is None or tmd.error is not None:
                    continue
                tps.extend(TopicPartition(topic, p, max(0, since_ms)) for p in sorted(tmd.partitions))
            if not tps:
                return {}
            starts = consumer.offsets_for_times(tps, timeout=10)
            ends: dict[tuple[str, int], int] = {}
            assign = []
            for tp in starts:
                if tp.error is not None:
                    raise KafkaException(tp.error)
                if tp.offset < 0:
                    continue  # nothing at or after `since` in this partition
                _low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
                if high > tp.offset:
                    ends[(tp.topic, tp.partition)] = high
                    assign.append(TopicPartition(tp.topic, tp.partition, tp.offset))
            journals: dict[int, PartitionJournal] = {}
            if not assign:
                return journals
            consumer.assign(assign)
            left = dict(ends)
            while left:
                for m in consumer.consume(1000, 1.0):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(err)
                    key = (m.topic() or "", m.partition() or 0)
                    self._add(m, journals)
                    offset = m.offset() or 0
                    if key in left and offset + 1 >= left[key]:
                        del left[key]
            return journals
        finally:
            consumer.close()

    def _add(self, m: Any, journals: dict[int, PartitionJournal]) -> None:
        raw_key = m.key()
        value = m.value()
        if raw_key is None or value is None:
            return
        index = partition_of(raw_key.decode("utf-8", errors="backslashreplace"), self.partitions)
        try:
            msg = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if m.topic() == self.retracted_topic:
            tid = msg.get("trigger_id") if type(msg) is dict else None
            ts = msg.get("ts") if type(msg) is dict else None
            if type(tid) is str and type(ts) is int:
                journals.setdefault(index, PartitionJournal()).add_retraction(tid, ts)
                JOURNAL_RECORDS.labels("retraction").inc()
            return
        position = None
        for name, data in m.headers() or ():
            if name == SOURCE_HEADER and data is not None:
                position = data.decode("utf-8", errors="backslashreplace")
        recorded = recorded_from_message(msg)
        if position is None or recorded is None:
            return
        journals.setdefault(index, PartitionJournal()).add_decision(position, recorded)
        JOURNAL_RECORDS.labels("decision").inc()
