"""The wired dataflow with TestingSource/TestingSink: routing, DLQ, partitions, workers."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from stockguard.config.settings import Settings
from stockguard.flows.dataflow import build_flow
from stockguard.flows.logics import DecideLogic
from stockguard.flows.records import CampaignView, OutRecord, RawRecord, StockView
from stockguard.state.decision import DecisionState
from tests.helpers import MIN, T0, level, order, product, trigger

S = Settings()
TP = S.topics


def raw(topic: str, value: Any, key: str | None = None, offset: int = 0) -> RawRecord:
    data = value.encode() if isinstance(value, str) else orjson.dumps(value)
    return RawRecord(topic, key.encode() if key else None, data, 0, offset)


def run(records: list[RawRecord], settings: Settings = S) -> list[OutRecord]:
    out: list[OutRecord] = []
    flow = build_flow(settings, {"test": TestingSource(records)}, {"test": TestingSink(out)}, clock=lambda: 7)
    run_main(flow)  # type: ignore[no-untyped-call]
    return out


def by_topic(out: list[OutRecord]) -> dict[str, list[dict[str, Any]]]:
    res: dict[str, list[dict[str, Any]]] = {}
    for r in out:
        res.setdefault(r.topic, []).append(orjson.loads(r.value))
    return res


def scenario() -> list[RawRecord]:
    return [
        raw(TP.products, product("RED", substitutes=["BLUE"])),
        raw(TP.products, product("BLUE")),
        raw(TP.stock, level("RED", 0)),
        raw(TP.stock, level("BLUE", 4)),
        raw(TP.triggers, trigger("t1", "c1", ["RED"], ts=T0 + MIN)),
        raw(TP.triggers, trigger("t2", "c2", ["BLUE"], ts=T0 + MIN)),
        raw(TP.triggers, trigger("t3", "c3", ["BLUE"], ts=T0 + MIN, consent=False)),
        raw(TP.orders, order("o1", "c9", [("BLUE", 4)], ts=T0 + 2 * MIN)),
        raw(TP.triggers, trigger("t4", "c4", ["BLUE"], ts=T0 + 3 * MIN)),
    ]


def test_flow_decides_retargets_suppresses_and_retracts() -> None:
    got = by_topic(run(scenario()))
    approved = {m["trigger_id"]: m for m in got[TP.approved]}
    assert approved["t1"]["decision"] == "retarget" and approved["t1"]["skus"] == ["BLUE"]
    assert approved["t2"]["decision"] == "send"
    suppressed = {m["trigger_id"]: m["reason"] for m in got[TP.suppressed]}
    assert suppressed == {"t3": "no_consent", "t4": "out_of_stock"}
    assert sorted(m["trigger_id"] for m in got[TP.retracted]) == ["t1", "t2"]
    assert TP.dlq not in got


def test_output_keys_follow_the_contract() -> None:
    out = run(scenario() + [raw(TP.orders, "not json", key="o-x")])
    for r in out:
        if r.topic in (TP.approved, TP.suppressed, TP.retracted):
            assert r.key == orjson.loads(r.value)["customer_id"]
        if r.topic == TP.dlq:
            assert r.key == TP.orders


def test_bad_input_becomes_a_dead_letter_with_position_raw_and_reason() -> None:
    bad_line = {"sku": "A", "qty": -1, "unit_price": 1.0}
    records = [
        RawRecord(TP.orders, b"o-7", b"{not json", 3, 1234),
        raw(TP.orders, order("o-8", "c1", [("A", 1)]) | {"lines": [bad_line]}),
        raw(TP.stock, level("A", 1) | {"type": "teleport"}),
        raw("some.other.topic", {"x": 1}),
        RawRecord(TP.triggers, b"c1", None, 0, 5),
        raw(TP.triggers, trigger("t1", "c1", ["A"])),
    ]
    got = by_topic(run(records))
    dlq = got[TP.dlq]
    assert len(dlq) == 5
    first = dlq[0]
    assert first["topic"] == TP.orders and first["partition"] == 3 and first["offset"] == 1234
    assert first["key"] == "o-7" and first["raw"] == "{not json" and first["error"].startswith("value: not JSON")
    assert first["ts"] == 7
    errors = [m["error"] for m in dlq]
    assert errors[1] == "lines[0].qty: expected positive int"
    assert errors[2].startswith("type: unknown value 'teleport'")
    assert errors[3].startswith("topic: not an input topic")
    assert errors[4] == "value: missing (tombstone)"
    assert [m["trigger_id"] for m in got[TP.approved]] == ["t1"]


def test_clickstream_and_campaigns_are_validated() -> None:
    click = {
        "event_id": "c1",
        "ts": T0,
        "type": "product_view",
        "customer_id": "c1",
        "session_id": "s",
        "sku": "A",
        "qty": 1,
    }
    campaign = {
        "campaign_id": "cm",
        "ts": T0,
        "name": "x",
        "start_ts": T0,
        "end_ts": T0 + 1,
        "audience_size": 1,
        "media_cost": 1.0,
    }
    got = by_topic(
        run(
            [
                raw(TP.clickstream, click),
                raw(TP.clickstream, click | {"qty": "x"}),
                raw(TP.campaigns, campaign),
                raw(TP.campaigns, campaign | {"end_ts": 0}),
            ]
        )
    )
    assert [m["topic"] for m in got[TP.dlq]] == [TP.clickstream, TP.campaigns]


def decisions(out: list[OutRecord]) -> set[tuple[str, str, str]]:
    res = set()
    for r in out:
        m = orjson.loads(r.value)
        if r.topic in (TP.approved, TP.suppressed):
            res.add((r.topic, m["trigger_id"], orjson.dumps(m.get("skus")).decode() + m.get("reason", "")))
        elif r.topic == TP.retracted:
            res.add((r.topic, m["trigger_id"], m["sku"]))
    return res


def big_scenario() -> list[RawRecord]:
    recs = []
    for i in range(20):
        recs.append(raw(TP.products, product(f"S{i}", group=f"g{i % 3}")))
        recs.append(raw(TP.stock, level(f"S{i}", i % 4)))
    for j in range(200):
        recs.append(raw(TP.triggers, trigger(f"t{j}", f"c{j % 37}", [f"S{j % 20}"], ts=T0 + j * 1000)))
        if j % 10 == 0:
            recs.append(raw(TP.orders, order(f"o{j}", f"c{j % 37}", [(f"S{(j + 3) % 20}", 1)], ts=T0 + j * 1000)))
    return recs


def test_decisions_do_not_depend_on_the_number_of_workers() -> None:
    recs = big_scenario()
    # Pinned: an automatic count would follow the workers and change the budget split.
    s4 = dataclasses.replace(S, decision_partitions=4)
    one = decisions(run(recs, s4))
    out: list[OutRecord] = []
    flow = build_flow(s4, {"test": TestingSource(recs)}, {"test": TestingSink(out)}, clock=lambda: 7)
    cluster_main(flow, [], 0, worker_count_per_proc=3)  # type: ignore[no-untyped-call]
    assert decisions(out) == one
    assert len(out) == len(run(recs, s4))


def test_one_partition_and_many_agree_when_budgets_are_not_binding() -> None:
    recs = big_scenario()
    one = decisions(run(recs, dataclasses.replace(S, decision_partitions=1)))
    many = decisions(run(recs, dataclasses.replace(S, decision_partitions=5)))
    assert one == many


def test_a_catalog_tombstone_deletes_the_product_not_a_dead_letter() -> None:
    records = [
        raw(TP.products, product("RED", substitutes=["BLUE"])),
        raw(TP.products, product("BLUE")),
        raw(TP.stock, level("RED", 10)),
        raw(TP.stock, level("BLUE", 10)),
        raw(TP.triggers, trigger("t1", "c1", ["RED"], ts=T0 + MIN)),
        RawRecord(TP.products, b"RED", None, 0, 7, T0 + 2 * MIN),  # RED deleted from the catalog
        RawRecord(TP.campaigns, b"cm-42", None, 0, 8, T0 + 2 * MIN),
        raw(TP.triggers, trigger("t2", "c2", ["RED"], ts=T0 + 3 * MIN)),
        RawRecord(TP.products, None, None, 0, 9),  # a tombstone without a key cannot be applied
        RawRecord(TP.orders, b"o1", None, 0, 10),  # orders are not compacted: a null is bad input
    ]
    got = by_topic(run(records))
    assert [m["trigger_id"] for m in got[TP.retracted]] == ["t1"]
    t2 = next(m for m in got[TP.approved] if m["trigger_id"] == "t2")
    assert t2["decision"] == "retarget" and t2["skus"] == ["BLUE"]
    assert [(m["topic"], m["error"].split(":")[0]) for m in got[TP.dlq]] == [(TP.products, "key"), (TP.orders, "value")]


def test_a_recovery_store_with_another_partition_count_is_refused_with_the_fix() -> None:
    stored = pickle.dumps(DecisionState(0, 4))
    with pytest.raises(RuntimeError, match="decision_partitions=4"):
        DecideLogic(S.with_workers(1), lambda: 7, stored, keep_snapshots=True)
    resumed = DecideLogic(dataclasses.replace(S, decision_partitions=4), lambda: 7, stored, keep_snapshots=True)
    assert resumed.decider is not None and resumed.decider.state.partitions == 4


def campaign_day() -> list[RawRecord]:
    campaign = {
        "campaign_id": "cm-42",
        "ts": T0,
        "name": "Cyber",
        "start_ts": T0,
        "end_ts": T0 + 60 * MIN,
        "audience_size": 10,
        "media_cost": 50.0,
    }
    return [
        raw(TP.campaigns, campaign, key="cm-42"),
        raw(TP.products, product("A", price=20.0, unit_cost=8.0)),
        raw(TP.stock, level("A", 10)),
        raw(TP.orders, order("o1", "c1", [("A", 2)], ts=T0 + MIN, campaign_id="cm-42")),
        raw(TP.orders, order("o2", "c2", [("A", 1)], ts=T0 + 2 * MIN, campaign_id="cm-42")),
        raw(TP.campaigns, campaign | {"end_ts": 0}, key="cm-42"),  # invalid: dead-lettered either way
    ]


def step_ids(flow: Any) -> set[str]:
    return {s.step_id.split(".", 1)[1] for s in flow.substeps}


def test_campaign_and_stock_views_reach_a_view_sink() -> None:
    out: list[OutRecord] = []
    views: list[StockView | CampaignView] = []
    flow = build_flow(S, {"t": TestingSource(campaign_day())}, {"o": TestingSink(out)}, views=TestingSink(views))
    run_main(flow)  # type: ignore[no-untyped-call]
    last = [v.view for v in views if isinstance(v, CampaignView)][-1]
    assert (last["campaign_id"], last["orders"], last["units"], last["revenue"]) == ("cm-42", 2, 3, 60.0)
    assert [v.view["atp"] for v in views if isinstance(v, StockView)][-1] == 7
    assert [orjson.loads(r.value)["topic"] for r in out if r.topic == TP.dlq] == [TP.campaigns]


def test_without_a_view_sink_no_view_is_built_and_the_topics_are_the_same() -> None:
    with_views = build_flow(S, {"t": TestingSource([])}, {"o": TestingSink([])}, views=TestingSink([]))
    without = build_flow(S, {"t": TestingSource([])}, {"o": TestingSink([])})
    assert {"track_campaigns", "pick_campaigns", "pick_views"} <= step_ids(with_views)
    assert not {"track_campaigns", "pick_campaigns", "pick_views"} & step_ids(without)
    # The output topics do not depend on who reads the views.
    plain: list[OutRecord] = []
    run_main(build_flow(S, {"t": TestingSource(campaign_day())}, {"o": TestingSink(plain)}, clock=lambda: 7))  # type: ignore[no-untyped-call]
    viewed: list[OutRecord] = []
    flow = build_flow(
        S, {"t": TestingSource(campaign_day())}, {"o": TestingSink(viewed)}, views=TestingSink([]), clock=lambda: 7
    )
    run_main(flow)  # type: ignore[no-untyped-call]
    assert [(r.topic, r.value) for r in plain] == [(r.topic, r.value) for r in viewed]
