"""Each figure of the report from a small hand-made day, worked out by hand."""

from __future__ import annotations

from typing import Any

from stockguard.state.report import HOUR, Costs, figures

H0 = 1_764_547_200_000  # an hour boundary
TOPICS = {
    "approved": "a",
    "suppressed": "s",
    "retracted": "r",
    "surge_alerts": "alerts",
    "insights": "ins",
    "products": "products",
    "campaigns": "campaigns",
    "orders": "orders",
}


def trig(tid: str, cust: str, ts: int, skus: list[str], **extra: Any) -> dict[str, Any]:
    return {"trigger_id": tid, "customer_id": cust, "ts": ts, "skus": skus, **extra}


APPROVED = [
    trig("t1", "c1", H0 + 10, ["A"], decision="send", substitutions=[]),
    trig("t2", "c2", H0 + 20, ["B2"], decision="retarget", substitutions=[{"from": "B", "to": "B2"}]),
    trig("t3", "c3", H0 + HOUR + 5, ["B2"], decision="retarget", substitutions=[{"from": "B", "to": "B2"}]),
    trig("t4", "c4", H0 + HOUR + 6, ["A"], decision="send", substitutions=[]),
]
SUPPRESSED = [
    trig("t5", "c5", H0 + 30, ["B"], decision="suppress", reason="out_of_stock"),
    trig("t6", "c1", H0 + HOUR + 7, ["A"], decision="suppress", reason="frequency_capped"),
    trig("t7", "c6", H0 + 2 * HOUR, ["B", "C"], decision="suppress", reason="stock_budget_exhausted"),
]
RETRACTED = [{"trigger_id": "t4", "customer_id": "c4", "sku": "A", "ts": H0 + HOUR + 50}]
INPUTS: list[tuple[str, Any]] = [
    ("products", {"sku": "A", "price": 30.0, "unit_cost": 10.0}),
    ("products", {"sku": "B2", "price": 25.0, "unit_cost": 15.0}),
    ("campaigns", {"campaign_id": "cm", "name": "Cyber", "start_ts": H0, "end_ts": H0 + 2 * HOUR, "media_cost": 40.0}),
    ("orders", {"order_id": "o1", "status": "placed", "campaign_id": "cm", "ts": H0 + 100,
                "lines": [{"sku": "A", "qty": 2, "unit_price": 30.0}]}),
    ("orders", {"order_id": "o2", "status": "placed", "campaign_id": "cm", "ts": H0 + HOUR + 100,
                "lines": [{"sku": "B2", "qty": 1, "unit_price": 25.0}]}),
    ("orders", {"order_id": "o3", "status": "placed", "campaign_id": "cm", "ts": H0 + HOUR + 200,
                "lines": [{"sku": "A", "qty": 1, "unit_price": 30.0}]}),
    ("orders", {"order_id": "o3", "status": "cancelled", "ts": H0 + HOUR + 300, "lines": []}),
    ("orders", {"order_id": "o4", "status": "placed", "campaign_id": None, "ts": H0 + 5,
                "lines": [{"sku": "A", "qty": 9, "unit_price": 30.0}]}),
]  # fmt: skip
OUTPUTS = {"a": APPROVED, "s": SUPPRESSED, "r": RETRACTED, "alerts": [], "ins": []}


def test_outcomes_per_hour() -> None:
    f = figures(OUTPUTS, None, TOPICS, Costs())
    h = H0 // HOUR
    assert dict(f.outcomes[h]) == {"sent": 1, "re-targeted": 1, "suppressed: out_of_stock": 1}
    assert dict(f.outcomes[h + 1]) == {"re-targeted": 1, "sent": 1, "suppressed: frequency_capped": 1, "retracted": 1}
    assert dict(f.outcomes[h + 2]) == {"suppressed: stock_budget_exhausted": 1}
    assert f.hours == [h, h + 1, h + 2]


def test_a_stock_blind_sender_would_have_sent_five_out_of_stock_messages_to_five_customers() -> None:
    sb = figures(OUTPUTS, None, TOPICS, Costs(cost_per_send=0.5)).stock_blind
    # t5, t7 suppressed for stock; t2, t3 re-targeted; t4 retracted. Not t6 (capped).
    assert (sb.suppressed, sb.retargeted, sb.retracted, sb.sends_avoided) == (2, 2, 1, 5)
    assert sb.customers_spared == 5  # c2, c3, c4, c5, c6
    assert sb.cost_avoided == 2.5


def test_skus_pushed_while_unavailable_and_retargets_with_the_margin_kept() -> None:
    f = figures(OUTPUTS, INPUTS, TOPICS, Costs())
    by = {p["sku"]: p for p in f.pushed}
    assert (by["B"]["suppressed"], by["B"]["retargeted_away"], by["B"]["pushes"], by["B"]["hours"]) == (2, 2, 4, 3)
    assert (by["A"]["retracted"], by["A"]["pushes"]) == (1, 1)
    assert [p["sku"] for p in f.pushed] == ["B", "A", "C"]
    assert f.retargets == [{"from": "B", "to": "B2", "count": 2, "margin_kept": 20.0}]
    # Without the input there is no catalog to price the margin with.
    assert figures(OUTPUTS, None, TOPICS, Costs()).retargets[0]["margin_kept"] is None


def test_campaign_pnl_counts_costs_and_spreads_media_over_its_hours() -> None:
    costs = Costs(shipping_per_order=4.0, shipping_per_unit=1.0, operating_per_order=2.0, operating_per_unit=0.5)
    (cm,) = figures(OUTPUTS, INPUTS, TOPICS, costs).campaigns
    # o1 (2 x A) and o2 (1 x B2); o3 cancelled; o4 has no campaign.
    assert (cm.campaign_id, cm.name, cm.orders, cm.units) == ("cm", "Cyber", 2, 3)
    assert cm.revenue == 85.0
    assert cm.gross_margin == 2 * 20.0 + 10.0
    assert cm.media_cost == 40.0
    assert cm.shipping_cost == 2 * 4.0 + 3 * 1.0
    assert cm.operating_cost == 2 * 2.0 + 3 * 0.5
    assert cm.net_margin == 50.0 - 40.0 - 11.0 - 5.5
    h = H0 // HOUR
    # Hour 0: margin 40, media 20, shipping 6, operating 3; hour 1: 10, 20, 5, 2.5.
    assert cm.hourly_net() == {h: 40.0 - 20.0 - 6.0 - 3.0, h + 1: 10.0 - 20.0 - 5.0 - 2.5}
    assert sum(cm.hourly_net().values()) == cm.net_margin
