"""Parsing of every input topic: valid messages, and precise reasons for bad ones."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockguard.state.models import (
    ContractError,
    StockAdjustment,
    StockLevel,
    checked_click,
    checked_order,
    checked_product,
    checked_stock,
    checked_trigger,
    parse_campaign,
    parse_click,
    parse_order,
    parse_product,
    parse_stock,
    parse_trigger,
)

T0 = 1764547200000

CLICK = {
    "event_id": "c-9",
    "ts": T0,
    "type": "product_view",
    "customer_id": "cust-1",
    "session_id": "s-1",
    "sku": "TEE-RED-M",
    "qty": 1,
    "campaign_id": "cm-42",
}
LEVEL = {
    "event_id": "s-3",
    "ts": T0,
    "type": "level",
    "sku": "TEE-RED-M",
    "location": "WH-PARIS",
    "on_hand": 12,
    "reserved": 2,
}
ADJ = {
    "event_id": "s-4",
    "ts": T0,
    "type": "adjustment",
    "sku": "TEE-RED-M",
    "location": "WH-PARIS",
    "delta": -4,
    "reason": "damage",
}
ORDER = {
    "event_id": "o-7",
    "ts": T0,
    "order_id": "o-7",
    "status": "placed",
    "customer_id": "cust-1",
    "campaign_id": "cm-42",
    "lines": [
        {"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9, "location": "WH-PARIS"},
        {"sku": "TEE-BLUE-M", "qty": 1, "unit_price": 19.9},
    ],
}
PRODUCT = {
    "sku": "TEE-RED-M",
    "ts": T0,
    "product_id": "TEE-RED",
    "group": "tee-basic",
    "size": "M",
    "price": 19.9,
    "unit_cost": 7.5,
    "active": True,
    "online": True,
    "substitutes": ["TEE-BLUE-M"],
}
TRIGGER = {
    "trigger_id": "t-1",
    "ts": T0,
    "campaign_id": "cm-42",
    "customer_id": "cust-1",
    "kind": "cart_abandonment",
    "channel": "email",
    "skus": ["TEE-RED-M"],
    "consent": True,
}
CAMPAIGN = {
    "campaign_id": "cm-42",
    "ts": T0,
    "name": "Cyber Monday 24h",
    "start_ts": T0,
    "end_ts": T0 + 86_400_000,
    "audience_size": 250000,
    "media_cost": 12000.0,
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    d = dict(base)
    for k, v in changes.items():
        if v is ...:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def test_valid_messages_parse_with_their_values() -> None:
    c = parse_click(CLICK)
    assert (c.customer_id, c.sku, c.qty, c.campaign_id) == ("cust-1", "TEE-RED-M", 1, "cm-42")
    lvl = parse_stock(LEVEL)
    assert isinstance(lvl, StockLevel) and (lvl.on_hand, lvl.reserved) == (12, 2)
    adj = parse_stock(ADJ)
    assert isinstance(adj, StockAdjustment) and adj.delta == -4
    o = parse_order(ORDER)
    assert [ln.location for ln in o.lines] == ["WH-PARIS", None] and o.lines[0].qty == 2
    p = parse_product(PRODUCT)
    assert p.substitutes == ("TEE-BLUE-M",) and p.margin == pytest.approx(12.4)
    t = parse_trigger(TRIGGER)
    assert t.consent is True and t.skus == ("TEE-RED-M",) and t.raw is TRIGGER
    cm = parse_campaign(CAMPAIGN)
    assert cm.media_cost == 12000.0


def test_unknown_extra_fields_are_accepted_and_kept_on_triggers() -> None:
    t = parse_trigger(with_(TRIGGER, template="winter-3"))
    assert t.raw["template"] == "winter-3"
    assert parse_click(with_(CLICK, user_agent="x")).event_id == "c-9"


def test_optional_fields_may_be_absent() -> None:
    assert parse_click(with_(CLICK, campaign_id=...)).campaign_id is None
    assert parse_order(with_(ORDER, campaign_id=...)).campaign_id is None
    assert parse_product(with_(PRODUCT, substitutes=...)).substitutes is None
    search = parse_click(with_(CLICK, type="search", sku=..., qty=...))
    assert search.sku is None and search.qty == 1


def test_consent_other_than_true_is_kept_for_the_rule_not_rejected() -> None:
    for consent in (False, None, "yes", 1, ...):
        assert parse_trigger(with_(TRIGGER, consent=consent)).consent is False


def test_duplicate_skus_in_a_trigger_collapse_in_order() -> None:
    assert parse_trigger(with_(TRIGGER, skus=["A", "B", "A"])).skus == ("A", "B")


@pytest.mark.parametrize(
    ("parser", "msg", "reason"),
    [
        (
            parse_order,
            with_(ORDER, lines=[{"sku": "A", "qty": 0, "unit_price": 1.0}]),
            "lines[0].qty: expected positive int",
        ),
        (
            parse_order,
            with_(ORDER, lines=[{"sku": "A", "qty": -2, "unit_price": 1.0}]),
            "lines[0].qty: expected positive int",
        ),
        (
            parse_order,
            with_(ORDER, lines=[{"sku": "A", "qty": "two", "unit_price": 1.0}]),
            "lines[0].qty: expected positive int",
        ),
        (
            parse_order,
            with_(ORDER, lines=[{"sku": "A", "qty": 1.5, "unit_price": 1.0}]),
            "lines[0].qty: expected positive int",
        ),
        (parse_order, with_(ORDER, lines=[{"qty": 1, "unit_price": 1.0}]), "lines[0].sku: missing"),
        (parse_order, with_(ORDER, lines=[]), "lines: expected at least one line"),
        (parse_order, with_(ORDER, lines=...), "lines: missing"),
        (parse_order, with_(ORDER, status="shipped"), "status: unknown value 'shipped'"),
        (
            parse_order,
            with_(ORDER, lines=[{"sku": "A", "qty": 1, "unit_price": -1}]),
            "lines[0].unit_price: expected non-negative number",
        ),
        (parse_stock, with_(LEVEL, type="teleport"), "type: unknown value 'teleport'"),
        (parse_stock, with_(LEVEL, on_hand=-1), "on_hand: expected non-negative int"),
        (parse_stock, with_(LEVEL, reserved=...), "reserved: missing"),
        (parse_stock, with_(ADJ, delta="4"), "delta: expected int"),
        (parse_stock, with_(LEVEL, ts="2025-12-01"), "ts: expected epoch milliseconds"),
        (parse_stock, with_(LEVEL, ts=True), "ts: expected epoch milliseconds"),
        (parse_stock, with_(LEVEL, ts=-5), "ts: expected epoch milliseconds"),
        (parse_stock, with_(LEVEL, ts=1764547200), "ts: expected epoch milliseconds between 2001 and 2100"),
        (parse_stock, with_(LEVEL, ts=1764547200000000), "ts: expected epoch milliseconds between 2001 and 2100"),
        (parse_stock, with_(LEVEL, on_hand=2**64 - 1), "on_hand: expected non-negative int"),
        (parse_stock, with_(ADJ, delta=-(2**60)), "delta: expected int"),
        (
            parse_order,
            with_(ORDER, lines=[{"sku": "A", "qty": 1, "unit_price": 1e300}]),
            "lines[0].unit_price: expected non-negative number",
        ),
        (parse_click, with_(CLICK, type="teleport"), "type: unknown value 'teleport'"),
        (parse_click, with_(CLICK, customer_id=...), "customer_id: missing"),
        (parse_click, with_(CLICK, qty=0), "qty: expected positive int"),
        (parse_product, with_(PRODUCT, active="yes"), "active: expected true or false"),
        (parse_product, with_(PRODUCT, price=None), "price: expected non-negative number"),
        (parse_product, with_(PRODUCT, substitutes=["A", 3]), "substitutes[1]: expected non-empty string"),
        (parse_trigger, with_(TRIGGER, kind="birthday"), "kind: unknown value 'birthday'"),
        (parse_trigger, with_(TRIGGER, skus=[]), "skus: expected at least one sku"),
        (parse_trigger, with_(TRIGGER, skus="TEE-RED-M"), "skus: expected array of strings"),
        (parse_trigger, with_(TRIGGER, trigger_id=""), "trigger_id: expected non-empty string"),
        (parse_trigger, [TRIGGER], "expected a JSON object, got array"),
        (parse_campaign, with_(CAMPAIGN, end_ts=T0 - 1), "end_ts: expected >= start_ts"),
        (parse_campaign, with_(CAMPAIGN, audience_size=-3), "audience_size: expected non-negative int"),
    ],
)
def test_bad_messages_name_the_field_and_the_problem(parser: Any, msg: Any, reason: str) -> None:
    with pytest.raises(ContractError) as err:
        parser(msg)
    assert str(err.value).startswith(reason)


# JSON values around every boundary the checks draw: types, empties, signs, ts and int range.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 2**53, 2**53 + 1, -(2**53) - 1, T0, 999_999_999_999, 4_102_444_800_000]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "level", "adjustment", "search", "placed", "cancelled", "product_view", "promotion"]),
    st.text(max_size=3),
    st.lists(st.sampled_from(["", "A", 1, None]), max_size=3),
    st.dictionaries(st.sampled_from(["sku", "qty", "unit_price", "location"]), st.sampled_from(["A", 1, 2.5, None])),
    st.just(...),  # the field is missing
)

FAST_AND_CHECKED = [
    (parse_click, checked_click, CLICK),
    (parse_click, checked_click, with_(CLICK, type="search", sku=..., qty=...)),
    (parse_stock, checked_stock, LEVEL),
    (parse_stock, checked_stock, ADJ),
    (parse_order, checked_order, ORDER),
    (parse_product, checked_product, PRODUCT),
    (parse_trigger, checked_trigger, TRIGGER),
]


@settings(max_examples=400)
@given(
    st.sampled_from(range(len(FAST_AND_CHECKED))),
    st.dictionaries(st.sampled_from(sorted({k for *_, b in FAST_AND_CHECKED for k in b})), JSON_VALUES, max_size=3),
    st.lists(st.tuples(st.sampled_from(["sku", "qty", "unit_price", "location"]), JSON_VALUES), max_size=2),
)
def test_the_fast_parsers_return_exactly_what_the_checked_ones_return_or_raise(
    which: int, changes: dict[str, Any], line_changes: list[tuple[str, Any]]
) -> None:
    fast, checked, base = FAST_AND_CHECKED[which]
    msg = with_(base, **changes)
    if line_changes and type(msg.get("lines")) is list and msg["lines"] and type(msg["lines"][0]) is dict:
        msg["lines"] = [with_(msg["lines"][0], **dict(line_changes)), *msg["lines"][1:]]
    try:
        expected = checked(msg)
    except ContractError as exc:
        with pytest.raises(ContractError) as got:
            fast(msg)
        assert str(got.value) == str(exc)
        return
    assert fast(msg) == expected
    assert type(fast(msg)) is type(expected)
