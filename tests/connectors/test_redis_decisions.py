"""The decision writer of the send-time check, on a fake Redis client (the real one: integration)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from stockguard.config.settings import TopicSettings
from stockguard.connectors.redis_view import DecisionWriter
from stockguard.flows.records import OutRecord


class FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[Any, Any]] = {}
        self.ttls: dict[str, int] = {}

    def pipeline(self, transaction: bool = False) -> FakeRedis:
        return self

    def hset(self, key: str, mapping: dict[Any, Any]) -> None:
        self.hashes.setdefault(key, {}).update(mapping)

    def expire(self, key: str, ttl: int) -> None:
        self.ttls[key] = ttl

    def execute(self) -> None:
        return None

    def ping(self) -> bool:
        return True


def test_the_newest_decision_of_a_trigger_is_written_with_the_decision_ttl() -> None:
    t = TopicSettings()
    fake = FakeRedis()
    writer = DecisionWriter(lambda: fake, t, prefix="sg", ttl_s=3600)  # type: ignore[arg-type,return-value]
    approved = {"trigger_id": "t-1", "decision": "send", "skus": ["A"], "decided_ts": 5}
    retracted = {"trigger_id": "t-1", "sku": "A", "reason": "out_of_stock", "detail": "ATP 0", "ts": 9}
    suppressed = {"trigger_id": "t-2", "decision": "suppress", "skus": ["B"], "reason": "no_consent"}
    writer.submit_records(
        [
            OutRecord(t.approved, "c", orjson.dumps(approved)),
            OutRecord(t.dlq, None, b"{}"),  # not a decision: ignored
            OutRecord(t.retracted, "c", orjson.dumps(retracted)),
            OutRecord(t.suppressed, "c", orjson.dumps(suppressed)),
        ]
    )
    deadline = time.monotonic() + 5
    while writer.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    writer.close()
    assert set(fake.hashes) == {"sg:trigger:t-1", "sg:trigger:t-2"}
    assert fake.hashes["sg:trigger:t-1"]["decision"] == "retracted"
    assert fake.hashes["sg:trigger:t-1"]["reason"] == "out_of_stock: ATP 0"
    assert fake.hashes["sg:trigger:t-2"]["reason"] == "no_consent"
    assert fake.ttls == {"sg:trigger:t-1": 3600, "sg:trigger:t-2": 3600}
