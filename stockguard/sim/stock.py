"""The simulator's own stock book: levels, adjustments, reservations, WMS re-syncs and the restock."""

from __future__ import annotations

from typing import Any

from stockguard.sim.config import (
    _MINUTE_MS,
    _RESTOCK_SHARE,
    _RESYNC_SHARE,
    CAMPAIGN_LIFECYCLE,
    TOPIC_STOCK,
    SimConfig,
)
from stockguard.sim.schedule import _ADJUST, _LEVEL, _Scheduler


class _StockBook(_Scheduler):
    """Keep on hand, reserved and planned units per (sku, location) as the events move them."""

    def __init__(self, cfg: SimConfig) -> None:
        """Build the opening stock; no stock message or order to cancel yet."""
        super().__init__(cfg)
        self.n_stock = 0
        self.cancel_assign: dict[str, list[tuple[int, int, int]]] = {}

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
