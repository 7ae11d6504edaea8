"""Shopify webhooks to contract messages, on payloads written from Shopify's docs."""

from __future__ import annotations

import copy

import pytest

from stockguard.state.vendors import shopify
from stockguard.state.vendors.common import MappingError, validate
from tests.state.vendors.fixtures import fixture

LOCATIONS = {"905684977": "WH-PARIS"}


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_orders_create_is_a_placed_order_with_every_field_of_the_table() -> None:
    doc = fixture("shopify_orders_create.json")
    out = shopify.order(doc["body"], "orders/create", LOCATIONS, doc["headers"]["X-Shopify-Event-Id"])
    validate(out)
    assert out.kind == "orders" and out.key == "shopify-820982911946154508"
    assert out.value == {
        "event_id": "shopify-8d1b7c60-3f1e-4c59-9a0b-7e6d5c4b3a21",
        "ts": _ms("2025-06-10T10:15:42+02:00"),
        "order_id": "shopify-820982911946154508",
        "status": "placed",
        "customer_id": "115310627314723954",
        "lines": [
            {"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9, "location": "WH-PARIS"},
            {"sku": "TEE-BLUE-M", "qty": 1, "unit_price": 19.9, "location": "WH-PARIS"},
        ],
        "campaign_id": "cm-42",
    }
    assert out.value["ts"] == 1749543342000  # 08:15:42 UTC


def test_orders_cancelled_cancels_the_same_order_at_cancelled_at() -> None:
    doc = fixture("shopify_orders_cancelled.json")
    out = shopify.order(doc["body"], "orders/cancelled", LOCATIONS, doc["headers"]["X-Shopify-Event-Id"])
    validate(out)
    assert out.value["status"] == "cancelled"
    assert out.value["order_id"] == "shopify-820982911946154508"
    assert out.value["ts"] == _ms("2025-06-10T15:30:00+02:00")
    assert [(ln["sku"], ln["qty"]) for ln in out.value["lines"]] == [("TEE-RED-M", 2), ("TEE-BLUE-M", 1)]


def test_a_guest_order_keeps_its_sku_lines_and_gets_its_own_customer() -> None:
    doc = fixture("shopify_orders_create_guest.json")
    out = shopify.order(doc["body"], "orders/create", LOCATIONS, "e1")
    validate(out)
    assert out.value["customer_id"] == "shopify-guest-820982911946154600"
    # The gift-wrapping line has no sku: nothing to count; no location_id: no location.
    assert out.value["lines"] == [{"sku": "TEE-BLUE-M", "qty": 1, "unit_price": 19.9}]
    assert "campaign_id" not in out.value  # landing_site "/" has no utm_campaign


def test_an_unknown_location_leaves_the_lines_without_one() -> None:
    doc = fixture("shopify_orders_create.json")
    out = shopify.order(doc["body"], "orders/create", {}, "e1")
    assert all("location" not in ln for ln in out.value["lines"])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b: b.pop("created_at"), "created_at"),
        (lambda b: b.update(created_at="yesterday"), "created_at"),
        (lambda b: b.update(line_items=[]), "no line with a sku"),
        (lambda b: b.update(line_items="x"), "line_items"),
        (lambda b: b["line_items"][0].update(price="free"), "price"),
        (lambda b: b.pop("id"), "id"),
    ],
)
def test_an_order_that_cannot_map_says_why(change: object, reason: str) -> None:
    body = copy.deepcopy(fixture("shopify_orders_create.json")["body"])
    change(body)  # type: ignore[operator]
    with pytest.raises(MappingError, match=reason):
        out = shopify.order(body, "orders/create", LOCATIONS, "e1")
        validate(out)


def test_a_negative_quantity_is_caught_by_the_contract_check() -> None:
    body = copy.deepcopy(fixture("shopify_orders_create.json")["body"])
    body["line_items"][0]["quantity"] = -1
    with pytest.raises(MappingError, match="orders"):
        validate(shopify.order(body, "orders/create", LOCATIONS, "e1"))


def test_products_teach_the_inventory_item_to_sku_map() -> None:
    body = fixture("shopify_products_create.json")["body"]
    assert shopify.inventory_items(body) == {"808950810": "TEE-RED-M", "808950811": "TEE-BLUE-M"}


def test_inventory_levels_update_is_a_stock_level_of_the_learned_sku() -> None:
    skus = shopify.inventory_items(fixture("shopify_products_create.json")["body"])
    doc = fixture("shopify_inventory_levels_update.json")
    out = shopify.inventory_level(doc["body"], skus, LOCATIONS, doc["headers"]["X-Shopify-Event-Id"])
    validate(out)
    assert out == (
        "stock",
        "TEE-RED-M",
        {
            "event_id": "shopify-7b8c9d0a-1234-4678-90ab-cdef12345678",
            "ts": _ms("2025-06-10T10:15:43+02:00"),
            "type": "level",
            "sku": "TEE-RED-M",
            "location": "WH-PARIS",
            "on_hand": 10,
            "reserved": 0,
        },
    )


def test_an_oversold_level_keeps_its_atp() -> None:
    body = dict(fixture("shopify_inventory_levels_update.json")["body"], available=-3)
    out = shopify.inventory_level(body, {"808950810": "TEE-RED-M"}, {}, "e")
    validate(out)
    assert out.value["on_hand"] - out.value["reserved"] == -3
    assert out.value["location"] == "905684977"  # not in the table: Shopify's id


def test_an_inventory_level_of_an_unknown_item_is_a_mapping_error() -> None:
    body = fixture("shopify_inventory_levels_update.json")["body"]
    with pytest.raises(MappingError, match="no sku known"):
        shopify.inventory_level(body, {}, LOCATIONS, "e")


def test_products_create_is_one_catalog_record_per_variant() -> None:
    outs = shopify.products(fixture("shopify_products_create.json")["body"], "Size")
    for out in outs:
        validate(out)
    assert [o.value for o in outs] == [
        {
            "sku": sku,
            "ts": _ms("2025-06-01T09:00:00+02:00"),
            "product_id": "788032119674292922",
            "group": "tee-basic",
            "size": "M",
            "price": 19.9,
            "unit_cost": 0.0,
            "active": True,
            "online": True,
        }
        for sku in ("TEE-RED-M", "TEE-BLUE-M")
    ]


def test_products_update_to_draft_is_inactive_and_offline() -> None:
    outs = shopify.products(fixture("shopify_products_update.json")["body"], "Size")
    assert {(o.value["active"], o.value["online"]) for o in outs} == {(False, False)}


def test_the_size_option_is_a_setting() -> None:
    body = fixture("shopify_products_create.json")["body"]
    assert [o.value["size"] for o in shopify.products(body, "color")] == ["Red", "Blue"]
    assert {o.value["size"] for o in shopify.products(body, "Fit")} == {"one-size"}
