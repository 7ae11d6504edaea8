"""The one stock book: its order ledger, and the decisions and monitors agreeing on ATP."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stockguard.config.settings import Settings
from stockguard.state.decision import Decider, DecisionState, Emit
from stockguard.state.inventory import Charge, OrderLedger, SkuState, StockBook
from stockguard.state.models import Order, Removed, parse_click, parse_order, parse_product, parse_stock, parse_trigger
from stockguard.state.monitor import Alert, Monitor, MonitorState, monitor_partition_of
from stockguard.state.surge import Charged, Tick
from tests.helpers import HOUR, MIN, T0, level, order

RULES = Settings().rules
DAY = 24 * HOUR


class Book:
    """A stock book over its own skus."""

    def __init__(self) -> None:
        self.skus: dict[str, SkuState] = {}
        self.book = StockBook(OrderLedger(), self.sku, RULES)

    def sku(self, sku: str, _ts: int = 0) -> SkuState:
        return self.skus.setdefault(sku, SkuState())

    def stock(self, msg: dict[str, Any]) -> None:
        ev = parse_stock(msg)
        self.book.apply_stock(self.sku(ev.sku), ev)

    def atp(self, sku: str, loc: str = "WH-PARIS") -> int:
        found = self.sku(sku).locs.get(loc)
        assert found is not None
        return found.atp


def test_place_takes_each_line_and_says_where() -> None:
    b = Book()
    b.stock(level("A", 10, location="WH-PARIS"))
    b.stock(level("A", 30, location="WH-LYON"))
    lines: list[tuple[str, int] | tuple[str, int, str]] = [("A", 2, "WH-PARIS"), ("A", 3), ("A", 1, "WH-NOWHERE")]
    charges = b.book.place(parse_order(order("o1", "c1", lines, ts=T0 + MIN)))
    assert charges == [
        Charge("A", 2, "WH-PARIS", 8, True),
        Charge("A", 3, "WH-LYON", 27, True),
        Charge("A", 1, "WH-NOWHERE", 0, False),
    ]
    assert b.book.ledger.orders["o1"] == (T0 + MIN, (("A", "WH-PARIS", 2), ("A", "WH-LYON", 3)), False)
    assert b.sku("A").units_sold(T0, RULES.velocity_window) == 6


def test_a_line_with_no_known_stock_has_no_location() -> None:
    b = Book()
    assert b.book.place(parse_order(order("o1", "c1", [("A", 2)]))) == [Charge("A", 2, None, 0, False)]


def test_a_redelivery_and_a_placement_after_the_cancellation_take_nothing() -> None:
    b = Book()
    b.stock(level("A", 10))
    placed = order("o1", "c1", [("A", 2, "WH-PARIS")], ts=T0 + MIN)
    assert b.book.place(parse_order(placed)) is not None
    assert b.book.place(parse_order(placed)) is None
    assert b.atp("A") == 8
    assert b.book.cancel(parse_order(placed | {"status": "cancelled", "ts": T0 + 2 * MIN})) == ["A"]
    assert b.atp("A") == 10
    assert b.book.cancel(parse_order(placed | {"status": "cancelled", "ts": T0 + 3 * MIN})) is None
    assert b.book.place(parse_order(placed | {"ts": T0 + 4 * MIN})) is None
    assert b.atp("A") == 10


def test_an_order_with_a_sku_on_two_lines_takes_both() -> None:
    b = Book()
    b.stock(level("A", 10))
    b.book.place(parse_order(order("o1", "c1", [("A", 2, "WH-PARIS"), ("A", 3, "WH-PARIS")], ts=T0 + MIN)))
    assert b.atp("A") == 5
    b.book.cancel(parse_order(order("o1", "c1", [("A", 2)], ts=T0 + 2 * MIN, status="cancelled")))
    assert b.atp("A") == 10


def test_orders_are_forgotten_order_ttl_after_their_time_on_the_owners_clock() -> None:
    b = Book()
    b.stock(level("A", 100))
    b.book.place(parse_order(order("o1", "c1", [("A", 1, "WH-PARIS")], ts=T0 + MIN)))
    b.book.place(parse_order(order("o2", "c1", [("A", 1, "WH-PARIS")], ts=T0 + 2 * MIN)))
    b.book.expire(T0 + MIN + RULES.order_ttl)
    assert set(b.book.ledger.orders) == {"o1", "o2"}
    b.book.expire(T0 + MIN + RULES.order_ttl + 1)
    assert set(b.book.ledger.orders) == {"o2"}
    # o1 is forgotten: its redelivery is a new order.
    assert b.book.place(parse_order(order("o1", "c1", [("A", 1, "WH-PARIS")], ts=T0 + MIN)))
    assert b.atp("A") == 97


def test_each_line_is_seen_on_the_stock_it_left() -> None:
    b = Book()
    b.stock(level("A", 3))
    b.stock(level("B", 1))
    seen: list[tuple[str, int]] = []
    lines: list[tuple[str, int] | tuple[str, int, str]] = [
        ("A", 1, "WH-PARIS"),
        ("B", 1, "WH-PARIS"),
        ("A", 2, "WH-PARIS"),
    ]
    b.book.place(
        parse_order(order("o1", "c1", lines, ts=T0 + MIN)), lambda ch: seen.append((ch.sku, b.sku(ch.sku).atp()))
    )
    # B sells out before A does: the second line saw A at 2, not at the order's end, 0.
    assert seen == [("A", 2), ("B", 0), ("A", 0)]


# ---- the decisions and the monitors keep the same ATP ----

SKUS = ["A", "B", "C", "D", "E", "F"]
LOCS = ["L1", "L2", "L9"]  # L9 never gets a level from the stream's first event on: lines there are not taken
CUSTOMERS = ["c0", "c1", "c2"]
MONITORS = 3


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    """Draw a stream of every event that moves stock, and some that only move the clocks."""
    n = draw(st.integers(min_value=1, max_value=80))
    ts = T0
    out: list[tuple[str, dict[str, Any]]] = []
    placed: list[dict[str, Any]] = []
    for i in range(n):
        ts += draw(st.sampled_from([0, 1, MIN, HOUR, 5 * HOUR, 3 * DAY, RULES.order_ttl]))
        kind = draw(
            st.sampled_from(["level", "late_level", "adj", "order", "order", "redeliver", "cancel", "trigger", "click"])
        )
        sku = draw(st.sampled_from(SKUS))
        loc = draw(st.sampled_from(LOCS[:2]))
        if kind in ("level", "late_level"):
            t = ts - draw(st.integers(1, 10 * MIN)) if kind == "late_level" else ts
            on_hand, reserved = draw(st.integers(0, 9)), draw(st.integers(0, 3))
            out.append(("stock", level(sku, on_hand, reserved, location=loc, ts=max(T0, t)) | {"event_id": f"e{i}"}))
        elif kind == "adj":
            delta = draw(st.integers(-5, 5))
            adj = {"event_id": f"e{i}", "ts": ts, "type": "adjustment", "sku": sku, "location": loc, "delta": delta}
            out.append(("stock", adj))
        elif kind == "order" or (kind == "redeliver" and not placed):
            lines: list[tuple[str, int] | tuple[str, int, str]] = []
            for _ in range(draw(st.integers(1, 3))):
                line_sku, qty = draw(st.sampled_from(SKUS)), draw(st.integers(1, 4))
                where = draw(st.none() | st.sampled_from(LOCS))
                lines.append((line_sku, qty) if where is None else (line_sku, qty, where))
            msg = order(f"o{i}", draw(st.sampled_from(CUSTOMERS)), lines, ts=ts)
            placed.append(msg)
            out.append(("order", msg))
        elif kind == "redeliver":
            # Redelivered as it was (its own, older ts) or stamped anew.
            again = draw(st.sampled_from(placed))
            out.append(("order", again if draw(st.booleans()) else again | {"ts": ts}))
        elif kind == "cancel":
            seen: bool = draw(st.booleans())
            if placed and seen:
                msg = draw(st.sampled_from(placed))
            else:  # an order placed before our memory
                where = draw(st.none() | st.sampled_from(LOCS))
                msg = order(f"u{i}", "c0", [(sku, 2) if where is None else (sku, 2, where)])
            # A cancellation may come late: with a ts before the events already seen.
            late = draw(st.sampled_from([0, 0, MIN, 2 * HOUR]))
            out.append(("order", msg | {"ts": max(T0, ts - late), "status": "cancelled"}))
        elif kind == "trigger":
            trig = {"trigger_id": f"t{i}", "ts": ts, "campaign_id": "cm", "customer_id": "c1", "kind": "promotion"}
            out.append(("trigger", trig | {"channel": "email", "skus": [sku], "consent": True}))
        else:
            view = {"event_id": f"v{i}", "ts": ts, "type": "product_view", "customer_id": "c1", "session_id": "s"}
            out.append(("click", view | {"sku": sku, "qty": 1}))
    return out


def split(o: Order) -> dict[int, Order]:
    """Give each monitor partition the order with the lines of its skus, as the router does."""
    parts: dict[int, list[Any]] = {}
    for line in o.lines:
        parts.setdefault(monitor_partition_of(line.sku, MONITORS), []).append(line)
    return {j: o._replace(lines=tuple(lines)) for j, lines in parts.items()}


def locations(s: SkuState | None) -> dict[str, int]:
    return {} if s is None else {loc.name: loc.atp for loc in s.locs}


@settings(max_examples=300, deadline=None)
@given(streams())
def test_decisions_and_monitors_agree_on_atp_per_sku_and_location(
    stream: list[tuple[str, dict[str, Any]]],
) -> None:
    # Each view forgets an order order_ttl after it on its own clock (state/inventory.py): an
    # order event a week late can find it remembered by one and not the other. Within the
    # TTL, which these streams stay in, they must agree on every event.
    rules = dataclasses.replace(RULES, sends_per_unit=2, order_ttl=100 * 365 * DAY)
    decider = Decider(DecisionState(0, 1), rules, lambda: 0)
    one = Monitor(MonitorState(0), rules, Settings().surge)
    many = [Monitor(MonitorState(j), rules, Settings().surge) for j in range(MONITORS)]
    emits: list[Emit] = []
    alerts: list[Alert] = []
    ticks: list[Tick] = []
    charged: list[Charged] = []
    for kind, msg in stream:
        ev: Any
        if kind == "stock":
            ev = parse_stock(msg)
            targets = [one, many[monitor_partition_of(ev.sku, MONITORS)]]
        elif kind == "order":
            ev = parse_order(msg)
            for j, part in split(ev).items():
                many[j].apply(part, alerts, ticks, charged)
            targets = [one]
        elif kind == "click":
            ev = parse_click(msg)
            targets = [one, many[monitor_partition_of(ev.sku, MONITORS)]]
        else:
            decider.apply(parse_trigger(msg), emits)
            continue
        decider.apply(ev, emits)
        for m in targets:
            m.apply(ev, alerts, ticks, charged)
        for sku in SKUS:
            want = locations(decider.state.skus.get(sku))
            in_one = one.state.skus.get(sku)
            in_part = many[monitor_partition_of(sku, MONITORS)].state.skus.get(sku)
            assert locations(in_one.stock if in_one else None) == want, sku
            assert locations(in_part.stock if in_part else None) == want, sku


def test_a_catalog_deletion_or_change_moves_no_stock() -> None:
    decider = Decider(DecisionState(0, 1), RULES, lambda: 0)
    monitor = Monitor(MonitorState(0), RULES, Settings().surge)
    out: list[Emit] = []
    for ev in (
        parse_stock(level("A", 7)),
        parse_product(
            {"sku": "A", "ts": T0, "product_id": "A", "group": "g", "size": "M", "price": 9.0}
            | {"unit_cost": 1.0, "active": True, "online": False}
        ),
        Removed("A", T0 + MIN),
    ):
        decider.apply(ev, out)
        monitor.apply(ev, [], [], [])
    assert decider.state.skus["A"].atp() == monitor.state.skus["A"].stock.atp() == 7
