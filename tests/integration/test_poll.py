"""`stockguard poll shoppingfeed --once` on the real broker and Redis: orders once, across restarts."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from stockguard.config.settings import load_settings
from stockguard.live import create_topics
from tests.conftest import Services
from tests.connectors.test_shoppingfeed_orders import sf_order
from tests.integration.test_deliver import ROOT, FakeServer, env_for

pytestmark = pytest.mark.integration


def read_all(kafka: str, topic: str) -> list[dict[str, Any]]:
    c = Consumer({"bootstrap.servers": kafka, "group.id": "it-unused", "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=30)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    out: list[dict[str, Any]] = []
    while batch := c.consume(1000, 3.0):
        for m in batch:
            value = m.value()
            if m.error() is None and value is not None:
                out.append(orjson.loads(value))
    c.close()
    return out


def poll_once(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stockguard.cli", "poll", "shoppingfeed", "--once"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_orders_reach_the_topic_once_across_runs_and_a_cancellation_follows(services: Services) -> None:
    fake = FakeServer()
    try:
        env = env_for(services, f"http://127.0.0.1:{fake.port}")
        env |= {
            "STOCKGUARD_SHOPPINGFEED__API_BASE": f"http://127.0.0.1:{fake.port}",
            "STOCKGUARD_SHOPPINGFEED__TOKEN": "sf-test",
            "STOCKGUARD_SHOPPINGFEED__STORE_ID": "12",
            "STOCKGUARD_SHOPPINGFEED__PAGE_SIZE": "3",
            # The fake's orders are from 2025: a lookback that reaches them on the first run.
            "STOCKGUARD_SHOPPINGFEED__POLL_LOOKBACK": "10000d",
        }
        settings = load_settings(env=env)
        create_topics(settings)
        fake.fake.shoppingfeed_orders.extend(sf_order(i, minute=i) for i in range(1, 8))
        first = poll_once(env)
        assert first.returncode == 0, (
            (first.stdout + first.stderr).decode()[-3000:],
            fake.fake.requests,
            fake.fake.refused,
        )
        assert poll_once(env).returncode == 0  # a restart: the cursor and outcomes are in Redis
        fake.fake.shoppingfeed_orders[0] = sf_order(1, "cancelled", minute=1)
        assert poll_once(env).returncode == 0
        orders = read_all(services.kafka, settings.topics.orders)
        assert sorted(o["event_id"] for o in orders) == sorted(
            [f"sf-{i}-placed" for i in range(1, 8)] + ["sf-1-cancelled"]
        )
        assert all(not any("@" in str(v) for v in o.values()) for o in orders)
        # A wrong token: exit 1, nothing produced.
        bad = poll_once(env | {"STOCKGUARD_SHOPPINGFEED__TOKEN": "wrong"})
        assert bad.returncode == 1 and b"401" in bad.stderr
    finally:
        fake.stop()
