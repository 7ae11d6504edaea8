"""Prometheus metrics of the connectors: Kafka, the Redis read model, campaign gauges.

The flow's own metrics (decisions, suppressions, DLQ, latency, state sizes, alerts) are in
`stockguard.flows.metrics`. Labels are bounded: campaign gauges carry `campaign_id`, and
only active campaigns have series; a campaign that ends loses them.
"""

from __future__ import annotations

import threading
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Counter, Gauge, Histogram

from stockguard.flows.records import CampaignView, StockView

__all__ = [
    "CAMPAIGN_GAUGES",
    "CONSUMER_LAG",
    "DELIVERY_FAILURES",
    "EVENTS_READ",
    "GATEWAY_LATENCY",
    "GATEWAY_RECORDS",
    "GATEWAY_REQUESTS",
    "JOURNAL_RECORDS",
    "KAFKA_UP",
    "REDIS_ERRORS",
    "REDIS_WRITES",
    "CampaignGauges",
]

EVENTS_READ = Counter("stockguard_events_read", "Input messages read, valid or not", ["input"])
DELIVERY_FAILURES = Counter("stockguard_kafka_delivery_failures", "Output messages Kafka did not acknowledge")
CONSUMER_LAG = Gauge(
    "stockguard_kafka_consumer_lag", "Messages behind the partition's high watermark", ["topic", "partition"]
)
JOURNAL_RECORDS = Counter(
    "stockguard_journal_records", "Decisions and retractions read back from the output topics at a restart", ["kind"]
)
KAFKA_UP = Gauge("stockguard_kafka_up", "1 while the Kafka brokers answer this process, 0 during an outage")
REDIS_ERRORS = Counter("stockguard_redis_errors", "Failed writes of the Redis read model (retried)")
REDIS_WRITES = Counter("stockguard_redis_view_writes", "Keys written to the Redis read model")
GATEWAY_REQUESTS = Counter(
    "stockguard_gateway_requests",
    "Webhook requests answered by the gateway, by system and outcome",
    ["system", "outcome"],
)
GATEWAY_LATENCY = Histogram(
    "stockguard_gateway_request_seconds",
    "Time from a webhook's arrival to its answer (2xx only after Kafka acknowledged)",
    ["system"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
GATEWAY_RECORDS = Counter(
    "stockguard_gateway_records", "Records the gateway produced, by system and input", ["system", "input"]
)


_FIELDS = {
    "orders": ("stockguard_campaign_orders", "Orders attributed to an active campaign"),
    "units": ("stockguard_campaign_units", "Units ordered through an active campaign"),
    "revenue": ("stockguard_campaign_revenue", "Revenue of an active campaign, shop currency"),
    "gross_margin": ("stockguard_campaign_gross_margin", "Gross margin (price - unit cost) of an active campaign"),
    "media_cost": ("stockguard_campaign_media_cost", "Media cost of an active campaign, shop currency"),
}

CAMPAIGN_GAUGES = {field: Gauge(name, doc, ["campaign_id"]) for field, (name, doc) in _FIELDS.items()}


class CampaignGauges(DynamicSink[StockView | CampaignView]):
    """Export active campaigns as gauges, and keep the latest view of every campaign."""

    # Stock views are for the Redis read model: without it nobody should build them.
    wants_stock_views = False

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._exported: set[str] = set()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _GaugePartition:
        """Share one view table across this process's workers."""
        return _GaugePartition(self)

    def update(self, view: dict[str, Any]) -> None:
        """Apply one campaign view to the gauges."""
        cid = view["campaign_id"]
        with self._lock:
            self.latest[cid] = view
            if view["active"]:
                for field, gauge in CAMPAIGN_GAUGES.items():
                    gauge.labels(campaign_id=cid).set(view[field])
                self._exported.add(cid)
            elif cid in self._exported:
                for gauge in CAMPAIGN_GAUGES.values():
                    gauge.remove(cid)
                self._exported.discard(cid)


class _GaugePartition(StatelessSinkPartition[StockView | CampaignView]):
    def __init__(self, sink: CampaignGauges) -> None:
        self._sink = sink

    def write_batch(self, items: list[StockView | CampaignView]) -> None:
        for item in items:
            if type(item) is CampaignView:
                self._sink.update(item.view)
