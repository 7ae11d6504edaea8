"""The live campaign view: attributed orders, units, revenue, gross margin, media cost.

Orders carry their `campaign_id` (attribution is the shop's). Revenue is qty x unit_price;
gross margin is qty x (unit_price - unit_cost) with the catalog's unit cost (0 when the sku
is not in the catalog yet). A cancellation takes its order back out. A campaign is active
while event time is within [start_ts, end_ts]; views are emitted at most once per event
minute for the campaigns that changed, plus once when a campaign turns inactive.
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

from stockguard.state.models import Campaign, Order, Product
from stockguard.state.pickling import fields, restore, state_of
from stockguard.state.windows import MINUTE

__all__ = ["CampaignState", "CampaignTracker"]

_DAY = 86_400_000


_TOTALS: Final = ("orders", "units", "revenue", "gross_margin")
_STATE: Final = ("unit_cost", "meta", "totals", "ledger", "active", "dirty", "minute", "watermark")


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class CampaignTotals:
    """Running totals of one campaign."""

    __slots__ = ("gross_margin", "orders", "revenue", "units")

    def __init__(self, orders: int = 0, units: int = 0, revenue: float = 0.0, gross_margin: float = 0.0) -> None:
        self.orders = orders
        self.units = units
        self.revenue = revenue
        self.gross_margin = gross_margin

    def __eq__(self, other: object) -> bool:
        return type(other) is CampaignTotals and self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return (
            f"CampaignTotals(orders={self.orders}, units={self.units}, "
            f"revenue={self.revenue}, gross_margin={self.gross_margin})"
        )

    def __getstate__(self) -> tuple[object, ...]:
        return (self.orders, self.units, self.revenue, self.gross_margin)

    def __setstate__(self, s: Any) -> None:
        # Written by a slotted dataclass before: copyreg's (None, {slot: value}).
        self.orders, self.units, self.revenue, self.gross_margin = fields(s, _TOTALS)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class CampaignState:
    """Hold catalog costs, campaign metadata, totals and the order ledger."""

    __slots__ = ("active", "dirty", "ledger", "meta", "minute", "totals", "unit_cost", "watermark")

    def __init__(self) -> None:
        self.unit_cost: dict[str, float] = {}
        self.meta: dict[str, Campaign] = {}
        self.totals: dict[str, CampaignTotals] = {}
        # order_id -> (campaign_id, units, revenue, margin, ts, cancelled)
        self.ledger: dict[str, tuple[str, int, float, float, int, bool]] = {}
        self.active: set[str] = set()
        self.dirty: set[str] = set()
        self.minute = 0
        self.watermark = 0

    def __getstate__(self) -> tuple[object, ...]:
        return state_of(self, _STATE)

    def __setstate__(self, s: Any) -> None:
        restore(self, _STATE, s)


class CampaignTracker:
    """Apply orders, catalog costs and campaign metadata to the campaign view."""

    def __init__(self, state: CampaignState, order_ttl: int) -> None:
        self.state = state
        self.order_ttl = order_ttl

    def on_product(self, p: Product, out: list[dict[str, Any]]) -> None:
        """Remember a sku's unit cost."""
        self.state.unit_cost[p.sku] = p.unit_cost
        self.advance(p.ts, out)

    def on_campaign(self, c: Campaign, out: list[dict[str, Any]]) -> None:
        """Remember a campaign's metadata."""
        old = self.state.meta.get(c.campaign_id)
        if old is None or old.ts <= c.ts:
            self.state.meta[c.campaign_id] = c
            self.state.dirty.add(c.campaign_id)
        self.advance(c.ts, out)

    def on_removed(self, campaign_id: str, out: list[dict[str, Any]]) -> None:
        """Forget a deleted campaign's metadata (its attributed totals stay)."""
        if self.state.meta.pop(campaign_id, None) is not None:
            self.state.dirty.add(campaign_id)

    def on_order(self, o: Order, out: list[dict[str, Any]]) -> None:
        """Attribute an order (or take a cancelled one back out)."""
        st = self.state
        known = st.ledger.get(o.order_id)
        if o.campaign_id is not None or known is not None:
            if o.status == "placed" and known is None and o.campaign_id is not None:
                units = sum(line.qty for line in o.lines)
                revenue = sum(line.qty * line.unit_price for line in o.lines)
                margin = sum(line.qty * (line.unit_price - st.unit_cost.get(line.sku, 0.0)) for line in o.lines)
                st.ledger[o.order_id] = (o.campaign_id, units, revenue, margin, o.ts, False)
                t = st.totals.setdefault(o.campaign_id, CampaignTotals())
                t.orders += 1
                t.units += units
                t.revenue += revenue
                t.gross_margin += margin
                st.dirty.add(o.campaign_id)
            elif o.status == "cancelled" and known is not None and not known[5]:
                cid, units, revenue, margin, ts, _ = known
                st.ledger[o.order_id] = (cid, units, revenue, margin, ts, True)
                t = st.totals.setdefault(cid, CampaignTotals())
                t.orders -= 1
                t.units -= units
                t.revenue -= revenue
                t.gross_margin -= margin
                st.dirty.add(cid)
        self.advance(o.ts, out)

    def advance(self, ts: int, out: list[dict[str, Any]]) -> None:
        """Move event time on; at each new minute, emit the views that changed."""
        st = self.state
        if ts > st.watermark:
            st.watermark = ts
        minute = st.watermark // MINUTE
        if minute <= st.minute:
            return
        st.minute = minute
        now = st.watermark
        active = {cid for cid, c in st.meta.items() if c.start_ts <= now <= c.end_ts}
        st.dirty |= active ^ st.active
        st.active = active
        for cid in sorted(st.dirty):
            out.append(self.view(cid))
        st.dirty.clear()
        if minute % 60 == 0:
            # Hourly: a scan of the ledger per event minute would dominate the step.
            cut = now - self.order_ttl
            if any(v[4] < cut for v in st.ledger.values()):
                st.ledger = {k: v for k, v in st.ledger.items() if v[4] >= cut}

    def view(self, cid: str) -> dict[str, Any]:
        """Return one campaign's view."""
        st = self.state
        t = st.totals.get(cid, CampaignTotals())
        c = st.meta.get(cid)
        media = c.media_cost if c is not None else 0.0
        return {
            "campaign_id": cid,
            "name": c.name if c is not None else None,
            "active": cid in st.active,
            "start_ts": c.start_ts if c is not None else None,
            "end_ts": c.end_ts if c is not None else None,
            "orders": t.orders,
            "units": t.units,
            "revenue": round(t.revenue, 2),
            "gross_margin": round(t.gross_margin, 2),
            "media_cost": media,
            "roas": round(t.revenue / media, 3) if media else None,
            "updated_ts": st.watermark,
        }
