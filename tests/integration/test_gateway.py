"""`stockguard gateway` on the real broker: signed webhooks in, decisions out, nothing lost.

The gateway and the live flow run as subprocesses (`stockguard gateway`, `stockguard
run`), the webhooks are the simulated day as Shopify, Stripe, Klaviyo, Braze and GA4
send them (`stockguard.webhooks`), Stripe's line items come from a fake Stripe API
in this process, and the gateway's state is in the real Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.faults.harness import PrivateService
from stockguard.config.settings import Settings, load_settings
from stockguard.live import create_topics
from stockguard.via_gateway import FakeStripe, SendStats, send_day
from stockguard.webhooks import Passthrough, Request, WebhookDay, one_in, shopify_locations
from tests.conftest import ROOT, Services
from tests.integration.test_live import (
    STOCKGUARD,
    Message,
    OutputReader,
    decided_all,
    free_port,
    isolated,
    phases,
    probe,
    replay_outputs,
    signature,
    start_flow,
    stop_flows,
)

pytestmark = pytest.mark.integration

LOCATIONS = ("WH-PARIS", "WH-LYON", "WH-LILLE")
INPUTS = ("clickstream", "stock", "orders", "products", "triggers", "campaigns")


def gateway_env(env: dict[str, str], stripe_port: int, **extra: str) -> dict[str, str]:
    """The gateway's settings: its port, every vendor secret, the location table."""
    out = dict(env)
    out.update(
        {
            "STOCKGUARD_GATEWAY__PORT": str(free_port()),
            "STOCKGUARD_GATEWAY__STATE": "redis",
            "STOCKGUARD_REDIS__PREFIX": f"it-gw-{uuid.uuid4().hex[:8]}",
            "STOCKGUARD_SHOPIFY__WEBHOOK_SECRET": "shpss_it_secret",
            "STOCKGUARD_SHOPIFY__LOCATIONS": json.dumps(shopify_locations(LOCATIONS)),
            "STOCKGUARD_STRIPE__WEBHOOK_SECRET": "whsec_it_secret",
            "STOCKGUARD_STRIPE__API_KEY": "sk_test_it",
            "STOCKGUARD_STRIPE__API_BASE": f"http://127.0.0.1:{stripe_port}",
            "STOCKGUARD_KLAVIYO__WEBHOOK_TOKEN": "kl-it-token",
            "STOCKGUARD_BRAZE__WEBHOOK_TOKEN": "bz-it-token",
            "STOCKGUARD_GA4__API_SECRET": "ga4-it-secret",
        }
    )
    out.update(extra)
    return out


def start_gateway(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start `stockguard gateway` and wait until it is ready (Kafka and Redis answer)."""
    # Its log goes to a file: a pipe nobody reads fills up (64 KiB) during an outage's
    # warnings and then blocks the gateway's event loop in write().
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [*STOCKGUARD, "gateway"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{env['STOCKGUARD_GATEWAY__PORT']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(log.read().decode()[-3000:])
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    stop_flows([proc])
    raise AssertionError("the gateway did not become ready")


class InputTail:
    """Read what reached the input topics since the last call, partition by partition."""

    def __init__(self, kafka: str, settings: Settings) -> None:
        self.topics = [getattr(settings.topics, kind) for kind in INPUTS]
        self.consumer = Consumer({"bootstrap.servers": kafka, "group.id": "it-unused", "enable.auto.commit": False})
        self.parts = []
        for topic in self.topics:
            md = self.consumer.list_topics(topic, timeout=30)
            self.parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
        self.consumer.assign(self.parts)
        self.next = {(tp.topic, tp.partition): 0 for tp in self.parts}

    def read(self) -> list[Message]:
        """Everything new, up to each partition's end (produced and acknowledged before)."""
        ends = {}
        for tp in self.parts:
            _lo, hi = self.consumer.get_watermark_offsets(tp, timeout=10)
            ends[tp.topic, tp.partition] = hi
        got: dict[tuple[str, int], list[Message]] = {k: [] for k in ends}
        deadline = time.monotonic() + 60
        while any(self.next[k] < ends[k] for k in ends) and time.monotonic() < deadline:
            for m in self.consumer.consume(1000, 0.5):
                if m.error() is not None:
                    continue
                topic, partition, offset, key = m.topic(), m.partition(), m.offset(), m.key()
                assert topic is not None and partition is not None and offset is not None
                k = (topic, partition)
                if offset >= ends[k]:
                    continue
                got[k].append(
                    (topic, key.decode() if isinstance(key, bytes) else None, orjson.loads(m.value() or b"null"))
                )
                self.next[k] = offset + 1
        assert all(self.next[k] >= ends[k] for k in ends), "input topics not read to their end"
        return [msg for k in sorted(got) for msg in got[k]]

    def close(self) -> None:
        self.consumer.close()


def translate(webhooks: WebhookDay, msgs: list[Message]) -> list[Request | Passthrough]:
    out: list[Request | Passthrough] = []
    for topic, key, value in msgs:
        out.extend(webhooks.translate(topic, key, value))
    out.extend(webhooks.finish())
    return out


def test_signed_webhooks_reach_the_flow_and_decide_like_a_replay_of_what_they_mapped_to(services: Services) -> None:
    settings, env = isolated(services)
    stripe_port = free_port()
    genv = gateway_env(env, stripe_port)
    gsettings = load_settings(env=genv)
    # The day ends two minutes ago: triggers take their arrival time (now), the rest the day's.
    now = int(time.time() * 1000)
    stages = phases(start_ts=now - 3 * 3_600_000 - 120_000)
    # A few orders without a location are checkouts on Stripe (phases() pins the rest, so
    # that the location charged does not depend on the order across partitions).
    orders = [v for t, _k, v in stages[1] if t == "shop.orders" and isinstance(v, dict) and "order_id" in v]
    cancelled = {v["order_id"] for v in orders if v.get("status") == "cancelled"}
    stripe_orders = [
        v for v in orders if v.get("status") == "placed" and v["order_id"] not in cancelled and one_in(v["order_id"], 5)
    ][:3]
    assert stripe_orders
    for v in stripe_orders:
        for line in v["lines"]:
            line.pop("location", None)
    producer = Producer({"bootstrap.servers": services.kafka, "enable.idempotence": True})
    names = settings.topics.from_contract()
    tail = InputTail(services.kafka, settings)
    reader = OutputReader(services.kafka, settings)
    gateway, url = start_gateway(genv)
    flow = start_flow(env, "-w", "1")
    webhooks = WebhookDay(gsettings, LOCATIONS, time.time)
    stats = SendStats()
    mapped: list[Message] = []

    def passthrough(p: Passthrough) -> None:
        producer.produce(names[p.topic], orjson.dumps(p.value), p.key)

    async def send(stage: list[Message], last: bool) -> None:
        if last:  # the stock-outs that retract happen now, after the approvals
            for i, (_t, _k, v) in enumerate(stage[-20:]):
                if isinstance(v, dict) and str(v.get("event_id", "")).startswith("z-"):
                    v["ts"] = int(time.time() * 1000) + i
        await send_day(
            url, translate(webhooks, stage), speed=float("inf"), start_ts=0, stats=stats, passthrough=passthrough
        )
        assert producer.flush(30) == 0

    async def day() -> None:
        stripe = FakeStripe(webhooks.line_items, "sk_test_it")
        await stripe.start(stripe_port)
        try:
            for i, stage in enumerate(stages):
                await send(stage, i == len(stages) - 1)
                mapped.extend(tail.read())
                await asyncio.sleep(2.0)
        finally:
            await stripe.stop()

    try:
        probe(services, settings, reader, 0)
        asyncio.run(day())
        mapped_no_probe = [
            m for m in mapped if not (isinstance(m[2], dict) and m[2].get("customer_id") == "probe-customer")
        ]
        expected = signature(
            settings, [(r.topic, orjson.loads(r.value)) for r in replay_outputs(settings, mapped_no_probe)]
        )
        n_expected = len(expected["approved"]) + len(expected["suppressed"])

        reader.wait_for(decided_all(settings, expected), timeout=120)
        time.sleep(1.0)
        got = signature(settings, reader.snapshot())
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # noqa: S310 - loopback
            metrics = r.read().decode()
    finally:
        stop_flows([flow, gateway])
        reader.close()
        tail.close()

    # Every system's webhooks were accepted; the forged ones refused.
    accepted = {system for (system, outcome) in stats.answers if outcome == "accepted"}
    assert accepted == {"shopify", "stripe", "klaviyo", "braze", "ga4"}, stats.answers
    assert set(o for (_s, o) in stats.answers) <= {"accepted", "duplicate", "401", "skipped stripe_cancellation"}
    assert 'stockguard_gateway_requests_total{outcome="accepted",system="stripe"}' in metrics
    # Each record reached its topic once: ids are unique per topic.
    ids = Counter(
        (t, json.dumps(v.get("event_id") or v.get("trigger_id") or v.get("campaign_id")))
        for t, _k, v in mapped
        if t != names["catalog.products"]
    )
    assert max(ids.values()) == 1
    # The live flow decided what the replay of the mapped records decides.
    assert n_expected > 100 and expected["approved"] and expected["retracted"]
    assert any(reason == "already_purchased" for _t, reason in expected["suppressed"])
    assert got["approved"] == expected["approved"]
    assert got["suppressed"] == expected["suppressed"]
    assert got["retracted"] == expected["retracted"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateService]:
    svc = PrivateService("kafka", tmp_path)
    yield svc
    svc.stop()


def _clicks(n: int, start_ts: int) -> list[Message]:
    return [
        (
            "shop.clickstream",
            f"c-{i % 97}",
            {
                "event_id": f"e-{i}",
                "ts": start_ts + i,
                "type": "product_view",
                "customer_id": f"c-{i % 97}",
                "session_id": f"s-{i % 97}",
                "sku": f"SKU-{i % 13}",
                "qty": 1,
            },
        )
        for i in range(n)
    ]


def test_kafka_stopped_is_503_and_after_its_restart_nothing_is_lost_or_doubled(
    broker: PrivateService, services: Services, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGUARD_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": broker.address, "REDIS_URL": services.redis, "PYTHONPATH": str(ROOT)})
    genv = gateway_env(
        env,
        free_port(),
        STOCKGUARD_GATEWAY__PRODUCE_TIMEOUT="1s",
        STOCKGUARD_GATEWAY__RETRY_AFTER="1s",
        STOCKGUARD_KAFKA__PARTITIONS="2",
    )
    settings = load_settings(env=genv)
    for topic, outcome in create_topics(settings):
        assert not outcome.startswith("failed"), (topic, outcome)
    gateway, url = start_gateway(genv)
    webhooks = WebhookDay(settings, LOCATIONS, time.time)
    n = 4000
    requests = translate(webhooks, _clicks(n, int(time.time() * 1000)))
    stats = SendStats()
    outage: dict[str, float] = {}

    async def load() -> None:
        # About 400 webhooks/s for 10 s; the broker is stopped from 2 s to 8 s.
        await send_day(url, requests, speed=0.4, start_ts=requests[0].ts, stats=stats, passthrough=lambda p: None)

    async def fault() -> None:
        await asyncio.sleep(2.0)
        await asyncio.to_thread(broker.stop)
        outage["stopped"] = time.monotonic()
        await asyncio.sleep(6.0)
        await asyncio.to_thread(broker.start)
        outage["started"] = time.monotonic()

    async def both() -> None:
        await asyncio.gather(load(), fault())

    try:
        asyncio.run(both())
        tail = InputTail(broker.address, settings)
        got = tail.read()
        tail.close()
    finally:
        if gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(30)
    # The outage was seen (503s, retried), and every webhook ended accepted, once.
    assert stats.retries > 0, stats
    assert stats.answers["ga4", "accepted"] + stats.answers["ga4", "duplicate"] == n
    ids = Counter(v["event_id"] for _t, _k, v in got)
    assert len(ids) == n, f"lost {n - len(ids)}"
    assert max(ids.values()) == 1, f"doubled {sum(1 for c in ids.values() if c > 1)}"
