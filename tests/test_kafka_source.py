"""The grouped Kafka source on librdkafka's mock cluster (fast; the real broker is in test_integration)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from connectors.kafka import KafkaInput


@pytest.fixture(scope="module")
def mock_cluster() -> tuple[str, Producer]:
    p = Producer({"test.mock.num.brokers": 1})
    brokers = ",".join(f"{b.host}:{b.port}" for b in p.list_topics(timeout=10).brokers.values())
    return brokers, p


def drain(src: KafkaInput, parts: list[str], resume: dict[str, dict[str, int]] | None = None) -> tuple[list, dict]:
    opened = [src.build_part("read_kafka", part, (resume or {}).get(part)) for part in parts]
    got = []
    deadline = time.monotonic() + 20
    quiet = 0
    while time.monotonic() < deadline and quiet < 20:
        batch = [r for p in opened for r in p.next_batch()]
        got += batch
        quiet = 0 if batch else quiet + 1
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
    assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(40))
    # A group's state is the next offset of each of its partitions.
    assert sum(sum(s.values()) for s in snaps.values()) == 40
    for i in range(40, 50):
        producer.produce(topics[i % 2], f"v{i}".encode(), key=str(i).encode())
    producer.flush(10)
    again, _ = drain(KafkaInput({"bootstrap.servers": brokers}, topics, groups=3), parts, snaps)
    assert sorted(r.value for r in again) == sorted(f"v{i}".encode() for i in range(40, 50))
