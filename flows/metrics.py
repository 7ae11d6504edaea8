"""Prometheus metrics the dataflow itself updates, and the step that counts its outputs.

One registry (prometheus_client's default), served by the live process with Bytewax's
own metrics; the connectors' metrics (Kafka, Redis, campaign gauges) are in
`stockguard.connectors.metrics`, one floor up. Naming follows Prometheus conventions: base
units, `_total` counters. Labels are bounded: no customer id or sku is ever a label.
`input` is the logical input (clickstream, stock, orders, products, triggers, campaigns, or
`unknown`), `reason` a suppression reason or the field path of a DLQ error with list
indices dropped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Counter, Gauge, Histogram

from stockguard.config.settings import Settings
from stockguard.flows.records import OutRecord

__all__ = [
    "ADOPTED",
    "DECISION_LATENCY",
    "DLQ",
    "INSIGHTS",
    "RETRACTIONS",
    "STATE_KEYS",
    "SUPPRESSIONS",
    "SURGE_ALERTS",
    "SURGE_OPEN",
    "TRIGGERS",
    "MetricsSink",
    "StateGauges",
    "dlq_reason",
    "init_location_series",
    "input_names",
]

TRIGGERS = Counter("stockguard_triggers", "Triggers decided", ["decision"])
SUPPRESSIONS = Counter("stockguard_suppressions", "Suppressed triggers by reason", ["reason"])
RETRACTIONS = Counter("stockguard_retractions", "Approved sends retracted when their stock ran out")
DLQ = Counter("stockguard_dlq", "Inputs sent to the dead-letter topic", ["input", "reason"])
DECISION_LATENCY = Histogram(
    "stockguard_decision_latency_seconds",
    "Time from a trigger's Kafka timestamp to its decision being handed to the sink",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STATE_KEYS = Gauge("stockguard_state_keys", "Keys held in state", ["step", "kind", "partition"])
SURGE_ALERTS = Counter(
    "stockguard_surge_alerts",
    "Surge and drain alert messages (locations are few: a bounded label)",
    ["kind", "status", "location"],
)
SURGE_OPEN = Gauge("stockguard_surge_open", "1 while an order_surge alert is open at the location", ["location"])
INSIGHTS = Counter("stockguard_insights", "Merchandising insights", ["kind"])
ADOPTED = Counter(
    "stockguard_decisions_adopted",
    "Triggers re-read after a restart that took the decision recorded for them (no new message)",
)

# Create the series of bounded, known label values at 0, so a first event shows up in
# increase()/rate() (Prometheus cannot count a series' first sample as an increase).
for _decision in ("send", "retarget", "suppress"):
    TRIGGERS.labels(_decision)
for _reason in (
    "duplicate",
    "no_consent",
    "frequency_capped",
    "already_purchased",
    "out_of_stock",
    "stock_budget_exhausted",
):
    SUPPRESSIONS.labels(_reason)


def init_location_series(location: str) -> None:
    """Create a location's surge series at 0 when the location is first seen."""
    SURGE_OPEN.labels(location)
    for kind, statuses in (("order_surge", ("open", "update", "resolved")), ("stock_drain", ("open", "resolved"))):
        for status in statuses:
            SURGE_ALERTS.labels(kind, status, location)


_INDEX = re.compile(r"\[\d+\]")


def dlq_reason(label: str) -> str:
    """Bound a DLQ error's field path: `lines[3].qty` counts as `lines[].qty`."""
    return _INDEX.sub("[]", label)[:64]


class MetricsSink(DynamicSink[OutRecord]):
    """Count every output message, and the decision latency of triggers read from Kafka."""

    def __init__(self, settings: Settings, clock_ms: Callable[[], int] | None = None) -> None:
        t = settings.topics
        self.approved, self.suppressed, self.retracted = t.approved, t.suppressed, t.retracted
        self.surge, self.insights, self.dlq = t.surge_alerts, t.insights, t.dlq
        self.inputs = input_names(settings)
        self.outputs = set(t.outputs())
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MetricsPartition:
        """Count on this worker."""
        return _MetricsPartition(self)


class _MetricsPartition(StatelessSinkPartition[OutRecord]):
    def __init__(self, sink: MetricsSink) -> None:
        self.s = sink

    def write_batch(self, items: list[OutRecord]) -> None:
        # Counted per batch, then one inc() per series: labels() takes a lock and builds a
        # key on every call, which per output cost more than the rest of this loop.
        s = self.s
        now = s.clock_ms()
        counts: dict[tuple[str, str, str], int] = {}
        latencies: list[int] = []
        for r in items:
            topic = r.topic
            if topic == s.approved or topic == s.suppressed:
                k = (topic, r.label, "")
                if r.source_ts is not None:
                    latencies.append(now - r.source_ts)
            elif topic == s.dlq or topic == s.surge:
                # A DLQ record's source and a surge alert's location are in its key.
                k = (topic, r.label, r.key or "")
            else:
                k = (topic, r.label, "")
            counts[k] = counts.get(k, 0) + 1
        for (topic, label, key), n in counts.items():
            if topic == s.approved:
                TRIGGERS.labels(label).inc(n)
            elif topic == s.suppressed:
                TRIGGERS.labels("suppress").inc(n)
                SUPPRESSIONS.labels(label).inc(n)
            elif topic == s.retracted:
                RETRACTIONS.inc(n)
            elif topic == s.dlq:
                # An input's logical name; an output that could not be sent; an event a step failed on.
                source = s.inputs.get(key) or ("output" if key in s.outputs else "internal")
                DLQ.labels(source, dlq_reason(label)).inc(n)
            elif topic == s.surge:
                kind, _, status = label.partition(":")
                SURGE_ALERTS.labels(kind, status, key).inc(n)
            elif topic == s.insights:
                INSIGHTS.labels(label).inc(n)
        observe = DECISION_LATENCY.observe
        for ms in latencies:
            observe(max(0, ms) / 1000)


def input_names(settings: Settings) -> dict[str, str]:
    """Map input topic names to their logical names, the `input` label."""
    t = settings.topics
    return {
        t.clickstream: "clickstream",
        t.stock: "stock",
        t.orders: "orders",
        t.products: "products",
        t.triggers: "triggers",
        t.campaigns: "campaigns",
    }


class StateGauges:
    """Set the state-size gauges of one partition at most every `every_s` seconds."""

    def __init__(self, step: str, every_s: float = 5.0) -> None:
        self.step = step
        self.every = every_s
        self.next = 0.0

    def maybe_set(self, partition: int, sizes: Callable[[], Mapping[str, int]]) -> None:
        """Refresh the gauges if due (cheap to call per batch)."""
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.every
        for kind, n in sizes().items():
            STATE_KEYS.labels(self.step, kind, str(partition)).set(n)
