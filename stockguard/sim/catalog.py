"""Opening state of a simulated day: the catalog, the customers and the opening stock."""

from __future__ import annotations

import itertools
import random
from typing import Any

from stockguard.sim.config import (
    _COLORS,
    _COLORS_PER_GROUP,
    _GROUPS,
    _HOUR_MS,
    _SIZE_WEIGHTS,
    _SIZES,
    SimConfig,
)


class _Setup:
    """Hold the configuration, the random generator and the opening state of one simulated day.

    The other parts of the day are layers on top of it: the event heap (``schedule``), then the demand and the
    stock book side by side, combined by ``day._Simulator``. All of them share the one ``rng``, whose call order
    makes the day.
    """

    def __init__(self, cfg: SimConfig) -> None:
        """Build the catalog, the customers and the opening stock."""
        if not cfg.locations:
            raise ValueError("at least one location is needed")
        if cfg.skus < 1 or cfg.customers < 1:
            raise ValueError("skus and customers must be positive")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.start = cfg.start_ts
        self.end = cfg.start_ts + int(cfg.hours * _HOUR_MS)
        self.camp_start = cfg.start_ts + int(cfg.campaign_start_h * _HOUR_MS)
        self.camp_end = self.camp_start + int(cfg.campaign_hours * _HOUR_MS)
        self.locs = cfg.locations
        self.nl = len(cfg.locations)
        self.surge_li = cfg.locations.index(cfg.surge_location) if cfg.surge_location in cfg.locations else -1
        # Stock and receipts follow the volume so that sell-outs keep their timing.
        self.stock_scale = max(0.05, cfg.events_per_hour / 4000.0)
        self._build_catalog()
        self._build_customers()
        self._build_stock()
        # Customers waiting for a sold-out sku: filled by the demand, read by the restock.
        self.wishlisters: dict[int, list[str]] = {}

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

    def _customer(self) -> int:
        """Draw a customer number, loyal (low) numbers being more frequent."""
        c = self.cfg.customers
        return min(c, 1 + int(c * self.rng.random() ** 1.6))
