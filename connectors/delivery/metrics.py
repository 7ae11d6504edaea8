"""Prometheus metrics of the deliverers (labels bounded: system, outcome, endpoint, topic)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["CIRCUIT_OPEN", "DELIVERED", "DELIVERY_LAG", "DELIVERY_LATENCY", "OUTCOMES", "REQUESTS", "REQUEST_LATENCY"]

# outcome: delivered, duplicate (already sent before a restart), rejected (4xx: delivery
# DLQ), unsendable (no request can be made: delivery DLQ), in_doubt (a send cut by a
# crash: delivery DLQ), skipped (a retraction whose approval was never delivered), stock
# (stock items pushed, accepted or not: a refused push is a 4xx in REQUESTS).
OUTCOMES = ("delivered", "duplicate", "rejected", "unsendable", "in_doubt", "skipped", "stock")
DELIVERED = Counter("stockguard_delivery", "Decisions and stock items delivered, by outcome", ["system", "outcome"])
# status: the HTTP status, or "refused" / "timeout" / "error" when no answer came.
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
# The read lag (high watermark minus the consumer's position), every 5 s from a task of
# its own: a batch being delivered is not in it, new messages behind a stuck one are.
DELIVERY_LAG = Gauge(
    "stockguard_delivery_consumer_lag", "Messages on the topic the deliverer has not read yet", ["system", "topic"]
)
CIRCUIT_OPEN = Gauge("stockguard_delivery_circuit_open", "1 while the vendor's circuit is open", ["system"])
