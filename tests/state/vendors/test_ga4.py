"""GA4 Measurement Protocol requests and BigQuery export rows to contract messages."""

from __future__ import annotations

import pytest

from stockguard.state.vendors import ga4
from stockguard.state.vendors.common import MappingError, Out, stable_id, validate
from tests.state.vendors.fixtures import export_rows, fixture

CID = "115310627314723954"


def _summary(outs: list[Out]) -> list[tuple[str, str, str | None, int | None]]:
    return [(o.kind, o.value.get("type") or o.value["status"], o.value.get("sku"), o.value.get("qty")) for o in outs]


def test_a_measurement_protocol_request_fans_out_one_event_per_item() -> None:
    body = fixture("ga4_mp_collect.json")["body"]
    mapped = ga4.collect(body, 0, "item_id")
    for out in mapped.outs:
        validate(out)
    assert mapped.skipped == 1  # page_view
    assert _summary(mapped.outs) == [
        ("clickstream", "search", None, None),
        ("clickstream", "product_view", "TEE-RED-M", 1),
        ("clickstream", "wishlist", "TEE-BLUE-M", 1),
        ("clickstream", "add_to_cart", "TEE-RED-M", 2),
        ("orders", "placed", None, None),
    ]
    ts = 1749543340000  # the request's timestamp_micros, in ms
    click = mapped.outs[1].value
    assert click == {
        "event_id": stable_id("ga4", CID, ts, "view_item", 0),
        "ts": ts,
        "type": "product_view",
        "customer_id": CID,
        "session_id": "1749542700",
        "sku": "TEE-RED-M",
        "qty": 1,
    }
    assert mapped.outs[-1].value == {
        "event_id": stable_id("ga4", CID, ts, "purchase", 0),
        "ts": ts,
        "order_id": "T_12345",
        "status": "placed",
        "customer_id": CID,
        "lines": [
            {"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9},
            {"sku": "TEE-BLUE-M", "qty": 1, "unit_price": 19.9},
        ],
    }


def test_without_user_id_the_customer_is_the_client_and_the_arrival_is_the_time() -> None:
    body = dict(fixture("ga4_mp_collect.json")["body"])
    del body["user_id"], body["timestamp_micros"]
    mapped = ga4.collect(body, 1_749_000_000_000, "item_id")
    assert {o.value["customer_id"] for o in mapped.outs} == {"1784392816.1749542700"}
    assert {o.value["ts"] for o in mapped.outs} == {1_749_000_000_000}


def test_the_same_request_maps_to_the_same_ids() -> None:
    body = fixture("ga4_mp_collect.json")["body"]
    first = [o.value["event_id"] for o in ga4.collect(body, 1, "item_id").outs]
    again = [o.value["event_id"] for o in ga4.collect(body, 2, "item_id").outs]
    assert first == again and len(set(first)) == len(first)


def test_export_rows_map_as_the_table_says() -> None:
    mapped = [ga4.export_row(row, "item_id") for row in export_rows()]
    outs = [o for m in mapped for o in m.outs]
    for out in outs:
        validate(out)
    assert sum(m.skipped for m in mapped) == 1  # page_view
    assert _summary(outs) == [
        ("clickstream", "search", None, None),
        ("clickstream", "product_view", "TEE-RED-M", 1),
        ("clickstream", "wishlist", "TEE-BLUE-M", 1),
        ("clickstream", "add_to_cart", "TEE-RED-M", 2),
        ("clickstream", "add_to_cart", "TEE-BLUE-M", 2),
        ("clickstream", "remove_from_cart", "TEE-BLUE-M", 1),
        ("orders", "placed", None, None),
    ]
    view = outs[1].value
    assert view["ts"] == 1749542850530  # event_timestamp µs (a string in the export) → ms
    assert view["session_id"] == "1749542700"  # ga_session_id
    assert view["customer_id"] == CID
    order = outs[-1].value
    assert order["order_id"] == "T_12345" and order["ts"] == 1749543340123
    assert order["lines"] == [
        {"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9},
        {"sku": "TEE-BLUE-M", "qty": 1, "unit_price": 19.9},
    ]


def test_the_sku_field_is_a_setting() -> None:
    row = export_rows()[2]
    assert ga4.export_row(row, "item_variant").outs[0].value["sku"] == "Red / M"


def test_a_row_without_user_id_takes_the_pseudo_id() -> None:
    row = dict(export_rows()[2])
    del row["user_id"]
    assert ga4.export_row(row, "item_id").outs[0].value["customer_id"] == "1784392816.1749542700"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event_timestamp": "soon"}, "event_timestamp"),
        ({"items": [{"item_name": "x"}]}, r"items\[0\].item_id"),
        ({"items": [{"item_id": "A", "quantity": "0"}]}, "quantity"),
        ({"user_id": None, "user_pseudo_id": None}, "user_pseudo_id"),
    ],
)
def test_a_row_that_cannot_map_says_why(change: dict[str, object], reason: str) -> None:
    row = dict(export_rows()[2], **change)
    with pytest.raises(MappingError, match=reason):
        ga4.export_row(row, "item_id")


def test_a_purchase_without_transaction_is_a_mapping_error() -> None:
    row = export_rows()[-1]
    row = dict(row, ecommerce={}, event_params=[])
    with pytest.raises(MappingError, match="transaction_id"):
        ga4.export_row(row, "item_id")


def test_a_click_event_without_items_is_skipped() -> None:
    row = dict(export_rows()[2], items=[])
    assert ga4.export_row(row, "item_id") == ga4.Mapped([], 1)


def test_an_event_name_that_is_not_text_is_skipped_not_a_crash() -> None:
    # Found by the gateway's fuzz test: a list as a name made the lookup raise TypeError.
    body = {"client_id": "c", "events": [{"name": [], "params": {}}, {"name": {"a": 1}}]}
    assert ga4.collect(body, 1, "item_id") == ga4.Mapped([], 2)
    assert ga4.export_row({"event_name": ["view_item"]}, "item_id") == ga4.Mapped([], 1)
