"""Shoppingfeed orders to `shop.orders`: statuses, ids, times, lines, pages, the cursor."""

from __future__ import annotations

from typing import Any

import pytest

from stockguard.state.vendors import shoppingfeed as sf
from stockguard.state.vendors.common import MappingError


def order(status: str = "waiting_shipment", **kw: Any) -> dict[str, Any]:
    o: dict[str, Any] = {
        "id": 4021,
        "reference": "AMZ-1",
        "status": status,
        "createdAt": "2025-12-01T09:00:00+00:00",
        "updatedAt": "2025-12-01T09:30:00+00:00",
        "billingAddress": {"email": " Ann@Example.com ", "firstName": "Ann"},
        "items": [
            {"reference": "TEE-RED-M", "quantity": 2, "price": 19.9},
            {"reference": "CAP", "quantity": 1, "price": 5},
        ],
    }
    o.update(kw)
    return o


@pytest.mark.parametrize(
    ("status", "want"),
    [
        ("created", sf.PLACED),
        ("waiting_store_acceptance", sf.PLACED),
        ("waiting_shipment", sf.PLACED),
        ("shipped", sf.PLACED),
        ("partially_shipped", sf.PLACED),
        ("cancelled", sf.CANCELLED),
        ("refused", sf.CANCELLED),
        ("refunded", None),
        ("partially_refunded", None),
        ("something_new", None),
    ],
)
def test_status_means_placed_cancelled_or_nothing(status: str, want: str | None) -> None:
    assert sf.outcome(order(status)) == want


def test_placed_order_maps_to_the_contract() -> None:
    out = sf.order_message(order(), sf.PLACED)
    assert out.kind == "orders"
    assert out.key == "sf-4021"
    v = out.value
    assert v["event_id"] == "sf-4021-placed"
    assert v["order_id"] == "sf-4021"
    assert v["status"] == "placed"
    assert v["ts"] == 1764579600000  # createdAt
    assert v["lines"] == [
        {"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9},
        {"sku": "CAP", "qty": 1, "unit_price": 5.0},
    ]


def test_cancellation_has_its_own_event_id_and_the_update_time() -> None:
    v = sf.order_message(order("refused"), sf.CANCELLED).value
    assert v["event_id"] == "sf-4021-cancelled"
    assert v["status"] == "cancelled"
    assert v["ts"] == 1764579600000 + 30 * 60_000


def test_customer_is_a_hash_of_the_email_never_the_email() -> None:
    a = sf.order_message(order(), sf.PLACED).value["customer_id"]
    b = sf.order_message(order(id=9, billingAddress={"email": "ann@example.com"}), sf.PLACED).value["customer_id"]
    c = sf.order_message(order(billingAddress={}), sf.PLACED).value["customer_id"]
    assert a == b  # the same buyer, whatever the case and spaces
    assert "@" not in a and "ann" not in a.lower()
    assert c != a and c.startswith("sf-customer-")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"items": []}, "no items"),
        ({"items": [{"quantity": 1, "price": 1}]}, "reference: missing"),
        ({"items": [{"reference": "A", "quantity": 0, "price": 1}]}, "positive integer"),
        ({"items": [{"reference": "A", "quantity": 1, "price": "1"}]}, "price"),
        ({"createdAt": "yesterday"}, "createdAt"),
        ({"id": None}, "id: missing"),
    ],
)
def test_an_order_that_cannot_be_mapped_says_why(change: dict[str, Any], error: str) -> None:
    with pytest.raises(MappingError, match=error):
        sf.order_message(order(**change), sf.PLACED)


def test_each_outcome_is_emitted_once_and_cancelled_is_final() -> None:
    assert sf.to_emit(sf.PLACED, None) == sf.PLACED
    assert sf.to_emit(sf.PLACED, sf.PLACED) is None
    assert sf.to_emit(sf.CANCELLED, sf.PLACED) == sf.CANCELLED
    assert sf.to_emit(sf.CANCELLED, None) == sf.CANCELLED
    assert sf.to_emit(sf.CANCELLED, sf.CANCELLED) is None
    assert sf.to_emit(sf.PLACED, sf.CANCELLED) is None
    assert sf.to_emit(None, None) is None


def test_page_reads_hal_and_an_empty_store() -> None:
    got = sf.page_of({"page": 2, "pages": 3, "_embedded": {"order": [order(), "junk"]}})
    assert got.page == 2 and got.pages == 3 and len(got.orders) == 1
    empty = sf.page_of({"total": 0, "page": 1, "pages": 1})
    assert empty.orders == [] and empty.pages == 1
    with pytest.raises(MappingError):
        sf.page_of({"_embedded": {"order": {}}})
    with pytest.raises(MappingError):
        sf.page_of([])


def test_query_asks_since_the_cursor_minus_the_lookback() -> None:
    q = sf.query(1764579600000, 3_600_000, 2, 100)
    assert q == {"since": "2025-12-01T08:00:00+00:00", "page": "2", "limit": "100"}
    assert sf.query(1000, 3_600_000, 1, 5)["since"] == "1970-01-01T00:00:00+00:00"
