"""The grouped Kafka source on librdkafka's mock cluster (fast; the real broker: tests/integration)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Producer

from stockguard.connectors.kafka import KafkaInput
from stockguard.flows.records import RawRecord


@pytest.fixture(scope="module")
def mock_cluster() -> tuple[str, Producer]:
    p = Producer({"test.mock.num.brokers": 1})
    brokers = ",".join(f"{b.host}:{b.port}" for b in p.list_topics(timeout=10).brokers.values())
    return brokers, p


def drain(
    src: KafkaInput, parts: list[str], resume: dict[str, dict[str, int]] | None = None, quiet_s: float = 1.0
) -> tuple[list[RawRecord], dict[str, dict[str, int]]]:
    opened = [src.build_part("read_kafka", part, (resume or {}).get(part)) for part in parts]
    got: list[RawRecord] = []
    deadline = time.monotonic() + 20
    last = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last < quiet_s:
        batch = [r for p in opened for r in p.next_batch()]
        got += batch
        if batch:
            last = time.monotonic()
        time.sleep(0.05)
    snaps = {part: p.snapshot() for part, p in zip(parts, opened, strict=True)}
    for p in opened:
        p.close()
    return got, snaps


def test_groups_split_the_partitions_read_everything_and_resume_at_their_offsets(
    mock_cluster: tuple[str, Producer],
) -> None:
    brokers, producer = mock_cluster
    topics = ["sg-a", "sg-b"]
    for i in range(40):
        producer.produce(topics[i % 2], f"v{i}".encode(), key=str(i).encode())
    producer.flush(10)
    src = KafkaInput({"bootstrap.servers": brokers}, topics, groups=3)
    parts = src.list_parts()
    assert parts == ["0-of-3", "1-of-3", "2-of-3"]
    members = src._group_members()
    dealt = sorted(tp for part in parts for tp in members[part])
    assert len(dealt) == len(set(dealt)) == 8  # the mock cluster makes 4 partitions per topic
    got, snaps = drain(src, parts)
    assert sorted(r.value or b"" for r in got) == sorted(f"v{i}".encode() for i in range(40))
    # A group's state is the next offset of each of its partitions.
    assert sum(sum(s.values()) for s in snaps.values()) == 40
    for i in range(40, 50):
        producer.produce(topics[i % 2], f"v{i}".encode(), key=str(i).encode())
    producer.flush(10)
    again, _ = drain(KafkaInput({"bootstrap.servers": brokers}, topics, groups=3), parts, snaps)
    assert sorted(r.value or b"" for r in again) == sorted(f"v{i}".encode() for i in range(40, 50))


def test_a_backlog_of_several_topics_is_handed_over_in_timestamp_order(mock_cluster: tuple[str, Producer]) -> None:
    brokers, producer = mock_cluster
    topics = ["sg-stock", "sg-trig"]
    base = 1_764_547_200_000
    # Produced interleaved, by time: each topic's backlog would otherwise come in one piece.
    for i in range(200):
        topic = topics[i % 2]
        producer.produce(topic, f"{i}".encode(), key=str(i % 7).encode(), timestamp=base + i)
    producer.flush(10)
    names = {"sg-stock": "stock", "sg-trig": "triggers"}
    src = KafkaInput({"bootstrap.servers": brokers}, topics, groups=1, input_names=names, merge_wait_ms=2000)
    # Quiet for longer than the merge wait: the source holds a topic's records back while
    # it waits for the other's (seen flaky when the drain gave up after 1 s of quiet).
    got, snaps = drain(src, src.list_parts(), quiet_s=3.0)
    assert [int(r.value or b"") for r in got] == list(range(200))
    assert sum(snaps["0-of-1"].values()) == 200


def test_a_snapshot_needs_no_broker_and_a_probe_reports_the_outage() -> None:
    from stockguard.connectors.health import HEALTH, Health
    from stockguard.connectors.kafka import KafkaProbe, _InputPartition

    dead = {"bootstrap.servers": "127.0.0.1:1", "group.id": "x", "socket.connection.setup.timeout.ms": "1000"}
    part = _InputPartition(dead, [("sg-gone", 0), ("sg-gone", 1)], None, -2, 10, timedelta(milliseconds=1), {})
    started = time.monotonic()
    try:
        assert part.next_batch() == []
        # Never read, broker unreachable: the logical start is kept, without a broker call.
        assert part.snapshot() == {"0-sg-gone": -2, "1-sg-gone": -2}
        assert time.monotonic() - started < 2.0
        now = [100.0]
        health = Health()
        probe = KafkaProbe(dead, tolerance_s=30, interval_s=0.2, health=health, clock=lambda: now[0])
        assert probe.check() is False
        assert health.report()["kafka_reachable"] is False and health.fatal is None
        now[0] += 31
        probe.check()
        assert health.fatal is not None and "127.0.0.1:1" in health.fatal and "outage_tolerance" in health.fatal
        HEALTH.fatal = health.fatal
        with pytest.raises(RuntimeError, match="127.0.0.1:1"):
            part.next_batch()
    finally:
        HEALTH.fatal = None
        part.close()


def test_a_stop_request_ends_the_stream(mock_cluster: tuple[str, Producer]) -> None:
    from stockguard.connectors.health import STOP

    brokers, _producer = mock_cluster
    src = KafkaInput({"bootstrap.servers": brokers}, ["sg-a"], groups=1)
    part = src.build_part("read_kafka", "0-of-1", None)
    STOP.set()
    try:
        with pytest.raises(StopIteration):
            part.next_batch()
    finally:
        STOP.clear()
        part.close()


def test_a_probe_of_a_live_cluster_is_ready_without_listing_its_topics(mock_cluster: tuple[str, Producer]) -> None:
    from stockguard.connectors.health import Health
    from stockguard.connectors.kafka import KafkaProbe

    brokers, _producer = mock_cluster
    health = Health()
    probe = KafkaProbe({"bootstrap.servers": brokers}, tolerance_s=30, interval_s=2.0, health=health, topic="sg-a")
    # One topic's metadata: the whole cluster's held the GIL for 24-80 ms on a broker
    # with 1,755 topics, every probe.
    calls: list[tuple[object, ...]] = []
    real = probe.admin

    class Spy:
        def list_topics(self, *args: object, **kw: object) -> object:
            calls.append(args)
            return real.list_topics(*args, **kw)

    probe.admin = Spy()  # type: ignore[assignment]
    assert probe.check() is True
    assert health.report()["kafka_reachable"] is True
    assert calls == [("sg-a",)]


class _Err:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code


class _Failed:
    """A consumed event that carries an error, as confluent-kafka hands one over."""

    def __init__(self, code: int) -> None:
        self._err = _Err(code)

    def error(self) -> _Err:
        return self._err


def test_framing_keeps_every_field_and_offset_and_hands_errors_back(mock_cluster: tuple[str, Producer]) -> None:
    from confluent_kafka import Consumer, KafkaError

    from stockguard.flows.framing import frame_messages

    brokers, producer = mock_cluster
    base = 1_764_547_200_000
    for i in range(30):
        producer.produce("sg-frame", f"v{i}".encode(), key=None if i % 3 == 0 else f"k{i}".encode(), timestamp=base + i)
    producer.flush(10)
    c = Consumer({"bootstrap.servers": brokers, "group.id": "frame", "auto.offset.reset": "earliest"})
    c.subscribe(["sg-frame"])
    msgs: list[Any] = []
    deadline = time.monotonic() + 20
    while len(msgs) < 30 and time.monotonic() < deadline:
        msgs += [m for m in c.consume(100, 0.5) if m.error() is None]
    c.close()
    assert len(msgs) == 30
    failed = [_Failed(KafkaError._PARTITION_EOF), _Failed(KafkaError._TRANSPORT)]
    out: list[RawRecord] = []
    fetched: dict[str, int] = {}
    errors = frame_messages([failed[0], *msgs, failed[1]], fetched, out)
    assert errors == failed
    assert [(r.topic, r.key, r.value, r.partition, r.offset, r.timestamp) for r in out] == [
        ("sg-frame", m.key(), m.value(), m.partition(), m.offset(), m.timestamp()[1]) for m in msgs
    ]
    assert all(r.decoded is not None and r.error is None for r in out)
    # The next offset of each partition read.
    for m in msgs:
        assert fetched[f"{m.partition()}-sg-frame"] >= (m.offset() or 0) + 1
    assert sum(fetched.values()) == 30
