"""The deliverer's edges on the real Redis and broker: its record, its commits, its DLQ."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stockguard.connectors.delivery.kafka_io import KafkaDlq, KafkaIncoming
from stockguard.connectors.delivery.record import RedisRecord
from tests.conftest import Services

pytestmark = pytest.mark.integration


def test_the_delivered_ids_record_claims_once_and_survives_a_new_run(services: Services) -> None:
    prefix = f"it-deliver-{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        first = RedisRecord(services.redis, prefix, "braze", 60_000)
        assert await first.claim(["a", "b", "c"], "run-1") == ["new", "new", "new"]
        assert await first.claim(["a"], "run-1") == ["mine"]
        await first.mark(["a"], "sent")
        await first.mark(["b"], "failed")
        await first.release(["c"])  # surely not sent: free for the next attempt
        await first.close()
        second = RedisRecord(services.redis, prefix, "braze", 60_000)
        assert await second.states(["a", "b", "c", "d"]) == ["sent", "failed", None, None]
        assert await second.claim(["a", "b", "c"], "run-2") == ["sent", "failed", "new"]
        # run-2 dies with "c" in flight: run-3 finds it in doubt and leaves it alone.
        assert await second.claim(["c"], "run-3") == ["in_doubt"]
        await second.close()

    asyncio.run(go())


def test_offsets_are_committed_only_when_told_and_the_dlq_waits_for_kafka(services: Services) -> None:
    topic, dlq_topic = f"it-deliver-{uuid.uuid4().hex[:8]}", f"it-deliver-dlq-{uuid.uuid4().hex[:8]}"
    conf = {"bootstrap.servers": services.kafka}
    admin = AdminClient(dict[str, str | int | float | bool](conf))
    for fut in admin.create_topics([NewTopic(topic, 1, 1), NewTopic(dlq_topic, 1, 1)]).values():
        fut.result(30)
    p = Producer(conf)
    for i in range(10):
        p.produce(topic, orjson.dumps({"i": i}))
    assert p.flush(30) == 0
    group = f"it-deliver-{uuid.uuid4().hex[:8]}"

    async def read(n: int) -> list[int]:
        src = KafkaIncoming(conf, group, [topic])
        got: list[int] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < n and asyncio.get_running_loop().time() < deadline:
            got += [m.offset for m in await src.poll(100, 0.5)]
        if got:
            await src.commit({(topic, 0): 4})  # only the first four were delivered
        await src.close()
        return got

    async def go() -> None:
        assert await read(10) == list(range(10))
        # A new member of the group starts after the last commit: the rest comes again.
        assert (await read(6))[:1] == [4]
        dlq = KafkaDlq(conf, dlq_topic)
        await dlq.put([("t-1", b'{"outcome":"rejected"}')])
        c = Consumer({**conf, "group.id": group})
        assert c.get_watermark_offsets(TopicPartition(dlq_topic, 0), timeout=10) == (0, 1)
        c.close()

    asyncio.run(go())
