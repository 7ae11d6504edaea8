"""Sku monitor: charging, stock drain, insights."""

from __future__ import annotations

import dataclasses
from typing import Any

from stockguard.config.settings import Settings
from stockguard.state.models import parse_click, parse_order, parse_product, parse_stock
from stockguard.state.monitor import Alert, Monitor, MonitorState
from stockguard.state.surge import Charged, Tick
from tests.helpers import HOUR, MIN, T0, level, order, product

S = Settings()


class M:
    """Feed contract messages into one monitor partition."""

    def __init__(self, **surge: Any) -> None:
        cfg = dataclasses.replace(S.surge, **surge)
        self.m = Monitor(MonitorState(0), S.rules, cfg)
        self.alerts: list[Alert] = []
        self.ticks: list[Tick] = []
        self.charged: list[Charged] = []

    def apply(self, ev: object) -> None:
        self.m.apply(ev, self.alerts, self.ticks, self.charged)

    def stock(self, msg: dict[str, Any]) -> None:
        self.apply(parse_stock(msg))

    def product(self, msg: dict[str, Any]) -> None:
        self.apply(parse_product(msg))

    def order(self, msg: dict[str, Any]) -> None:
        self.apply(parse_order(msg))

    def view(self, sku: str, ts: int) -> None:
        self.apply(
            parse_click(
                {
                    "event_id": "c",
                    "ts": ts,
                    "type": "product_view",
                    "customer_id": "c1",
                    "session_id": "s",
                    "sku": sku,
                    "qty": 1,
                }
            )
        )

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for k, _key, m in self.alerts if (m.get("kind") if k == "alert" else k) == kind or m["kind"] == kind]


def test_lines_are_charged_to_their_location_or_the_highest_atp() -> None:
    m = M()
    m.stock(level("A", 10, location="WH-PARIS"))
    m.stock(level("A", 30, location="WH-LYON"))
    m.order(order("o1", "c1", [("A", 2, "WH-PARIS")], ts=T0 + MIN, campaign_id="cm"))
    m.order(order("o2", "c1", [("A", 3)], ts=T0 + MIN))
    assert [(c.location, c.qty, c.campaign_id, c.loc_atp) for c in m.charged] == [
        ("WH-PARIS", 2, "cm", 8),
        ("WH-LYON", 3, None, 27),
    ]


def test_ticks_mark_each_new_event_minute() -> None:
    m = M()
    m.stock(level("A", 10, ts=T0))
    m.stock(level("A", 10, ts=T0 + 10_000))
    m.stock(level("A", 10, ts=T0 + MIN + 1))
    assert [t.ts for t in m.ticks] == [T0, T0 + MIN + 1]


def drain_setup(campaign: str | None = "cm-42", qty: int = 40) -> M:
    m = M()
    m.product(product("A"))
    m.stock(level("A", qty))
    for i in range(6):
        m.order(order(f"o{i}", f"c{i}", [("A", 1, "WH-PARIS")], ts=T0 + i * 30_000, campaign_id=campaign))
    return m


def test_stock_drain_opens_once_per_episode_keyed_by_location() -> None:
    m = drain_setup()
    drains = m.of("stock_drain")
    assert len(drains) == 1
    d = drains[0]
    assert d["status"] == "open" and d["location"] == "WH-PARIS" and d["sku"] == "A"
    assert d["campaign_ids"] == ["cm-42"] and d["campaign_share"] == 1.0
    assert d["top_skus"][0]["minutes_to_stockout"] < S.surge.drain_horizon / MIN
    m.order(order("o9", "c9", [("A", 1, "WH-PARIS")], ts=T0 + 4 * MIN, campaign_id="cm-42"))
    assert len(m.of("stock_drain")) == 1


def test_no_drain_when_campaigns_drive_less_than_half() -> None:
    assert drain_setup(campaign=None).of("stock_drain") == []


def test_no_drain_when_stock_covers_the_horizon() -> None:
    assert drain_setup(qty=10_000).of("stock_drain") == []


def test_a_drain_alert_comes_before_the_stock_out_never_at_atp_0() -> None:
    # 6 units of stock, 6 campaign orders of 1: the drain trend is there from the third
    # order on, but the last order takes ATP to 0, a stock-out, which is not forecast.
    m = drain_setup(qty=6)
    drains = m.of("stock_drain")
    assert drains, "a drain alert while stock was left"
    assert all(d["top_skus"][0]["atp"] > 0 and d["top_skus"][0]["minutes_to_stockout"] > 0 for d in drains)
    # Stock already gone before the trend: no alert at all.
    assert drain_setup(qty=0).of("stock_drain") == []


def test_restock_resolves_the_drain() -> None:
    m = drain_setup()
    m.stock(
        {
            "event_id": "r",
            "ts": T0 + 5 * MIN,
            "type": "adjustment",
            "sku": "A",
            "location": "WH-PARIS",
            "delta": 5000,
            "reason": "receipt",
        }
    )
    drains = m.of("stock_drain")
    assert [d["status"] for d in drains] == ["open", "resolved"]
    assert drains[0]["alert_id"] == drains[1]["alert_id"]


def test_offline_in_stock_is_invisible_once_a_day() -> None:
    m = M()
    m.stock(level("A", 100))
    m.product(product("A", online=False, ts=T0 + 1))
    m.product(product("A", online=False, ts=T0 + 2))
    ins = m.of("invisible_in_stock")
    assert len(ins) == 1 and ins[0]["sku"] == "A" and ins[0]["atp"] == 100 and "offline" in ins[0]["detail"]
    m.product(product("A", online=False, ts=T0 + 25 * HOUR))
    assert len(m.of("invisible_in_stock")) == 2


def test_no_views_for_a_window_while_in_stock_is_invisible() -> None:
    m = M()
    m.product(product("A"))
    m.product(product("B"))
    m.stock(level("A", 100))
    m.stock(level("B", 100))
    for h in range(0, 14):
        m.view("B", T0 + h * HOUR + 1)
    ins = m.of("invisible_in_stock")
    assert [i["sku"] for i in ins] == ["A"] and "no product views" in ins[0]["detail"]


def test_overstock_needs_cover_and_margin() -> None:
    m = M()
    m.product(product("RICH", price=20.0, unit_cost=8.0))  # 60 % margin
    m.product(product("THIN", price=20.0, unit_cost=18.0))  # 10 % margin
    m.product(product("FAST", price=20.0, unit_cost=8.0))
    for s in ("RICH", "THIN", "FAST"):
        m.stock(level(s, 500))
    for h in range(0, 8):
        m.order(order(f"o{h}", "c", [("FAST", 60, "WH-PARIS")], ts=T0 + h * HOUR + 5))
        for s in ("RICH", "THIN", "FAST"):
            m.view(s, T0 + h * HOUR + 10)
    over = m.of("overstock")
    assert [o["sku"] for o in over] == ["RICH"]
    assert over[0]["unit_margin"] == 12.0


def test_an_insight_sweep_is_spread_over_event_time_not_one_stall() -> None:
    m = M()
    skus = [f"S{i:04d}" for i in range(3000)]
    for s in skus:
        m.stock(level(s, 100))
        m.product(product(s, online=False))
    first = {i["sku"] for i in m.of("invisible_in_stock")}
    assert first == set(skus)  # a catalog change is checked at once
    m.alerts.clear()
    # The next round starts at the 3 h boundary: one millisecond later only a slice is due.
    boundary = (T0 // (3 * HOUR) + 2) * 3 * HOUR
    m.view(skus[0], boundary)
    m.view(skus[0], boundary + 1)
    assert m.m.state.round_pos <= len(skus) // 1000 + 1
    ts = boundary
    checked = []
    while ts < boundary + 30 * MIN:
        ts += MIN
        m.view(skus[0], ts)
        if m.m.state.round:
            checked.append(m.m.state.round_pos)
    # A minute of event time checks 1/30 of the skus, in order, to the end of the round.
    assert checked == [len(skus) * k // 30 for k in range(1, 30)]
    assert m.m.state.round == []  # every sku checked within the spread
    # Insights are once a day: the round checked every sku and sent nothing new.
    assert m.of("invisible_in_stock") == []
