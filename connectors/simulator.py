"""Deterministic simulator of a Cyber Monday day of stockguard input events.

The simulator is a pure generator: given a :class:`SimConfig` it yields
``(topic, key, value)`` tuples in non-decreasing event time (``ts``) order, and
the same configuration always yields exactly the same sequence. It uses only
the standard library and a private ``random.Random(seed)``, never the clock.

The day it tells:

* At ``start_ts`` the catalog (``catalog.products``), the campaigns
  (``marketing.campaigns``) and one stock ``level`` per stocked
  (sku, location) (``inventory.stock``); ``oos_fraction`` of the skus start
  sold out (``on_hand == reserved``).
* Shopper sessions on ``shop.clickstream`` following a diurnal curve
  (views, searches, wishlists, carts), some ending in orders on
  ``shop.orders`` (about 3 % later cancelled) that deplete the simulator's own
  stock book, so popular skus sell out during the day.
* The WMS re-syncs a quarter of the stock levels every 2 h (shipping part of
  the reserved units; the ATP it reports is exactly the ATP implied by the
  events before it), plus receipts, returns and damages as ``adjustment``
  events and a large restock receipt of sold-out skus at hour 16 (of every
  simulated day).
* Marketing triggers: cart and browse abandonment, a promotion blast during
  the campaign, back-in-stock after the restock (for the shoppers who
  wishlisted the skus, plus a few for skus that were not restocked), price
  drops; about 5 % without consent and a few deliberate duplicates.
* During the campaign window traffic, conversion and basket size rise and
  most orders are fulfilled from ``surge_location``, so its ordered units per
  minute are several times (well above 5x) their baseline.
* About ``bad_fraction`` of the messages after the initial snapshot are
  malformed: raw text that is not JSON, or a dict that violates the contract.

Example:
    >>> from connectors.simulator import SimConfig, simulate
    >>> events = list(simulate(SimConfig(hours=1.0)))
    >>> events[0][0]
    'catalog.products'
"""

from __future__ import annotations

import bisect
import copy
import heapq
import itertools
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CAMPAIGN_ABANDON",
    "CAMPAIGN_CYBER",
    "CAMPAIGN_LIFECYCLE",
    "TOPIC_CAMPAIGNS",
    "TOPIC_CATALOG",
    "TOPIC_CLICKSTREAM",
    "TOPIC_ORDERS",
    "TOPIC_STOCK",
    "TOPIC_TRIGGERS",
    "Message",
    "SimConfig",
    "simulate",
]

TOPIC_CLICKSTREAM = "shop.clickstream"
TOPIC_STOCK = "inventory.stock"
TOPIC_ORDERS = "shop.orders"
TOPIC_CATALOG = "catalog.products"
TOPIC_TRIGGERS = "marketing.triggers"
TOPIC_CAMPAIGNS = "marketing.campaigns"

CAMPAIGN_CYBER = "cm-cyber"
CAMPAIGN_ABANDON = "cm-abandon"
CAMPAIGN_LIFECYCLE = "cm-lifecycle"

Message = tuple[str, str | None, dict[str, Any] | str]
"""One simulated input message: ``(topic, key, value)``."""

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000

_SIZES = ("XS", "S", "M", "L", "XL")
_SIZE_WEIGHTS = (0.6, 1.0, 1.4, 1.3, 0.8)
_COLORS = ("RED", "BLUE", "GRN", "BLK", "WHT", "GREY", "NAVY", "PINK", "BEIGE", "OLIVE")
_COLORS_PER_GROUP = 5
_GROUPS: tuple[tuple[str, str, float], ...] = (
    ("TEE", "tee-basic", 19.9),
    ("HOOD", "hoodie-zip", 49.9),
    ("JEAN", "jeans-slim", 59.9),
    ("SNKR", "sneaker-run", 89.9),
    ("JACK", "jacket-puffer", 129.0),
    ("SOCK", "socks-pack", 9.9),
    ("DRSS", "dress-wrap", 45.0),
    ("SHRT", "shirt-oxford", 39.9),
    ("SWTR", "sweater-wool", 69.9),
    ("LEGG", "leggings-sport", 29.9),
    ("POLO", "polo-pique", 34.9),
    ("CAP", "cap-logo", 15.9),
)
# Relative traffic per hour after start_ts (a European retail day, evening peak).
_DIURNAL = (
    0.35, 0.2, 0.15, 0.12, 0.12, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.15,
    1.25, 1.2, 1.1, 1.05, 1.1, 1.2, 1.4, 1.6, 1.75, 1.6, 1.2, 0.7,
)  # fmt: skip
_DIURNAL_MEAN = sum(_DIURNAL) / len(_DIURNAL)

_EVENTS_PER_SESSION = 5.3  # measured mean clickstream events of a baseline session
_P_CART = 0.32
_P_CART_CAMPAIGN = 0.6
_P_ORDER = 0.6
_P_ORDER_CAMPAIGN = 0.8
_P_CAMPAIGN_SESSION = 0.65  # share of sessions driven by the campaign in its window
_P_EXPLICIT_LOCATION = 0.7
_P_SURGE_LOCATION = 0.4  # baseline share of located lines sent to surge_location
_P_SURGE_LOCATION_CAMPAIGN = 0.85
_P_CANCEL = 0.03
_P_DUPLICATE_TRIGGER = 0.004
_P_CONSENT = 0.95
_CAMPAIGN_DISCOUNT = 0.75
_RESYNC_EVERY_H = 2.0
_RESYNC_SHARE = 0.25
_RESTOCK_H = 16.0
_RESTOCK_SHARE = 0.7
_PROMO_PER_EVENT_HOUR = 1.0  # promotion triggers per hour = this x events_per_hour
_PRICE_DROP_PER_EVENT_HOUR = 0.005
_MAX_WISHLISTERS = 300

# Malformed messages are spread over the topics with these weights.
_BAD_TOPICS = (TOPIC_CLICKSTREAM, TOPIC_TRIGGERS, TOPIC_ORDERS, TOPIC_STOCK)
_BAD_TOPIC_WEIGHTS = (0.45, 0.25, 0.2, 0.1)
_GARBAGE = (
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "",
    "\ufffd\ufffd\x00binary",
    "undefined",
)

# Heap entry kinds.
_EMIT = 0  # a ready (topic, key, value)
_ORDER = 1  # a placed order; reserves stock when emitted
_CANCEL = 2  # a cancellation; gives the order's stock back when emitted
_LEVEL = 3  # a WMS level for one (sku, location), computed when emitted
_RESYNC = 4  # schedules a batch of levels
_RESTOCK = 5  # schedules the big receipt of sold-out skus and back-in-stock triggers
_ADJUST = 6  # an adjustment, its delta bounded by the stock when emitted

_Entry = tuple[int, int, int, str, str | None, Any, Any]


@dataclass(frozen=True)
class SimConfig:
    """Parameters of a simulated day.

    Attributes:
        seed: Seed of the private random generator.
        start_ts: Start of the day, epoch ms.
        hours: Length of the simulated period.
        skus: Catalog size (groups x colors x sizes).
        locations: Warehouses holding stock.
        customers: Number of distinct customers.
        oos_fraction: Fraction of skus sold out (ATP 0 everywhere) at the start.
        campaign_start_h: Start of the campaign surge, hours after ``start_ts``.
        campaign_hours: Length of the surge.
        surge_location: Location fulfilling most campaign orders.
        events_per_hour: Baseline clickstream volume; other flows, and the stock, are proportional.
        bad_fraction: Fraction of malformed messages after the initial snapshot.
    """

    seed: int = 42
    start_ts: int = 1764547200000  # 2025-12-01T00:00:00Z, epoch ms
    hours: float = 24.0
    skus: int = 300
    locations: tuple[str, ...] = ("WH-PARIS", "WH-LYON", "WH-LILLE")
    customers: int = 20000
    oos_fraction: float = 0.25
    campaign_start_h: float = 10.0
    campaign_hours: float = 3.0
    surge_location: str = "WH-PARIS"
    events_per_hour: int = 4000
    bad_fraction: float = 0.002


def simulate(cfg: SimConfig = SimConfig()) -> Iterator[Message]:
    """Yield the day's input messages as ``(topic, key, value)``.

    Messages come in non-decreasing ``ts`` order (raw-text malformed messages
    have no ``ts``; they follow the message they were derived from). The
    value is a contract message (dict), or for malformed input a str that is
    not valid JSON or a dict violating the contract.

    Args:
        cfg: Simulation parameters.

    Returns:
        An iterator over the messages, generated lazily.
    """
    return _Simulator(cfg).run()


def _diurnal(hour: float) -> float:
    """Return the traffic factor (mean 1) at ``hour`` hours after the start."""
    h = hour % 24.0
    i = int(h)
    frac = h - i
    return (_DIURNAL[i] * (1.0 - frac) + _DIURNAL[(i + 1) % 24] * frac) / _DIURNAL_MEAN


class _Simulator:
    """Hold the state of one simulated day; see :func:`simulate`."""

    def __init__(self, cfg: SimConfig) -> None:
        """Build the catalog, the customers and the opening stock."""
        if not cfg.locations:
            raise ValueError("at least one location is needed")
        if cfg.skus < 1 or cfg.customers < 1:
            raise ValueError("skus and customers must be positive")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.seq = itertools.count()
        self.heap: list[_Entry] = []
        self.start = cfg.start_ts
        self.end = cfg.start_ts + int(cfg.hours * _HOUR_MS)
        self.camp_start = cfg.start_ts + int(cfg.campaign_start_h * _HOUR_MS)
        self.camp_end = self.camp_start + int(cfg.campaign_hours * _HOUR_MS)
        self.locs = cfg.locations
        self.nl = len(cfg.locations)
        self.surge_li = cfg.locations.index(cfg.surge_location) if cfg.surge_location in cfg.locations else -1
        self.n_click = 0
        self.n_stock = 0
        self.n_order = 0
        self.n_trigger = 0
        self.n_session = 0
        self.n_bad = 0
        # Stock and receipts follow the volume so that sell-outs keep their timing.
        self.stock_scale = max(0.05, cfg.events_per_hour / 4000.0)
        self._build_catalog()
        self._build_customers()
        self._build_stock()
        self.cancel_assign: dict[str, list[tuple[int, int, int]]] = {}
        self.wishlisters: dict[int, list[str]] = {}

    # ------------------------------------------------------------------ setup

    def _build_catalog(self) -> None:
        """Create skus, popularity pools and the catalog messages."""
        rng = self.rng
        cfg = self.cfg
        per_group = _COLORS_PER_GROUP * len(_SIZES)
        n_groups = -(-cfg.skus // per_group)
        self.sku_ids: list[str] = []
        self.sku_group: list[int] = []
        self.sku_size: list[int] = []
        self.price: list[float] = []
        self.unit_cost: list[float] = []
        self.weight: list[float] = []
        self.group_names: list[str] = []
        group_weight: list[float] = []
        # (group, size index) -> all sku indexes, whatever their status
        self.gs_all: dict[tuple[int, int], list[int]] = {}
        for g in range(n_groups):
            if g < len(_GROUPS):
                prefix, gname, base = _GROUPS[g]
            else:
                prefix, gname, base = f"G{g + 1}", f"group-{g + 1}", round(rng.uniform(10, 120), 1)
            self.group_names.append(gname)
            group_weight.append(rng.lognormvariate(0.0, 0.6))
            colors = rng.sample(_COLORS, _COLORS_PER_GROUP)
            for color in colors:
                color_w = rng.lognormvariate(0.0, 0.8)
                color_price = round(base * rng.choice((1.0, 1.0, 1.0, 1.1, 0.9)), 2)
                for zi, size in enumerate(_SIZES):
                    if len(self.sku_ids) >= cfg.skus:
                        break
                    si = len(self.sku_ids)
                    self.sku_ids.append(f"{prefix}-{color}-{size}")
                    self.sku_group.append(g)
                    self.sku_size.append(zi)
                    self.price.append(color_price)
                    self.unit_cost.append(round(color_price * rng.uniform(0.3, 0.55), 2))
                    self.weight.append(color_w * _SIZE_WEIGHTS[zi])
                    self.gs_all.setdefault((g, zi), []).append(si)
        self.n_skus = n = len(self.sku_ids)
        self.sku_index = {s: i for i, s in enumerate(self.sku_ids)}
        self.n_groups = n_groups
        self.active = [rng.random() >= 0.02 for _ in range(n)]
        self.online = [rng.random() >= 0.025 for _ in range(n)]
        # The campaign features about a third of the groups.
        n_feat = max(1, round(n_groups / 3))
        by_pop = sorted(range(n_groups), key=lambda g: -group_weight[g])
        feat = sorted(rng.sample(by_pop[: max(n_feat, min(n_groups, n_feat + 2))], n_feat))
        self.featured_groups = feat
        self.featured = [self.sku_group[i] in feat for i in range(n)]
        self.group_cum = list(itertools.accumulate(group_weight))
        self.feat_cum = list(itertools.accumulate(group_weight[g] for g in feat))
        # Browsable pools: active and online skus per (group, size), weighted.
        self.pools: dict[tuple[int, int], tuple[list[int], list[float]]] = {}
        for key, members in self.gs_all.items():
            shown = [i for i in members if self.active[i] and self.online[i]]
            if shown:
                self.pools[key] = (shown, list(itertools.accumulate(self.weight[i] for i in shown)))
        self.catalog: list[dict[str, Any]] = []
        for i in range(n):
            msg: dict[str, Any] = {
                "sku": self.sku_ids[i],
                "ts": self.start,
                "product_id": self.sku_ids[i].rsplit("-", 1)[0],
                "group": self.group_names[self.sku_group[i]],
                "size": _SIZES[self.sku_size[i]],
                "price": self.price[i],
                "unit_cost": self.unit_cost[i],
                "active": self.active[i],
                "online": self.online[i],
            }
            if rng.random() < 1 / 3:
                others = [j for j in self.gs_all[(self.sku_group[i], self.sku_size[i])] if j != i]
                if others:
                    k = min(len(others), rng.randint(1, 3))
                    msg["substitutes"] = [self.sku_ids[j] for j in rng.sample(others, k)]
            self.catalog.append(msg)

    def _build_customers(self) -> None:
        """Give every customer a clothing size."""
        self.cust_size = [0, *self.rng.choices(range(len(_SIZES)), _SIZE_WEIGHTS, k=self.cfg.customers)]

    def _build_stock(self) -> None:
        """Choose stocked locations, opening levels and sold-out skus."""
        rng = self.rng
        cfg = self.cfg
        n, nl = self.n_skus, self.nl
        self.sku_locs: list[tuple[int, ...]] = []
        self.on_hand = [0] * (n * nl)
        self.reserved = [0] * (n * nl)
        self.plan = [0] * (n * nl)  # ATP as the shop sees it when generating demand
        candidates = [i for i in range(n) if self.online[i]]
        n_oos = min(len(candidates), round(cfg.oos_fraction * n))
        oos = set(rng.sample(candidates, n_oos))
        for si in range(n):
            locs = [
                li for li in range(nl) if rng.random() < (0.85 if li == self.surge_li or self.surge_li < 0 else 0.6)
            ]
            if self.featured[si] and self.surge_li >= 0 and self.surge_li not in locs:
                locs.append(self.surge_li)
            if not locs:
                locs.append(rng.randrange(nl))
            locs.sort()
            self.sku_locs.append(tuple(locs))
            for li in locs:
                p = si * nl + li
                if si in oos:
                    on_hand = rng.choice((0, 0, 0, 1, 2, 3))
                    reserved = on_hand
                else:
                    if self.featured[si] and li == self.surge_li:
                        on_hand = int(rng.lognormvariate(4.4, 0.6) * self.stock_scale) + 10
                    else:
                        on_hand = int(rng.lognormvariate(3.7, 0.7) * self.stock_scale) + 3
                    reserved = int(on_hand * rng.uniform(0.0, 0.2))
                self.on_hand[p] = on_hand
                self.reserved[p] = reserved
                self.plan[p] = on_hand - reserved

    # ------------------------------------------------------------ utilities

    def _push(self, ts: int, kind: int, topic: str, key: str | None, value: Any, extra: Any = None) -> None:
        """Schedule an entry on the event heap."""
        heapq.heappush(self.heap, (ts, next(self.seq), kind, topic, key, value, extra))

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

    def _customer(self) -> int:
        """Draw a customer number, loyal (low) numbers being more frequent."""
        c = self.cfg.customers
        return min(c, 1 + int(c * self.rng.random() ** 1.6))

    def _channel(self) -> str:
        """Draw a trigger channel."""
        u = self.rng.random()
        return "email" if u < 0.7 else ("push" if u < 0.9 else "sms")

    def _trigger(self, ts: int, kind: str, campaign_id: str, cust: str, skus: list[int]) -> None:
        """Schedule a marketing trigger, sometimes with a duplicate re-send."""
        rng = self.rng
        self.n_trigger += 1
        value: dict[str, Any] = {
            "trigger_id": f"t-{self.n_trigger}",
            "ts": ts,
            "campaign_id": campaign_id,
            "customer_id": cust,
            "kind": kind,
            "channel": self._channel(),
            "skus": [self.sku_ids[i] for i in skus],
            "consent": rng.random() < _P_CONSENT,
        }
        self._push(ts, _EMIT, TOPIC_TRIGGERS, cust, value)
        if rng.random() < _P_DUPLICATE_TRIGGER:
            dup = dict(value)  # no nested object shared between two messages
            dup["skus"] = list(value["skus"])
            dup["ts"] = dts = ts + rng.randint(1, 600) * 1000
            self._push(dts, _EMIT, TOPIC_TRIGGERS, cust, dup)

    # ------------------------------------------------------------ demand

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

    # ------------------------------------------------------------ stock book

    def _stock_msg(self, ts: int, si: int, li: int) -> dict[str, Any]:
        """Start an inventory.stock message with a fresh event id."""
        self.n_stock += 1
        return {
            "event_id": f"s-{self.n_stock}",
            "ts": ts,
            "type": "level",
            "sku": self.sku_ids[si],
            "location": self.locs[li],
        }

    def _level(self, ts: int, si: int, li: int) -> dict[str, Any]:
        """Ship part of the reserved units, maybe cycle-count, and report the level."""
        rng = self.rng
        p = si * self.nl + li
        shipped = min(self.on_hand[p], int(self.reserved[p] * rng.uniform(0.3, 0.9)))
        self.on_hand[p] -= shipped
        self.reserved[p] -= shipped
        if rng.random() < 0.08:
            c = max(-self.on_hand[p], rng.choice((-2, -1, 1, 2)))
            self.on_hand[p] += c
            self.plan[p] += c
        msg = self._stock_msg(ts, si, li)
        msg["on_hand"] = self.on_hand[p]
        msg["reserved"] = self.reserved[p]
        return msg

    def _adjust(self, ts: int, si: int, li: int, reason: str, mag: int) -> dict[str, Any] | None:
        """Apply an adjustment to the book and return its message, or None if moot."""
        p = si * self.nl + li
        delta = mag
        if reason == "damage":
            delta = -min(mag, self.on_hand[p] - self.reserved[p])
            if delta >= 0:
                return None
        self.on_hand[p] += delta
        self.plan[p] += delta
        msg = self._stock_msg(ts, si, li)
        msg["type"] = "adjustment"
        msg["delta"] = delta
        msg["reason"] = reason
        return msg

    def _place(self, extra: tuple[list[tuple[int, int, int, int]], bool], oid: str) -> None:
        """Reserve a placed order's units in the book, as stockguard counts them."""
        nl = self.nl
        lines, cancel = extra
        assigned: list[tuple[int, int, int]] = []
        for si, plan_li, explicit, q in lines:
            base = si * nl
            li = explicit
            if li < 0:
                best = -(1 << 62)
                for x in self.sku_locs[si]:
                    atp = self.on_hand[base + x] - self.reserved[base + x]
                    if atp > best:
                        best, li = atp, x
                if li != plan_li:
                    self.plan[base + plan_li] += q
                    self.plan[base + li] -= q
            self.reserved[base + li] += q
            if cancel:
                assigned.append((si, li, q))
        if cancel:
            self.cancel_assign[oid] = assigned

    def _cancel(self, oid: str) -> None:
        """Give a cancelled order's units back to the locations that reserved them."""
        nl = self.nl
        for si, li, q in self.cancel_assign.pop(oid, []):
            p = si * nl + li
            r = min(q, self.reserved[p])
            self.reserved[p] -= r
            self.on_hand[p] += q - r
            self.plan[p] += q

    def _resync(self, ts: int) -> None:
        """Schedule WMS levels for a random share of the stocked (sku, location)."""
        rng = self.rng
        for si in range(self.n_skus):
            for li in self.sku_locs[si]:
                if rng.random() < _RESYNC_SHARE:
                    self._push(ts + int(rng.random() * 2 * _MINUTE_MS), _LEVEL, TOPIC_STOCK, None, (si, li))

    def _restock(self, ts: int) -> None:
        """Schedule the big receipt of sold-out skus and the back-in-stock triggers."""
        rng = self.rng
        nl = self.nl
        for si in range(self.n_skus):
            base = si * nl
            locs = self.sku_locs[si]
            if any(self.on_hand[base + li] - self.reserved[base + li] > 0 for li in locs):
                continue
            wl = self.wishlisters.get(si, [])
            if not self.active[si] or rng.random() >= _RESTOCK_SHARE:
                # Not restocked; the platform still fires a few stale alerts.
                if rng.random() < 0.2:
                    for cust in rng.sample(wl, min(len(wl), 4)):
                        t = ts + rng.randint(2, 90) * _MINUTE_MS
                        self._trigger(t, "back_in_stock", CAMPAIGN_LIFECYCLE, cust, [si])
                continue
            rts = ts + int(rng.random() * 10 * _MINUTE_MS)
            targets = [self.surge_li] if self.surge_li in locs else [locs[0]]
            targets += [li for li in locs if li not in targets and rng.random() < 0.3]
            for li in targets:
                self._push(
                    rts,
                    _ADJUST,
                    TOPIC_STOCK,
                    None,
                    (si, li, "receipt", max(40, int(rng.randint(40, 160) * self.stock_scale))),
                )
            custs = list(dict.fromkeys(wl))
            custs += [f"cust-{self._customer()}" for _ in range(rng.randint(5, 20))]
            for cust in custs:
                t = rts + rng.randint(2, 90) * _MINUTE_MS
                self._trigger(t, "back_in_stock", CAMPAIGN_LIFECYCLE, cust, [si])

    # ------------------------------------------------------------ malformed

    def _bad_gap(self) -> int:
        """Draw the number of valid messages until the next malformed one."""
        p = self.cfg.bad_fraction
        if p <= 0.0:
            return 1 << 62
        if p >= 1.0:
            return 1
        return 1 + int(math.log(1.0 - self.rng.random()) / math.log(1.0 - p))

    def _corrupt(self, topic: str, key: str | None, value: dict[str, Any]) -> Message:
        """Derive a malformed message from a valid one (fresh ids, same topic)."""
        rng = self.rng
        self.n_bad += 1
        u = rng.random()
        if u < 0.2:
            text = json.dumps(value)
            return topic, key, text[: rng.randint(1, len(text) - 1)]
        if u < 0.27:
            return topic, None, rng.choice((*_GARBAGE, str(value)))
        bad = copy.deepcopy(value)
        for id_field in ("event_id", "order_id", "trigger_id"):
            if id_field in bad:
                bad[id_field] = f"{bad[id_field]}-m{self.n_bad}"
        if u < 0.5:
            required = {
                TOPIC_CLICKSTREAM: ("ts", "type", "customer_id", "sku"),
                TOPIC_STOCK: ("ts", "type", "sku", "location"),
                TOPIC_ORDERS: ("ts", "order_id", "status", "lines"),
                TOPIC_TRIGGERS: ("ts", "trigger_id", "customer_id", "kind", "skus"),
            }[topic]
            del bad[rng.choice(required)]
        elif u < 0.7:
            if topic == TOPIC_CLICKSTREAM:
                bad["qty"] = -rng.randint(1, 3)
            elif topic == TOPIC_ORDERS:
                bad["lines"][0]["qty"] = -rng.randint(1, 3)
            elif topic == TOPIC_STOCK:
                bad["type"] = "level"
                bad.pop("delta", None)
                bad.pop("reason", None)
                bad["on_hand"] = -rng.randint(1, 50)
                bad["reserved"] = 0
            else:
                bad["skus"] = [123, *bad["skus"][1:]]
        elif u < 0.85:
            field = {
                TOPIC_CLICKSTREAM: "type",
                TOPIC_STOCK: "type",
                TOPIC_ORDERS: "status",
                TOPIC_TRIGGERS: "kind",
            }[topic]
            bad[field] = "teleport"
        else:
            if topic == TOPIC_ORDERS:
                bad["lines"][0]["qty"] = "two"
            elif topic == TOPIC_TRIGGERS:
                bad["skus"] = bad["skus"][0]
            elif topic == TOPIC_CLICKSTREAM:
                bad["qty"] = "two"
            else:
                bad["delta" if "delta" in bad else "on_hand"] = "two"
        return topic, key, bad

    # ------------------------------------------------------------ main loop

    def _campaigns(self) -> list[dict[str, Any]]:
        """Return the campaign messages."""
        cfg = self.cfg
        return [
            {
                "campaign_id": CAMPAIGN_CYBER,
                "ts": self.start,
                "name": "Cyber Monday flash sale",
                "start_ts": self.camp_start,
                "end_ts": self.camp_end,
                "audience_size": max(cfg.customers * 12, 1),
                "media_cost": 12000.0,
            },
            {
                "campaign_id": CAMPAIGN_ABANDON,
                "ts": self.start,
                "name": "Cart and browse abandonment flows (always on)",
                "start_ts": self.start,
                "end_ts": self.end,
                "audience_size": cfg.customers,
                "media_cost": 400.0,
            },
            {
                "campaign_id": CAMPAIGN_LIFECYCLE,
                "ts": self.start,
                "name": "Back-in-stock and price-drop alerts (always on)",
                "start_ts": self.start,
                "end_ts": self.end,
                "audience_size": cfg.customers,
                "media_cost": 250.0,
            },
        ]

    def run(self) -> Iterator[Message]:
        """Yield the snapshot, then every scheduled message in ts order."""
        for msg in self.catalog:
            yield TOPIC_CATALOG, msg["sku"], msg
        for camp in self._campaigns():
            yield TOPIC_CAMPAIGNS, camp["campaign_id"], camp
        nl = self.nl
        for si in range(self.n_skus):
            for li in self.sku_locs[si]:
                p = si * nl + li
                msg = self._stock_msg(self.start, si, li)
                msg["on_hand"] = self.on_hand[p]
                msg["reserved"] = self.reserved[p]
                yield TOPIC_STOCK, msg["sku"], msg
        k = 1
        while self.start + int(k * _RESYNC_EVERY_H * _HOUR_MS) < self.end:
            self._push(self.start + int(k * _RESYNC_EVERY_H * _HOUR_MS), _RESYNC, TOPIC_STOCK, None, None)
            k += 1
        restock_ts = self.start + int(_RESTOCK_H * _HOUR_MS)
        while restock_ts < self.end:
            self._push(restock_ts, _RESTOCK, TOPIC_STOCK, None, None)
            restock_ts += 24 * _HOUR_MS

        heap = self.heap
        pop = heapq.heappop
        end = self.end
        rng = self.rng
        bad_left = self._bad_gap()
        bad_topic: str | None = None
        n_minutes = math.ceil((end - self.start) / _MINUTE_MS)
        for m in range(n_minutes):
            t0 = self.start + m * _MINUTE_MS
            self._minute(t0)
            limit = min(t0 + _MINUTE_MS, end)
            while heap and heap[0][0] < limit:
                ts, _, kind, topic, key, value, extra = pop(heap)
                if kind == _ORDER:
                    self._place(extra, value["order_id"])
                elif kind == _CANCEL:
                    self._cancel(value["order_id"])
                elif kind == _LEVEL:
                    si, li = value
                    value = self._level(ts, si, li)
                    key = value["sku"]
                elif kind == _ADJUST:
                    si, li, reason, mag = value
                    value = self._adjust(ts, si, li, reason, mag)
                    if value is None:
                        continue
                    key = value["sku"]
                elif kind == _RESYNC:
                    self._resync(ts)
                    continue
                elif kind == _RESTOCK:
                    self._restock(ts)
                    continue
                yield topic, key, value
                if bad_topic is None:
                    bad_left -= 1
                    if bad_left == 0:
                        bad_topic = rng.choices(_BAD_TOPICS, _BAD_TOPIC_WEIGHTS)[0]
                if topic == bad_topic:
                    yield self._corrupt(topic, key, value)
                    bad_topic = None
                    bad_left = self._bad_gap()
