"""The stock-view topic message the deliverers read."""

from __future__ import annotations

import orjson

from stockguard.connectors.stock_views import view_message


def test_a_stock_view_message_carries_atp_availability_and_event_time() -> None:
    view = {
        "sku": "A",
        "atp": 3,
        "available": 1,
        "known": True,
        "locations": {"W": 3},
        "updated_ts": 5,
        "units_per_day": 0,
    }
    assert orjson.loads(view_message(view)) == {
        "sku": "A",
        "atp": 3,
        "available": True,
        "known": True,
        "locations": {"W": 3},
        "ts": 5,
    }
