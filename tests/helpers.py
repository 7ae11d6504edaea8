"""Builders of contract messages and a harness around the pure decision state."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from stockguard.config.settings import RuleSettings, Settings
from stockguard.state.decision import Decider, DecisionState, Emit
from stockguard.state.models import parse_order, parse_product, parse_stock, parse_trigger

T0 = 1764547200000
MIN = 60_000
HOUR = 3_600_000
_ids = itertools.count(1)


def product(
    sku: str,
    group: str = "tee",
    size: str = "M",
    ts: int = T0,
    price: float = 20.0,
    unit_cost: float = 8.0,
    active: bool = True,
    online: bool = True,
    substitutes: Sequence[str] | None = None,
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "sku": sku,
        "ts": ts,
        "product_id": sku.rsplit("-", 1)[0],
        "group": group,
        "size": size,
        "price": price,
        "unit_cost": unit_cost,
        "active": active,
        "online": online,
    }
    if substitutes is not None:
        d["substitutes"] = list(substitutes)
    return d


def level(sku: str, on_hand: int, reserved: int = 0, location: str = "WH-PARIS", ts: int = T0) -> dict[str, Any]:
    return {
        "event_id": f"s-{next(_ids)}",
        "ts": ts,
        "type": "level",
        "sku": sku,
        "location": location,
        "on_hand": on_hand,
        "reserved": reserved,
    }


def adjustment(sku: str, delta: int, location: str = "WH-PARIS", ts: int = T0) -> dict[str, Any]:
    return {
        "event_id": f"s-{next(_ids)}",
        "ts": ts,
        "type": "adjustment",
        "sku": sku,
        "location": location,
        "delta": delta,
        "reason": "receipt" if delta > 0 else "damage",
    }


def order(
    order_id: str,
    customer: str,
    lines: Sequence[tuple[str, int] | tuple[str, int, str]],
    ts: int = T0,
    status: str = "placed",
    campaign_id: str | None = None,
) -> dict[str, Any]:
    out_lines = []
    for line in lines:
        d: dict[str, Any] = {"sku": line[0], "qty": line[1], "unit_price": 20.0}
        if len(line) == 3:
            d["location"] = line[2]
        out_lines.append(d)
    o: dict[str, Any] = {
        "event_id": f"o-{next(_ids)}",
        "ts": ts,
        "order_id": order_id,
        "status": status,
        "customer_id": customer,
        "lines": out_lines,
    }
    if campaign_id is not None:
        o["campaign_id"] = campaign_id
    return o


def trigger(
    trigger_id: str,
    customer: str,
    skus: Sequence[str],
    ts: int = T0,
    kind: str = "cart_abandonment",
    consent: Any = True,
    campaign_id: str = "cm-42",
) -> dict[str, Any]:
    return {
        "trigger_id": trigger_id,
        "ts": ts,
        "campaign_id": campaign_id,
        "customer_id": customer,
        "kind": kind,
        "channel": "email",
        "skus": list(skus),
        "consent": consent,
    }


class Harness:
    """Feed contract messages straight into one decision partition."""

    def __init__(self, rules: RuleSettings | None = None, index: int = 0, partitions: int = 1) -> None:
        self.rules = rules or Settings().rules
        self.decider = Decider(DecisionState(index, partitions), self.rules, lambda: 1)

    def stock(self, msg: dict[str, Any]) -> list[Emit]:
        out: list[Emit] = []
        self.decider.on_stock(parse_stock(msg), out)
        return out

    def product(self, msg: dict[str, Any]) -> list[Emit]:
        out: list[Emit] = []
        self.decider.on_product(parse_product(msg), out)
        return out

    def order(self, msg: dict[str, Any]) -> list[Emit]:
        out: list[Emit] = []
        self.decider.on_order(parse_order(msg), out)
        return out

    def trigger(self, msg: dict[str, Any]) -> Emit:
        out: list[Emit] = []
        self.decider.on_trigger(parse_trigger(msg), out)
        assert len(out) == 1
        return out[0]

    def atp(self, sku: str) -> int:
        return self.decider.state.skus[sku].atp()

    def loc_atp(self, sku: str, location: str) -> int:
        loc = self.decider.state.skus[sku].locs.get(location)
        assert loc is not None
        return loc.atp
