"""The same rules as a hand-written confluent-kafka loop: the Python limit, for comparison.

One process, one consumer assigned every input partition, `consume(1000, 0)` batches, the
very same pure code as stockguard (`flows.routing.Router`, `state.decision.Decider` per
decision partition, the sku monitor, the surge watcher, the campaign tracker), outputs
produced with delivery callbacks. No recovery, no Bytewax: what stockguard's dataflow is
measured against. Runs until `--idle` seconds pass without input.

    .venv/bin/python -m bench.handwritten_loop   # settings from the environment, like stockguard
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.common import produce
from stockguard.config.settings import Settings, load_settings
from stockguard.flows.encoding import (
    Encoder,
    wall_clock_ms,
)
from stockguard.flows.records import OutRecord, RawRecord
from stockguard.flows.routing import CAMPAIGNS_KEY, MonitorEvent, Router, ToDecision, monitor_sku
from stockguard.state.campaigns import CampaignState, CampaignTracker
from stockguard.state.decision import Decider, DecisionState, Emit
from stockguard.state.models import Campaign, Order, Product
from stockguard.state.monitor import (
    Alert,
    Monitor,
    MonitorState,
    monitor_partition_of,
)
from stockguard.state.surge import Charged, SurgeState, SurgeWatcher, Tick

ROOT = Path(__file__).resolve().parent.parent


class Loop:
    """Hold every partition's state in one process and apply events as they come."""

    def __init__(self, settings: Settings) -> None:
        settings = settings.with_workers(1)
        self.s = settings
        self.router = Router(settings, wall_clock_ms)
        self.encoder = Encoder(settings, wall_clock_ms)
        self.deciders = [
            Decider(DecisionState(i, settings.decision_partitions), settings.rules, wall_clock_ms)
            for i in range(settings.decision_partitions)
        ]
        self.monitors = [
            Monitor(MonitorState(j), settings.rules, settings.surge) for j in range(settings.surge.monitor_partitions)
        ]
        self.surge = SurgeWatcher(SurgeState(), settings.surge)
        self.campaigns = CampaignTracker(CampaignState(), settings.rules.order_ttl)

    def apply(self, recs: list[RawRecord]) -> list[OutRecord]:
        """Route and decide a batch; return the output records."""
        out: list[OutRecord] = []
        emits: list[Emit] = []
        alerts: list[Alert] = []
        ticks: list[Tick] = []
        charged: list[Charged] = []
        surge_msgs: list[dict[str, Any]] = []
        views: list[dict[str, Any]] = []
        for item in self.router.route_batch(recs):
            if isinstance(item, OutRecord):
                out.append(item)
                continue
            key, payload = item
            if isinstance(payload, ToDecision):
                self.deciders[payload.partition].apply(payload.event, emits)
            elif key != CAMPAIGNS_KEY:
                ev = cast(MonitorEvent, payload)
                self.monitors[monitor_partition_of(monitor_sku(ev), len(self.monitors))].apply(
                    ev, alerts, ticks, charged
                )
            elif isinstance(payload, Order):
                self.campaigns.on_order(payload, views)
            elif isinstance(payload, Product):
                self.campaigns.on_product(payload, views)
            elif isinstance(payload, Campaign):
                self.campaigns.on_campaign(payload, views)
        for c in charged:
            self.surge.on_charged(c, surge_msgs)
        if ticks:
            self.surge.on_tick(max(t.ts for t in ticks), surge_msgs)
        out.extend(self.encoder.emits(emits))
        out.extend(self.encoder.alerts(alerts))
        out.extend(self.encoder.alerts([("alert", m["location"], m) for m in surge_msgs]))
        return out


def main() -> int:
    """Consume every input partition from the beginning until idle; produce the decisions."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=3.0, help="stop after this many seconds without input")
    args = ap.parse_args()
    settings = load_settings()
    conf = settings.kafka.client_config()
    consumer = Consumer({**conf, "group.id": "handwritten-unused", "enable.auto.commit": False})
    parts = []
    for topic in settings.topics.inputs():
        md = consumer.list_topics(topic, timeout=10)
        parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
    consumer.assign(parts)
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({**conf, "enable.idempotence": True, "linger.ms": 2, "compression.type": "lz4"})
    loop = Loop(settings)
    n = 0
    start = time.monotonic()
    last_input = start
    while time.monotonic() - last_input < args.idle:
        # What is there now, else the first message to come and what came with it:
        # consume(1000, 0.05) alone would hold every batch for its 50 ms below 20k/s.
        msgs = consumer.consume(1000, 0)
        if not msgs:
            first = consumer.poll(0.05)
            if first is None:
                continue
            msgs = [first, *consumer.consume(999, 0)]
        last_input = time.monotonic()
        recs = []
        for m in msgs:
            if m.error() is None:
                ts_type, ts = m.timestamp()
                recs.append(
                    RawRecord(
                        m.topic() or "",
                        m.key(),
                        m.value(),
                        m.partition() or 0,
                        m.offset() or 0,
                        ts if ts_type else None,
                    )
                )
        n += len(recs)
        for r in loop.apply(recs):
            produce(producer, r.topic, r.value, r.key, on_delivery=on_delivery)
        producer.poll(0)
        if failures:
            raise RuntimeError(f"delivery failed: {failures[0]}")
    producer.flush(30)
    busy = last_input - start
    sys.stderr.write(f"handwritten loop: {n:,} events in {busy:.2f} s = {n / max(busy, 1e-9):,.0f} events/s\n")
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
