"""Each vendor's calls for a batch: the right endpoint, batch limits, positions carried."""

from __future__ import annotations

from typing import Any

from stockguard.state.delivery.plan import BrazePlanner, KlaviyoPlanner, Msg, ShoppingfeedPlanner
from stockguard.state.delivery.stock import StockPush


def approved(i: int, campaign: str = "cm-42") -> Msg:
    value: dict[str, Any] = {
        "trigger_id": f"t-{i}",
        "ts": 1764547400000 + i,
        "campaign_id": campaign,
        "customer_id": f"c-{i}",
        "kind": "cart_abandonment",
        "channel": "email",
        "skus": ["TEE-RED-M"],
        "decision": "send",
    }
    return Msg("approved", value, ("approved", 0, i))


def retracted(i: int) -> Msg:
    value = {"trigger_id": f"t-{i}", "ts": 1764547500000, "customer_id": f"c-{i}", "sku": "TEE-RED-M", "reason": "x"}
    return Msg("retracted", value, ("retracted", 0, i))


def test_klaviyo_makes_one_event_per_decision_with_its_position() -> None:
    k = KlaviyoPlanner()
    calls, bad = k.approvals([approved(1), approved(2)])
    assert bad == [] and [c.path for c in calls] == ["/api/events"] * 2
    assert calls[0].positions == (("approved", 0, 1),) and calls[0].trigger_ids == ("t-1",)
    assert calls[0].body["data"]["attributes"]["unique_id"] == "t-1:approved"
    rcalls, _ = k.retractions([retracted(1)])
    assert rcalls[0].body["data"]["attributes"]["unique_id"] == "t-1:retracted"


def test_a_decision_without_its_ids_is_unsendable_not_dropped() -> None:
    broken = Msg("approved", {"trigger_id": "t-9", "ts": 1}, ("approved", 0, 9))
    calls, bad = KlaviyoPlanner().approvals([broken])
    assert calls == [] and bad == [(broken, "no customer_id")]
    calls, bad = BrazePlanner({"cm-42": "b-1"}).retractions([Msg("retracted", {"trigger_id": "t"}, ("r", 0, 0))])
    assert calls == [] and bad[0][1] == "no customer_id"


def test_braze_groups_50_recipients_per_campaign_and_reports_unmapped() -> None:
    b = BrazePlanner({"cm-42": "b-1", "cm-7": "b-7"})
    msgs = [approved(i) for i in range(60)] + [approved(100, "cm-7"), approved(101, "cm-none")]
    calls, bad = b.approvals(msgs)
    assert [(c.body["campaign_id"], len(c.body["recipients"])) for c in calls] == [("b-1", 50), ("b-1", 10), ("b-7", 1)]
    assert all(len(c.positions) == len(c.body["recipients"]) == len(c.trigger_ids) for c in calls)
    ids = [r["trigger_properties"]["trigger_id"] for r in calls[1].body["recipients"]]
    assert ids == list(calls[1].trigger_ids)
    assert [m.value["trigger_id"] for m, _why in bad] == ["t-101"]
    tracks, _ = b.retractions([retracted(i) for i in range(80)])
    assert [(c.path, len(c.body["events"])) for c in tracks] == [("/users/track", 75), ("/users/track", 5)]


def test_stock_calls_per_vendor() -> None:
    push = StockPush({f"S-{i:03}": i for i in range(120)}, [("v", 0, 0)])
    assert [len(c.body["data"]["attributes"]["variants"]["data"]) for c in KlaviyoPlanner().stock(push)] == [100, 20]
    braze = BrazePlanner({}, catalog="shop").stock(push)
    assert {c.path for c in braze} == {"/catalogs/shop/items"} and [len(c.body["items"]) for c in braze] == [50, 50, 20]
    sf = ShoppingfeedPlanner("cat-1").stock(push)
    assert [(c.method, c.path, len(c.body["inventory"])) for c in sf] == [
        ("PUT", "/v1/catalog/cat-1/inventory", 100)
    ] + [("PUT", "/v1/catalog/cat-1/inventory", 20)]
    assert ShoppingfeedPlanner("cat-1").approvals([approved(1)]) == ([], [])
