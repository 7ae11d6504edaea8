"""Invariants over random event streams (hypothesis), checked against the naive reference."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stockguard.config.settings import Settings
from stockguard.state.decision import APPROVED, RETRACTED, SUPPRESSED, Decider, DecisionState, Emit
from stockguard.state.models import parse_order, parse_product, parse_stock, parse_trigger
from tests.helpers import HOUR, T0
from tests.oracle import RefStock

SKUS = ["A", "B", "C", "D", "E"]
LOCS = ["L1", "L2"]
CUSTOMERS = ["c0", "c1", "c2", "c3"]
KINDS = ["cart_abandonment", "browse_abandonment", "promotion", "back_in_stock", "price_drop"]


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    n = draw(st.integers(min_value=1, max_value=60))
    ts = T0
    out: list[tuple[str, dict[str, Any]]] = []
    order_ids: list[str] = []
    for i in range(n):
        ts += draw(st.sampled_from([0, 1, 60_000, HOUR, 5 * HOUR, 17 * HOUR]))
        kind = draw(st.sampled_from(["level", "adj", "order", "cancel", "trigger", "trigger", "trigger", "product"]))
        sku = draw(st.sampled_from(SKUS))
        if kind == "level":
            out.append(
                (
                    "inventory.stock",
                    {
                        "event_id": f"e{i}",
                        "ts": ts,
                        "type": "level",
                        "sku": sku,
                        "location": draw(st.sampled_from(LOCS)),
                        "on_hand": draw(st.integers(0, 6)),
                        "reserved": draw(st.integers(0, 3)),
                    },
                )
            )
        elif kind == "adj":
            out.append(
                (
                    "inventory.stock",
                    {
                        "event_id": f"e{i}",
                        "ts": ts,
                        "type": "adjustment",
                        "sku": sku,
                        "location": draw(st.sampled_from(LOCS)),
                        "delta": draw(st.integers(-4, 4)),
                    },
                )
            )
        elif kind == "order":
            oid = f"o{i}"
            order_ids.append(oid)
            line: dict[str, Any] = {"sku": sku, "qty": draw(st.integers(1, 3)), "unit_price": 1.0}
            if draw(st.booleans()):
                line["location"] = draw(st.sampled_from(LOCS))
            out.append(
                (
                    "shop.orders",
                    {
                        "event_id": f"e{i}",
                        "ts": ts,
                        "order_id": oid,
                        "status": "placed",
                        "customer_id": draw(st.sampled_from(CUSTOMERS)),
                        "lines": [line],
                    },
                )
            )
        elif kind == "cancel" and order_ids:
            oid = draw(st.sampled_from(order_ids))
            placed = next(m for t, m in out if t == "shop.orders" and m["order_id"] == oid)
            out.append(("shop.orders", placed | {"event_id": f"e{i}", "ts": ts, "status": "cancelled"}))
        elif kind == "product":
            subs = draw(st.none() | st.lists(st.sampled_from(SKUS), max_size=3))
            p: dict[str, Any] = {
                "sku": sku,
                "ts": ts,
                "product_id": sku,
                "group": "g",
                "size": draw(st.sampled_from(["M", "L"])),
                "price": 10.0,
                "unit_cost": draw(st.floats(0, 9)),
                "active": draw(st.booleans() | st.just(True)),
                "online": draw(st.booleans() | st.just(True)),
            }
            if subs is not None:
                p["substitutes"] = subs
            out.append(("catalog.products", p))
        else:
            skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3))
            tid = draw(st.sampled_from([f"t{i}", f"t{i}", "t-dup"]))
            out.append(
                (
                    "marketing.triggers",
                    {
                        "trigger_id": tid,
                        "ts": ts,
                        "campaign_id": "cm",
                        "customer_id": draw(st.sampled_from(CUSTOMERS)),
                        "kind": draw(st.sampled_from(KINDS)),
                        "channel": "email",
                        "skus": skus,
                        "consent": draw(st.sampled_from([True, True, False])),
                    },
                )
            )
    return out


# The reference remembers every order for ever; the decider forgets one after `order_ttl`
# (a cancellation arriving later is then taken as one of an order placed before its
# memory). Streams span up to 60 x 17 h: a TTL beyond that keeps the two comparable.
RULES = dataclasses.replace(Settings().rules, sends_per_unit=2, order_ttl=90 * 24 * HOUR)


def feed(decider: Decider, topic: str, msg: dict[str, Any], out: list[Emit]) -> None:
    if topic == "inventory.stock":
        decider.on_stock(parse_stock(msg), out)
    elif topic == "shop.orders":
        decider.on_order(parse_order(msg), out)
    elif topic == "catalog.products":
        decider.on_product(parse_product(msg), out)
    else:
        decider.on_trigger(parse_trigger(msg), out)


def run(stream: list[tuple[str, dict[str, Any]]], pickle_at: int | None = None) -> list[list[Emit]]:
    decider = Decider(DecisionState(0, 1), RULES, lambda: 0)
    per_event = []
    for i, (topic, msg) in enumerate(stream):
        if pickle_at == i:
            decider = Decider(pickle.loads(pickle.dumps(decider.state)), RULES, lambda: 0)
        out: list[Emit] = []
        feed(decider, topic, msg, out)
        per_event.append(out)
    return per_event


@settings(max_examples=300, deadline=None)
@given(streams())
def test_invariants_hold_on_any_stream(stream: list[tuple[str, dict[str, Any]]]) -> None:
    per_event = run(stream)
    ref = RefStock()
    approvals: dict[str, list[int]] = {}
    sku_sends: dict[str, list[int]] = {}
    for (topic, msg), emits in zip(stream, per_event, strict=True):
        if topic != "marketing.triggers":
            ref.apply(topic, msg)
            assert all(kind == RETRACTED for kind, _, _ in emits)
            continue
        # Conservation: exactly one decision per trigger read.
        assert len(emits) == 1
        kind, key, out = emits[0]
        assert kind in (APPROVED, SUPPRESSED) and key == msg["customer_id"]
        if kind == SUPPRESSED:
            continue
        # Consent never violated.
        assert msg["consent"] is True
        for sku in out["skus"]:
            # Never an approved sku that is out of stock, inactive or offline.
            assert ref.sellable(sku)
            assert not ref.known(sku) or ref.atp(sku) > 0
            # The send budget holds.
            window = [t for t in sku_sends.get(sku, []) if t > msg["ts"] - RULES.budget_window]
            if ref.known(sku):
                assert len(window) < RULES.sends_per_unit * ref.atp(sku)
            sku_sends.setdefault(sku, []).append(msg["ts"])
        if out["decision"] == "send":
            assert out["skus"] == [s for s in dict.fromkeys(msg["skus"]) if s in out["skus"]]
        if msg["kind"] != "back_in_stock":
            # The frequency cap holds.
            recent = [t for t in approvals.get(msg["customer_id"], []) if t > msg["ts"] - RULES.cap_window]
            assert len(recent) < RULES.cap_count
            approvals.setdefault(msg["customer_id"], []).append(msg["ts"])


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(min_value=0, max_value=60))
def test_same_input_same_output_even_across_a_snapshot_restore(
    stream: list[tuple[str, dict[str, Any]]], cut: int
) -> None:
    assert run(stream) == run(stream)
    assert run(stream, pickle_at=min(cut, len(stream) - 1)) == run(stream)
