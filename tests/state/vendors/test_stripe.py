"""Stripe checkout events to contract messages, on payloads written from Stripe's docs."""

from __future__ import annotations

import copy

import pytest

from stockguard.state.vendors import stripe
from stockguard.state.vendors.common import MappingError, validate
from tests.state.vendors.fixtures import fixture


def _lines() -> list[stripe.Line]:
    return stripe.line_items(fixture("stripe_checkout_session_line_items.json")["body"])


def test_line_items_take_the_product_sku_else_the_lookup_key() -> None:
    assert _lines() == [("TEE-RED-M", 2, 19.9), ("TEE-BLUE-M", 1, 19.9)]


def test_a_line_without_any_sku_is_a_mapping_error() -> None:
    listing = copy.deepcopy(fixture("stripe_checkout_session_line_items.json")["body"])
    listing["data"][1]["price"]["lookup_key"] = None
    with pytest.raises(MappingError, match=r"data\[1\]: no sku"):
        stripe.line_items(listing)


def test_completed_is_a_placed_order_with_every_field_of_the_table() -> None:
    event = fixture("stripe_checkout_session_completed.json")["body"]
    event_id, kind, session = stripe.event_session(event)
    assert (event_id, kind) == ("evt_1RYbXdLkdIwHu7ixCmPl3t3d", stripe.COMPLETED)
    assert stripe.needs_line_items(kind, session)
    out = stripe.checkout_order(event_id, session, _lines())
    validate(out)
    assert out.kind == "orders" and out.key == "cs_test_a1b2c3"
    assert out.value == {
        "event_id": "stripe-evt_1RYbXdLkdIwHu7ixCmPl3t3d",
        "ts": 1749543240 * 1000,
        "order_id": "cs_test_a1b2c3",
        "status": "placed",
        "customer_id": "115310627314723954",  # metadata.customer_id before customer
        "lines": [
            {"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9},
            {"sku": "TEE-BLUE-M", "qty": 1, "unit_price": 19.9},
        ],
        "campaign_id": "cm-42",
    }


def test_without_metadata_the_customer_is_the_stripe_customer() -> None:
    _eid, _kind, session = stripe.event_session(fixture("stripe_checkout_session_completed.json")["body"])
    session = dict(session, metadata={})
    out = stripe.checkout_order("evt", session, _lines())
    assert out.value["customer_id"] == "cus_NffrFeUfNV2Hib"
    assert "campaign_id" not in out.value
    guest = stripe.checkout_order("evt", dict(session, customer=None), _lines())
    assert guest.value["customer_id"] == "stripe-guest-cs_test_a1b2c3"


def test_expired_with_promotions_opt_in_is_a_cart_abandonment_trigger() -> None:
    event_id, kind, session = stripe.event_session(fixture("stripe_checkout_session_expired.json")["body"])
    assert kind == stripe.EXPIRED and stripe.needs_line_items(kind, session)
    out = stripe.abandoned_cart(session, _lines(), "cm-cart")
    assert out is not None
    validate(out)
    assert out.value == {
        "trigger_id": "stripe-cs_test_expired1",
        "ts": 1749556800 * 1000,
        "campaign_id": "cm-cart",
        "customer_id": "115310627314723954",
        "kind": "cart_abandonment",
        "channel": "email",
        "skus": ["TEE-RED-M", "TEE-BLUE-M"],
        "consent": True,
    }


@pytest.mark.parametrize("consent", [None, {"promotions": "opt_out"}, {"promotions": None}])
def test_expired_without_opt_in_maps_to_nothing(consent: object) -> None:
    _eid, kind, session = stripe.event_session(fixture("stripe_checkout_session_expired.json")["body"])
    session = dict(session, consent=consent)
    assert not stripe.needs_line_items(kind, session)
    assert stripe.abandoned_cart(session, _lines(), "cm-cart") is None


def test_other_event_types_need_no_line_items() -> None:
    _eid, kind, session = stripe.event_session(fixture("stripe_event_other.json")["body"])
    assert kind == "payment_intent.succeeded"
    assert not stripe.needs_line_items(kind, session)


def test_a_session_without_created_is_a_mapping_error() -> None:
    _eid, _kind, session = stripe.event_session(fixture("stripe_checkout_session_completed.json")["body"])
    with pytest.raises(MappingError, match="created"):
        stripe.checkout_order("evt", dict(session, created="today"), _lines())
