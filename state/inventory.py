"""Stock arithmetic per sku and location: ATP from levels, adjustments and orders.

ATP per (sku, location) = on_hand - reserved from the last `level`, plus the deltas
(adjustments, orders, cancellations) with an event time after that level. A delta at or
before the level's time is already counted by it and is ignored. A level that arrives
after deltas with later times re-applies those deltas, as long as they are within
`stock_lateness` of the newest delta; a level older than the current one is stale and
ignored. ATP(sku) is the sum over locations of max(0, ATP).
"""

from __future__ import annotations

from typing import Final

from stockguard.state.models import Product

__all__ = ["NO_LEVEL", "LocStock", "Locations", "SkuState"]

NO_LEVEL: Final = -1
_HOUR: Final = 3_600_000


class LocStock:
    """Hold the ATP of one sku at one location."""

    __slots__ = ("atp", "level_ts", "name", "recent")

    def __init__(self, level_ts: int = NO_LEVEL, atp: int = 0, name: str = "") -> None:
        self.name = name
        self.level_ts = level_ts
        self.atp = atp
        # (ts, delta) applied after the level, kept only `stock_lateness` back.
        self.recent: list[tuple[int, int]] | None = None

    def set_level(self, ts: int, on_hand: int, reserved: int) -> bool:
        """Reset to an absolute level; return False when the level is stale."""
        if ts < self.level_ts:
            return False
        atp = on_hand - reserved
        if self.recent:
            for t, d in self.recent:
                if t > ts:
                    atp += d
        self.level_ts = ts
        self.atp = atp
        return True

    def apply(self, ts: int, delta: int, lateness: int) -> bool:
        """Apply a delta with event time `ts`; return False when the level already has it."""
        if ts <= self.level_ts:
            return False
        self.atp += delta
        recent = self.recent
        if recent is None:
            self.recent = [(ts, delta)]
            return True
        recent.append((ts, delta))
        cut = ts - lateness
        if recent[0][0] < cut:
            # Mostly in time order: drop the expired head in place.
            i = 0
            while i < len(recent) and recent[i][0] < cut:
                i += 1
            del recent[:i]
            if not recent:
                self.recent = None
        return True

    def __getstate__(self) -> tuple[int, int, list[tuple[int, int]] | None, str]:
        return (self.level_ts, self.atp, self.recent, self.name)

    def __setstate__(self, s: tuple[int, int, list[tuple[int, int]] | None, str]) -> None:
        self.level_ts, self.atp, self.recent, self.name = s


class Locations(list[LocStock]):
    """Map location names to a sku's `LocStock`s: a list searched by name.

    A sku is stocked at a few locations (usually one); a dict per sku costs 200 bytes
    where this list costs 80, and a scan of a few names is as fast as a hash lookup.
    """

    __slots__ = ()

    def get(self, name: str) -> LocStock | None:
        """Return the stock at `name`, or None."""
        for loc in self:
            if loc.name == name:
                return loc
        return None

    def put(self, name: str, loc: LocStock) -> LocStock:
        """Add the stock of a new location; return it."""
        loc.name = name
        self.append(loc)
        return loc

    def values(self) -> list[LocStock]:
        """Return the stocks, like dict.values()."""
        return self

    def items(self) -> list[tuple[str, LocStock]]:
        """Return (name, stock) pairs, like dict.items()."""
        return [(loc.name, loc) for loc in self]


class SkuState:
    """Hold what one decision partition knows of a sku: stock, catalog, sales, sends."""

    __slots__ = ("available", "locs", "product", "sales", "sends", "sent", "sold")

    def __init__(self) -> None:
        self.locs = Locations()
        # None until the catalog names the sku.
        self.product: Product | None = None
        # The three lists start as the shared empty tuple and become lists on first use:
        # most skus never get a send, and three empty lists are 168 bytes per sku and copy.
        # [hour, units] buckets of units ordered, newest last, for days of cover.
        self.sales: list[list[int]] | tuple[()] = ()
        # Units in `sales`: a running total, so days of cover need no sum per candidate.
        self.sold = 0
        # Event times of this partition's approved sends of the sku (the send budget), sorted.
        self.sends: list[int] | tuple[()] = ()
        # (ts, trigger_id, customer_id, campaign_id) approved with the sku, for retraction.
        self.sent: list[tuple[int, str, str, str]] | tuple[()] = ()
        # Availability as last computed, to see transitions.
        self.available = True

    @property
    def known(self) -> bool:
        """Tell whether any stock event was seen for the sku."""
        return bool(self.locs)

    def atp(self) -> int:
        """Return ATP over all locations, each location counted at max(0, ATP)."""
        total = 0
        for loc in self.locs.values():
            if loc.atp > 0:
                total += loc.atp
        return total

    def best_location(self) -> str | None:
        """Return the location with the highest ATP (ties: lowest id), for unlocated lines."""
        best: str | None = None
        best_atp = 0
        for loc in self.locs:
            name = loc.name
            if best is None or loc.atp > best_atp or (loc.atp == best_atp and name < best):
                best, best_atp = name, loc.atp
        return best

    def add_sale(self, ts: int, units: int, window: int) -> None:
        """Count units ordered in an hour bucket, dropping buckets older than `window`."""
        hour = ts // _HOUR
        sales = self.sales
        self.sold += units
        if not sales:
            self.sales = [[hour, units]]
            return
        assert type(sales) is list  # noqa: S101 - only the empty default is a tuple
        if sales[-1][0] == hour:
            sales[-1][1] += units
        elif sales[-1][0] < hour:
            sales.append([hour, units])
            oldest = (ts - window) // _HOUR
            if sales[0][0] < oldest:
                i = 0
                while sales[i][0] < oldest:
                    self.sold -= sales[i][1]
                    i += 1
                del sales[:i]
        else:
            # A late order (another partition was ahead): same totals as in time order.
            for i, b in enumerate(sales):
                if b[0] == hour:
                    b[1] += units
                    break
                if b[0] > hour:
                    sales.insert(i, [hour, units])
                    break

    def units_sold(self, now: int, window: int) -> int:
        """Return units ordered in the hour buckets within `window` before `now`."""
        oldest = (now - window) // _HOUR
        total = self.sold
        # Buckets are in hour order and evicted as sales arrive: few, if any, are too old.
        for h, u in self.sales:
            if h >= oldest:
                break
            total -= u
        return total

    def clear_sales(self) -> None:
        """Forget every sales bucket (an idle sku's)."""
        self.sales = ()
        self.sold = 0

    def __getstate__(self) -> tuple[object, ...]:
        return (self.locs, self.product, self.sales, self.sends, self.sent, self.available)

    def __setstate__(self, s: tuple[object, ...]) -> None:
        (self.locs, self.product, self.sales, self.sends, self.sent, self.available) = s  # type: ignore[assignment]
        self.sold = sum(u for _h, u in self.sales)
