"""The output counter: a batch counted per series adds what counting per record would."""

from __future__ import annotations

from prometheus_client import REGISTRY

from stockguard.config.settings import Settings
from stockguard.flows.metrics import MetricsSink
from stockguard.flows.records import OutRecord

S = Settings()
TP = S.topics


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_batch_adds_each_series_its_count_and_each_decision_its_latency() -> None:
    names = [
        ("stockguard_triggers_total", {"decision": "send"}),
        ("stockguard_triggers_total", {"decision": "retarget"}),
        ("stockguard_triggers_total", {"decision": "suppress"}),
        ("stockguard_suppressions_total", {"reason": "out_of_stock"}),
        ("stockguard_retractions_total", {}),
        ("stockguard_dlq_total", {"input": "triggers", "reason": "lines[].qty"}),
        ("stockguard_dlq_total", {"input": "internal", "reason": "x"}),
        ("stockguard_surge_alerts_total", {"kind": "order_surge", "status": "open", "location": "WH-T1"}),
        ("stockguard_insights_total", {"kind": "overstock"}),
        ("stockguard_decision_latency_seconds_count", {}),
        ("stockguard_decision_latency_seconds_sum", {}),
    ]
    before = [sample(n, **lb) for n, lb in names]
    batch = [
        OutRecord(TP.approved, "c1", b"{}", "send", source_ts=900),
        OutRecord(TP.approved, "c2", b"{}", "send", source_ts=990),
        OutRecord(TP.approved, "c3", b"{}", "retarget"),
        OutRecord(TP.suppressed, "c4", b"{}", "out_of_stock", source_ts=1000),
        OutRecord(TP.retracted, "c1", b"{}", "out_of_stock"),
        OutRecord(TP.dlq, TP.triggers, b"{}", "lines[3].qty"),
        OutRecord(TP.dlq, TP.triggers, b"{}", "lines[0].qty"),
        OutRecord(TP.dlq, "decide_triggers", b"{}", "x"),
        OutRecord(TP.surge_alerts, "WH-T1", b"{}", "order_surge:open"),
        OutRecord(TP.insights, "A", b"{}", "overstock"),
    ]
    part = MetricsSink(S, clock_ms=lambda: 1000).build("count_outputs", 0, 1)
    part.write_batch(batch)
    added = [sample(n, **lb) - b for (n, lb), b in zip(names, before, strict=True)]
    assert added[:9] == [2, 1, 1, 1, 1, 2, 1, 1, 1]
    # Latency of the three decisions read from Kafka: 100 ms, 10 ms and 0 ms.
    assert added[9] == 3
    assert abs(added[10] - 0.11) < 1e-9
