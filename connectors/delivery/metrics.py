"""Prometheus metrics of the deliverers (labels bounded: system, outcome, endpoint, topic)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["CIRCUIT_OPEN", "DELIVERED", "DELIVERY_LAG", "DELIVERY_LATENCY", "REQUESTS", "REQUEST_LATENCY"]

# outcome: delivered, duplicate (already sent before a restart), rejected (4xx: delivery
# DLQ), unsendable (no request can be made: delivery DLQ), in_doubt (a send cut by a
# crash: delivery DLQ), skipped (a retraction whose approval was never delivered).
DELIVERED = Counter("stockguard_delivery", "Decisions and stock items delivered, by outcome", ["system", "outcome"])
# status: the HTTP status, or "timeout" / "error" when no answer came.
REQUESTS = Counter("stockguard_delivery_requests", "Vendor requests made", ["system", "endpoint", "status"])
DELIVERY_LATENCY = Histogram(
    "stockguard_delivery_seconds",
    "From a decision on Kafka to the vendor's acceptance",
    ["system"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
REQUEST_LATENCY = Histogram(
    "stockguard_delivery_request_seconds",
    "One vendor request's round trip",
    ["system", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DELIVERY_LAG = Gauge(
    "stockguard_delivery_consumer_lag", "Messages not yet delivered (committed) on the topic", ["system", "topic"]
)
CIRCUIT_OPEN = Gauge("stockguard_delivery_circuit_open", "1 while the vendor's circuit is open", ["system"])
