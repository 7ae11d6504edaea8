"""Figures of a day for people: what stockguard did and what it was worth. Pure.

Input: the output messages of a replay or demo (approved, suppressed, retracted, surge
alerts, insights), and optionally its input records (catalog, campaigns, orders) for the
money. `stockguard report` renders these figures; every chart shows one of them.

Definitions (documented in the README's report section):

- Outcomes per hour of the trigger's event time: `sent`, `re-targeted`, `suppressed:
  <reason>`; retractions per hour of their own time.
- A **stock-blind sender** checks consent, caps and purchases as we do, but not stock: it
  would have sent every trigger we suppressed for `out_of_stock` or
  `stock_budget_exhausted`, every re-targeted one with its unavailable skus, and every
  one we retracted. Those are the **out-of-stock sends avoided**; the customers spared are
  their distinct customers; their cost is `report.cost_per_send` each.
- A sku **pushed while unavailable**: named by a trigger suppressed out of stock, replaced
  in a re-target, or in a retraction. Hours are the distinct event hours with such a push.
- **Margin kept** by a re-target: the unit margin (price − unit cost) of the substitute,
  per substituted sku, from the catalog in the input.
- **Campaign P&L**: orders attributed to a campaign (placed, less cancelled), units,
  revenue, gross margin (revenue − unit cost × units), media cost (the campaign record),
  shipping and operating cost (`report.*_per_order` × orders + `*_per_unit` × units), net
  margin = gross margin − media − shipping − operating. Hour by hour, media cost is
  spread evenly over the campaign's hours that fall within the day.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HOUR",
    "CampaignPnl",
    "Costs",
    "DayFigures",
    "StockBlind",
    "figures",
    "hour_of",
]

HOUR = 3_600_000
OOS_REASONS = ("out_of_stock", "stock_budget_exhausted")


def hour_of(ts: int) -> int:
    """Return the epoch hour (UTC) of an event time in ms."""
    return ts // HOUR


@dataclass(frozen=True)
class Costs:
    """What a send, an order and a unit cost, for the money figures (0: not configured)."""

    cost_per_send: float = 0.0
    shipping_per_order: float = 0.0
    shipping_per_unit: float = 0.0
    operating_per_order: float = 0.0
    operating_per_unit: float = 0.0


@dataclass(frozen=True)
class StockBlind:
    """What a stock-blind sender would have done that stockguard did not."""

    sends_avoided: int
    suppressed: int
    retargeted: int
    retracted: int
    customers_spared: int
    cost_avoided: float


@dataclass
class CampaignPnl:
    """One campaign's money over the day, and hour by hour."""

    campaign_id: str
    name: str | None = None
    orders: int = 0
    units: int = 0
    revenue: float = 0.0
    gross_margin: float = 0.0
    media_cost: float = 0.0
    shipping_cost: float = 0.0
    operating_cost: float = 0.0
    # hour -> [orders, units, revenue, gross margin, media, shipping, operating]
    hours: dict[int, list[float]] = field(default_factory=dict)

    @property
    def net_margin(self) -> float:
        """Return gross margin less media, shipping and operating cost."""
        return self.gross_margin - self.media_cost - self.shipping_cost - self.operating_cost

    def hourly_net(self) -> dict[int, float]:
        """Return the net margin of each hour."""
        return {h: v[3] - v[4] - v[5] - v[6] for h, v in sorted(self.hours.items())}


@dataclass
class DayFigures:
    """Every figure of the report."""

    hours: list[int]
    outcomes: dict[int, Counter[str]]
    stock_blind: StockBlind
    pushed: list[dict[str, Any]]
    retargets: list[dict[str, Any]]
    campaigns: list[CampaignPnl]
    surges: list[dict[str, Any]]
    drains: list[dict[str, Any]]
    invisible: list[dict[str, Any]]
    overstock: list[dict[str, Any]]
    costs: Costs
    has_input: bool


def _outcomes(
    approved: list[dict[str, Any]], suppressed: list[dict[str, Any]], retracted: list[dict[str, Any]]
) -> dict[int, Counter[str]]:
    per: dict[int, Counter[str]] = {}
    for m in approved:
        per.setdefault(hour_of(m["ts"]), Counter())["re-targeted" if m["decision"] == "retarget" else "sent"] += 1
    for m in suppressed:
        per.setdefault(hour_of(m["ts"]), Counter())[f"suppressed: {m['reason']}"] += 1
    for m in retracted:
        per.setdefault(hour_of(m["ts"]), Counter())["retracted"] += 1
    return per


def _stock_blind(
    approved: list[dict[str, Any]],
    suppressed: list[dict[str, Any]],
    retracted: list[dict[str, Any]],
    cost_per_send: float,
) -> StockBlind:
    sup = [m for m in suppressed if m["reason"] in OOS_REASONS]
    ret = [m for m in approved if m["decision"] == "retarget"]
    # A retracted trigger was approved: counted once even if it was also re-targeted.
    retracted_ids = {m["trigger_id"] for m in retracted}
    ret_only = [m for m in ret if m["trigger_id"] not in retracted_ids]
    customers = {m["customer_id"] for m in (*sup, *ret, *retracted)}
    n = len(sup) + len(ret_only) + len(retracted_ids)
    return StockBlind(n, len(sup), len(ret_only), len(retracted_ids), len(customers), n * cost_per_send)


def _pushed(
    approved: list[dict[str, Any]],
    suppressed: list[dict[str, Any]],
    retracted: list[dict[str, Any]],
    top_n: int,
) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}

    def row(sku: str) -> dict[str, Any]:
        r = rows.get(sku)
        if r is None:
            r = rows[sku] = {"sku": sku, "suppressed": 0, "retargeted_away": 0, "retracted": 0, "hours": set()}
        return r

    for m in suppressed:
        if m["reason"] in OOS_REASONS:
            for sku in m["skus"]:
                r = row(sku)
                r["suppressed"] += 1
                r["hours"].add(hour_of(m["ts"]))
    for m in approved:
        for sub in m.get("substitutions") or ():
            r = row(sub["from"])
            r["retargeted_away"] += 1
            r["hours"].add(hour_of(m["ts"]))
    for m in retracted:
        r = row(m["sku"])
        r["retracted"] += 1
        r["hours"].add(hour_of(m["ts"]))
    out = []
    for r in rows.values():
        total = r["suppressed"] + r["retargeted_away"] + r["retracted"]
        out.append({**r, "pushes": total, "hours": len(r["hours"])})
    out.sort(key=lambda r: (-r["pushes"], r["sku"]))
    return out[:top_n]


def _retargets(approved: list[dict[str, Any]], margin: dict[str, float] | None) -> list[dict[str, Any]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for m in approved:
        for sub in m.get("substitutions") or ():
            pairs[(sub["from"], sub["to"])] += 1
    rows: list[dict[str, Any]] = []
    for (a, b), n in pairs.items():
        unit = None if margin is None else margin.get(b)
        rows.append({"from": a, "to": b, "count": n, "margin_kept": None if unit is None else round(unit * n, 2)})
    rows.sort(key=lambda r: (-r["count"], r["from"], r["to"]))
    return rows


def _campaigns(inputs: list[tuple[str, Any]], costs: Costs, topics: dict[str, str]) -> list[CampaignPnl]:
    unit_cost: dict[str, float] = {}
    meta: dict[str, dict[str, Any]] = {}
    placed: dict[str, tuple[str, int, float, float, int]] = {}
    cancelled: set[str] = set()
    for topic, v in inputs:
        if not isinstance(v, dict):
            continue
        if topic == topics["products"] and isinstance(v.get("unit_cost"), int | float):
            unit_cost[str(v.get("sku"))] = float(v["unit_cost"])
        elif topic == topics["campaigns"] and v.get("campaign_id"):
            meta[str(v["campaign_id"])] = v
        elif topic == topics["orders"] and v.get("order_id"):
            oid = str(v["order_id"])
            if v.get("status") == "placed" and v.get("campaign_id") and oid not in placed:
                lines = [x for x in v.get("lines") or () if isinstance(x, dict)]
                try:
                    units = sum(int(x["qty"]) for x in lines)
                    revenue = sum(int(x["qty"]) * float(x["unit_price"]) for x in lines)
                    margin = sum(int(x["qty"]) * (float(x["unit_price"]) - unit_cost.get(x["sku"], 0.0)) for x in lines)
                except (KeyError, TypeError, ValueError):
                    continue  # a bad order: the flow dead-lettered it
                placed[oid] = (str(v["campaign_id"]), units, revenue, margin, int(v["ts"]))
            elif v.get("status") == "cancelled":
                cancelled.add(oid)
    pnl: dict[str, CampaignPnl] = {}
    for oid, (cid, units, revenue, margin, ts) in placed.items():
        if oid in cancelled:
            continue
        p = pnl.setdefault(cid, CampaignPnl(cid))
        ship = costs.shipping_per_order + costs.shipping_per_unit * units
        oper = costs.operating_per_order + costs.operating_per_unit * units
        p.orders += 1
        p.units += units
        p.revenue += revenue
        p.gross_margin += margin
        p.shipping_cost += ship
        p.operating_cost += oper
        h = p.hours.setdefault(hour_of(ts), [0.0] * 7)
        for i, x in enumerate((1, units, revenue, margin, 0.0, ship, oper)):
            h[i] += x
    for cid, c in meta.items():
        p = pnl.setdefault(cid, CampaignPnl(cid))
        p.name = c.get("name")
        media = float(c.get("media_cost") or 0.0)
        p.media_cost = media
        start, end = c.get("start_ts"), c.get("end_ts")
        if media and isinstance(start, int) and isinstance(end, int) and end > start:
            first, last = hour_of(start), hour_of(end - 1)
            span = last - first + 1
            for hour in range(first, last + 1):
                p.hours.setdefault(hour, [0.0] * 7)[4] += media / span
    return sorted(pnl.values(), key=lambda p: (-p.revenue, p.campaign_id))


def figures(
    outputs: dict[str, list[dict[str, Any]]],
    inputs: list[tuple[str, Any]] | None,
    topics: dict[str, str],
    costs: Costs,
    top_n: int = 20,
) -> DayFigures:
    """Compute the report's figures from output messages (by topic) and input records."""
    approved = outputs.get(topics["approved"], [])
    suppressed = outputs.get(topics["suppressed"], [])
    retracted = outputs.get(topics["retracted"], [])
    alerts = outputs.get(topics["surge_alerts"], [])
    insights = outputs.get(topics["insights"], [])
    outcomes = _outcomes(approved, suppressed, retracted)
    margin: dict[str, float] | None = None
    campaigns: list[CampaignPnl] = []
    if inputs is not None:
        margin = {}
        for topic, v in inputs:
            if topic == topics["products"] and isinstance(v, dict):
                try:
                    margin[str(v["sku"])] = float(v["price"]) - float(v["unit_cost"])
                except (KeyError, TypeError, ValueError):
                    continue
        campaigns = _campaigns(inputs, costs, topics)
    hours = sorted(set(outcomes) | {h for c in campaigns for h in c.hours})
    return DayFigures(
        hours=hours,
        outcomes=outcomes,
        stock_blind=_stock_blind(approved, suppressed, retracted, costs.cost_per_send),
        pushed=_pushed(approved, suppressed, retracted, top_n),
        retargets=_retargets(approved, margin)[:top_n],
        campaigns=campaigns,
        surges=[a for a in alerts if a.get("kind") == "order_surge"],
        drains=[a for a in alerts if a.get("kind") == "stock_drain"],
        invisible=[i for i in insights if i.get("kind") == "invisible_in_stock"],
        overstock=[i for i in insights if i.get("kind") == "overstock"],
        costs=costs,
        has_input=inputs is not None,
    )
