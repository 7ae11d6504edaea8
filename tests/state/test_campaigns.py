"""The live campaign view: attribution, cancellations, activity."""

from __future__ import annotations

from typing import Any

from stockguard.config.settings import Settings
from stockguard.state.campaigns import CampaignState, CampaignTracker
from stockguard.state.models import parse_campaign, parse_order, parse_product
from tests.helpers import HOUR, MIN, T0, order, product

S = Settings()


def test_campaign_view_attributes_orders_and_takes_cancellations_back() -> None:
    st = CampaignState()
    t = CampaignTracker(st, S.rules.order_ttl)
    out: list[dict[str, Any]] = []
    t.on_product(parse_product(product("A", price=20.0, unit_cost=8.0)), out)
    t.on_campaign(
        parse_campaign(
            {
                "campaign_id": "cm",
                "ts": T0,
                "name": "Cyber",
                "start_ts": T0,
                "end_ts": T0 + HOUR,
                "audience_size": 10,
                "media_cost": 100.0,
            }
        ),
        out,
    )
    t.on_order(parse_order(order("o1", "c1", [("A", 2)], ts=T0 + MIN, campaign_id="cm")), out)
    t.on_order(parse_order(order("o2", "c2", [("A", 1)], ts=T0 + MIN, campaign_id="cm")), out)
    t.on_order(parse_order(order("o2", "c2", [("A", 1)], ts=T0 + MIN + 1, status="cancelled")), out)
    t.advance(T0 + 2 * MIN, out)
    v = out[-1]
    assert v["campaign_id"] == "cm" and v["active"] is True
    assert (v["orders"], v["units"], v["revenue"], v["gross_margin"], v["media_cost"]) == (1, 2, 40.0, 24.0, 100.0)
    assert v["roas"] == 0.4
    t.advance(T0 + 2 * HOUR, out)
    assert out[-1]["active"] is False
