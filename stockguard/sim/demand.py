"""Demand of a simulated day: shopper sessions, orders, marketing triggers and warehouse movements per minute."""

from __future__ import annotations

import bisect
import heapq
import math
from typing import Any

from stockguard.sim.config import (
    _CAMPAIGN_DISCOUNT,
    _DIURNAL,
    _DIURNAL_MEAN,
    _EVENTS_PER_SESSION,
    _HOUR_MS,
    _MAX_WISHLISTERS,
    _MINUTE_MS,
    _P_CAMPAIGN_SESSION,
    _P_CANCEL,
    _P_CART,
    _P_CART_CAMPAIGN,
    _P_EXPLICIT_LOCATION,
    _P_ORDER,
    _P_ORDER_CAMPAIGN,
    _P_SURGE_LOCATION,
    _P_SURGE_LOCATION_CAMPAIGN,
    _PRICE_DROP_PER_EVENT_HOUR,
    _PROMO_PER_EVENT_HOUR,
    _SIZES,
    CAMPAIGN_ABANDON,
    CAMPAIGN_CYBER,
    CAMPAIGN_LIFECYCLE,
    TOPIC_CLICKSTREAM,
    TOPIC_ORDERS,
    TOPIC_STOCK,
    SimConfig,
)
from stockguard.sim.schedule import _ADJUST, _CANCEL, _EMIT, _ORDER, _Scheduler


def _diurnal(hour: float) -> float:
    """Return the traffic factor (mean 1) at ``hour`` hours after the start."""
    h = hour % 24.0
    i = int(h)
    frac = h - i
    return (_DIURNAL[i] * (1.0 - frac) + _DIURNAL[(i + 1) % 24] * frac) / _DIURNAL_MEAN


class _Demand(_Scheduler):
    """Schedule what shoppers, marketing and the warehouse floor do, minute by minute."""

    def __init__(self, cfg: SimConfig) -> None:
        """Build the opening state; no session, click or order yet."""
        super().__init__(cfg)
        self.n_click = 0
        self.n_order = 0
        self.n_session = 0

    def _poisson(self, lam: float) -> int:
        """Draw a Poisson count with mean ``lam``."""
        if lam <= 0.0:
            return 0
        if lam > 40.0:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit = math.exp(-lam)
        k = 0
        p = self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def _session(self, ts: int, campaign: bool) -> None:
        """Schedule one shopper session: clickstream, maybe an order and triggers."""
        rng = self.rng
        rand = rng.random
        ci = self._customer()
        cust = f"cust-{ci}"
        size = self.cust_size[ci]
        if campaign and rand() < 0.8:
            g = self.featured_groups[bisect.bisect(self.feat_cum, rand() * self.feat_cum[-1])]
        else:
            g = bisect.bisect(self.group_cum, rand() * self.group_cum[-1])
        pool = self.pools.get((g, size))
        if pool is None:
            return
        self.n_session += 1
        sid = f"s-{self.n_session}"
        cid: str | None = CAMPAIGN_CYBER if campaign else None
        if cid is None and rand() < 0.03:
            cid = CAMPAIGN_ABANDON
        members, cum = pool
        n_views = 1 + min(int(-3.3 * math.log(1.0 - rand())), 12)
        viewed = rng.choices(members, cum_weights=cum, k=n_views)
        sku_ids = self.sku_ids
        heap = self.heap
        seq = self.seq
        n = self.n_click
        t = ts

        def click(etype: str, si: int, q: int) -> None:
            nonlocal n
            n += 1
            value = {
                "event_id": f"c-{n}",
                "ts": t,
                "type": etype,
                "customer_id": cust,
                "session_id": sid,
                "sku": sku_ids[si],
                "qty": q,
            }
            if cid is not None:
                value["campaign_id"] = cid
            heapq.heappush(heap, (t, next(seq), _EMIT, TOPIC_CLICKSTREAM, cust, value, None))

        if rand() < 0.35:
            click("search", viewed[0], 1)
            t += 3000 + int(rand() * 20000)
        for si in viewed:
            click("product_view", si, 1)
            t += 4000 + int(-30000.0 * math.log(1.0 - rand()))
        # Wishlists: shoppers often ask to be told when a sold-out sku returns.
        nl = self.nl
        plan = self.plan
        sku_locs = self.sku_locs
        in_stock: list[int] = []
        seen = list(dict.fromkeys(viewed))
        for si in seen:
            base = si * nl
            if any(plan[base + li] > 0 for li in sku_locs[si]):
                in_stock.append(si)
                if rand() < 0.02:
                    click("wishlist", si, 1)
                    t += 2000 + int(rand() * 10000)
            elif rand() < 0.25:
                click("wishlist", si, 1)
                t += 2000 + int(rand() * 10000)
                wl = self.wishlisters.setdefault(si, [])
                if len(wl) < _MAX_WISHLISTERS:
                    wl.append(cust)
        cart: list[tuple[int, int]] = []
        if in_stock and rand() < (_P_CART_CAMPAIGN if campaign else _P_CART):
            u = rand()
            k = min(len(in_stock), 1 if u < 0.7 else (2 if u < 0.95 else 3))
            for si in in_stock[:k]:
                u = rand()
                if campaign:
                    q = 1 if u < 0.5 else (2 if u < 0.85 else 3)
                else:
                    q = 1 if u < 0.8 else (2 if u < 0.95 else 3)
                cart.append((si, q))
                click("add_to_cart", si, q)
                t += 5000 + int(rand() * 40000)
            if len(cart) > 1 and rand() < 0.1:
                si, q = cart.pop()
                click("remove_from_cart", si, q)
                t += 5000 + int(rand() * 20000)
        self.n_click = n
        if cart:
            if rand() < (_P_ORDER_CAMPAIGN if campaign else _P_ORDER):
                self._order(t + 20000 + int(rand() * 240000), cust, cart, cid, campaign)
            elif rand() < 0.6:
                trig_ts = t + rng.randint(30, 120) * _MINUTE_MS
                if rand() < 0.1:
                    # Came back and bought it anyway before the reminder went out.
                    self._order(t + rng.randint(5, 25) * _MINUTE_MS, cust, cart, None, False)
                skus = [si for si, _ in cart[:3]]
                self._trigger(trig_ts, "cart_abandonment", CAMPAIGN_ABANDON, cust, skus)
        elif len(seen) >= 3 and rand() < 0.05:
            trig_ts = t + rng.randint(60, 180) * _MINUTE_MS
            self._trigger(trig_ts, "browse_abandonment", CAMPAIGN_ABANDON, cust, seen[:3])

    def _order(self, ts: int, cust: str, items: list[tuple[int, int]], cid: str | None, campaign: bool) -> None:
        """Schedule an order for the available part of ``items``, and maybe its cancellation."""
        rng = self.rng
        nl = self.nl
        plan = self.plan
        surge = self.surge_li
        p_surge = _P_SURGE_LOCATION_CAMPAIGN if campaign else _P_SURGE_LOCATION
        discount = _CAMPAIGN_DISCOUNT if cid == CAMPAIGN_CYBER else 1.0
        lines: list[dict[str, Any]] = []
        extra: list[tuple[int, int, int, int]] = []  # (sku, planned loc, explicit loc or -1, qty)
        for si, q in items:
            base = si * nl
            locs = self.sku_locs[si]
            if rng.random() < _P_EXPLICIT_LOCATION:
                cand = [li for li in locs if plan[base + li] > 0]
                if not cand:
                    continue
                if surge in cand and rng.random() < p_surge:
                    li = surge
                else:
                    others = [x for x in cand if x != surge]
                    li = rng.choice(others) if others else cand[0]
                explicit = li
            else:
                li = max(locs, key=lambda x: plan[base + x])
                if plan[base + li] <= 0:
                    continue
                explicit = -1
            q = min(q, plan[base + li])
            plan[base + li] -= q
            line: dict[str, Any] = {
                "sku": self.sku_ids[si],
                "qty": q,
                "unit_price": round(self.price[si] * discount, 2),
            }
            if explicit >= 0:
                line["location"] = self.locs[explicit]
            lines.append(line)
            extra.append((si, li, explicit, q))
        if not lines:
            return
        self.n_order += 1
        oid = f"o-{self.n_order}"
        value: dict[str, Any] = {
            "event_id": oid,
            "ts": ts,
            "order_id": oid,
            "status": "placed",
            "customer_id": cust,
            "lines": lines,
        }
        if cid is not None:
            value["campaign_id"] = cid
        cancel = rng.random() < _P_CANCEL
        self._push(ts, _ORDER, TOPIC_ORDERS, oid, value, (extra, cancel))
        if cancel:
            cval = dict(value)
            cval["lines"] = [dict(line) for line in lines]
            cval["event_id"] = f"{oid}-c"
            cval["status"] = "cancelled"
            cval["ts"] = cts = ts + rng.randint(5, 240) * _MINUTE_MS
            self._push(cts, _CANCEL, TOPIC_ORDERS, oid, cval)

    def _minute(self, t0: int) -> None:
        """Schedule the demand and marketing that start in the minute at ``t0``."""
        rng = self.rng
        cfg = self.cfg
        mid = t0 + _MINUTE_MS // 2
        hour = (mid - self.start) / _HOUR_MS
        factor = _diurnal(hour)
        in_campaign = self.camp_start <= mid < self.camp_end
        surge = 1.0
        if in_campaign:
            surge = 2.5 + 1.5 * math.exp(-(mid - self.camp_start) / (45 * _MINUTE_MS))
        lam = cfg.events_per_hour / 60.0 / _EVENTS_PER_SESSION * factor * surge
        for _ in range(self._poisson(lam)):
            ts = t0 + int(rng.random() * _MINUTE_MS)
            self._session(ts, in_campaign and rng.random() < _P_CAMPAIGN_SESSION)
        if in_campaign and self.featured_groups:
            blast = 2.5 if mid - self.camp_start < 15 * _MINUTE_MS else 0.8
            for _ in range(self._poisson(cfg.events_per_hour * _PROMO_PER_EVENT_HOUR / 60.0 * blast)):
                ts = t0 + int(rng.random() * _MINUTE_MS)
                if rng.random() < 0.9:
                    g = self.featured_groups[rng.randrange(len(self.featured_groups))]
                else:
                    g = rng.randrange(self.n_groups)
                self._trigger(ts, "promotion", CAMPAIGN_CYBER, f"cust-{self._customer()}", self._sku_set(g))
        for _ in range(self._poisson(cfg.events_per_hour * _PRICE_DROP_PER_EVENT_HOUR / 60.0 * factor)):
            ts = t0 + int(rng.random() * _MINUTE_MS)
            g = rng.randrange(self.n_groups)
            self._trigger(ts, "price_drop", CAMPAIGN_LIFECYCLE, f"cust-{self._customer()}", self._sku_set(g))
        # Warehouse movements: receipts and returns by day, damages any time.
        day = 6.0 <= hour % 24.0 < 20.0
        scale = cfg.events_per_hour / 4000.0
        for reason, per_hour in (("receipt", 6.0 if day else 0.0), ("return", 4.0), ("damage", 3.0)):
            for _ in range(self._poisson(per_hour * scale / 60.0)):
                si = rng.randrange(self.n_skus)
                li = rng.choice(self.sku_locs[si])
                if reason == "receipt":
                    mag = max(1, int(rng.randint(5, 60) * self.stock_scale))
                elif reason == "return":
                    mag = rng.randint(1, 2)
                else:
                    mag = rng.randint(1, 4)
                self._push(t0 + int(rng.random() * _MINUTE_MS), _ADJUST, TOPIC_STOCK, None, (si, li, reason, mag))

    def _sku_set(self, g: int) -> list[int]:
        """Pick 1-3 skus of one group and size, any status."""
        rng = self.rng
        members = self.gs_all.get((g, rng.randrange(len(_SIZES))))
        if not members:
            members = [rng.randrange(self.n_skus)]
        u = rng.random()
        k = min(len(members), 1 if u < 0.5 else (2 if u < 0.85 else 3))
        return rng.sample(members, k)
