"""The delivery bench's figures from small hand-made produce and arrival times."""

from __future__ import annotations

import math

from bench.deliver_bench import approval, rows_of, summarize


def test_latency_rate_lost_and_doubled_per_trigger_id() -> None:
    produced = {f"t{i}": 100.0 + i / 100 for i in range(100)}  # 100/s for 1 s
    arrivals = [(f"t{i}", produced[f"t{i}"] + 0.002) for i in range(98)]  # t98, t99 lost
    arrivals += [("t5", produced["t5"] + 0.5), ("t7", produced["t7"] + 0.001 + 0.3), ("warm-1", 100.0)]
    s = summarize(produced, arrivals, 100.0, 100.99)
    assert s["produced"] == 100 and s["delivered"] == 98
    assert s["lost"] == 2 and s["doubled"] == 2 and s["unexpected"] == 1
    # The first arrival counts: a repeat is a double, not a later delivery.
    assert math.isclose(s["p50_ms"], 2.0, abs_tol=1e-6) and math.isclose(s["max_ms"], 2.0, abs_tol=1e-6)
    assert math.isclose(s["offered_per_s"], 100 / 0.99)
    assert s["delivered_by_last_produce"] == 98
    assert s["drain_after_last_produce_s"] == 0.0
    assert s["p99_ms_per_5s"] == [2.0]


def test_a_backlog_shows_as_drain_and_growing_latency() -> None:
    produced = {f"t{i}": float(i) for i in range(20)}  # 1/s for 20 s
    arrivals = [(f"t{i}", i * 1.5) for i in range(20)]  # delivered at 2/3 of the rate
    s = summarize(produced, arrivals, 0.0, 19.0)
    assert s["lost"] == 0 and s["doubled"] == 0
    assert math.isclose(s["drain_after_last_produce_s"], 9.5)
    assert math.isclose(s["delivered_per_s"], 20 / 28.5)
    assert s["p99_ms_per_5s"] == sorted(s["p99_ms_per_5s"]) and s["p99_ms_per_5s"][-1] > s["p99_ms_per_5s"][0]


def test_an_approval_is_the_contracts_message_keyed_by_customer() -> None:
    import orjson

    key, value = approval("t-1", 7)
    msg = orjson.loads(value)
    assert key == msg["customer_id"] == "c-7"
    assert msg["decision"] == "send" and msg["trigger_id"] == "t-1" and isinstance(msg["ts"], int)
    assert {"campaign_id", "kind", "channel", "skus", "consent", "decided_ts"} <= set(msg)


def test_the_table_reads_every_figure() -> None:
    produced = {f"t{i}": float(i) / 10 for i in range(10)}
    s = summarize(produced, [(t, at + 0.003) for t, at in produced.items()], 0.0, 0.9)
    cpu = {"deliverer": 0.5, "fake vendor": 0.2, "machine_busy": 0.9, "machine_steal": 0.0}
    rate = s | {
        "vendor_round_trip_p50_le_ms": 2.5,
        "vendor_round_trip_p99_le_ms": 10.0,
        "cpu_share": cpu,
    }
    result = {
        "service_ms": 1.0,
        "systems": [{"system": "klaviyo", "rate": rate, "max": s | {"cpu_share": cpu}, "outcomes": {"delivered": 20}}],
        "check": {"requests": 10, "achieved_rate": 10.0, "answers": {"200 send": 10}, "p50_ms": 1.0, "p99_ms": 2.0}
        | {"p999_ms": 3.0, "gateway_cpu_share": 0.5},
    }
    text = "\n".join(f"{a} {b}" for a, b in rows_of(result))
    assert "lost 0, doubled 0" in text and "deliverer 50%" in text and "200 send: 10" in text
