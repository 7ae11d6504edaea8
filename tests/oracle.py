"""A deliberately naive reference model of stock, written from the contract alone.

It recomputes ATP the slow, obvious way: per (sku, location) a list of every event,
summed on demand. Tests use it to check the fast state machine's decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RefStock:
    """Reference ATP per sku and location; catalog flags; customer purchases."""

    levels: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # -> (ts, on_hand - reserved)
    deltas: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # order id -> charges
    cancelled: set[str] = field(default_factory=set)
    locs: dict[str, set[str]] = field(default_factory=dict)

    def loc_atp(self, sku: str, loc: str) -> int:
        lvl = self.levels.get((sku, loc))
        base_ts, base = lvl if lvl is not None else (-1, 0)
        return base + sum(d for ts, d in self.deltas.get((sku, loc), []) if ts > base_ts)

    def locations(self, sku: str) -> list[str]:
        return sorted(self.locs.get(sku, ()))

    def known(self, sku: str) -> bool:
        return bool(self.locs.get(sku))

    def atp(self, sku: str) -> int:
        return sum(max(0, self.loc_atp(sku, loc)) for loc in self.locations(sku))

    def sellable(self, sku: str) -> bool:
        p = self.catalog.get(sku)
        return p is None or (p["active"] is True and p["online"] is True)

    def available(self, sku: str) -> bool:
        return self.sellable(sku) and (not self.known(sku) or self.atp(sku) > 0)

    def apply(self, topic: str, msg: dict[str, Any]) -> None:
        if topic == "inventory.stock":
            key = (msg["sku"], msg["location"])
            self.locs.setdefault(msg["sku"], set()).add(msg["location"])
            if msg["type"] == "level":
                old = self.levels.get(key)
                if old is None or msg["ts"] >= old[0]:
                    self.levels[key] = (msg["ts"], msg["on_hand"] - msg["reserved"])
            else:
                self.deltas.setdefault(key, []).append((msg["ts"], msg["delta"]))
        elif topic == "catalog.products":
            known = self.catalog.get(msg["sku"])
            if known is None or msg["ts"] >= known["ts"]:
                self.catalog[msg["sku"]] = msg
        elif topic == "shop.orders":
            oid = msg["order_id"]
            if msg["status"] == "placed":
                if oid in self.orders:
                    return
                charges = []
                for line in msg["lines"]:
                    sku = line["sku"]
                    loc = line.get("location")
                    if loc is None:
                        locs = self.locations(sku)
                        if not locs:
                            continue
                        loc = max(locs, key=lambda name: (self.loc_atp(sku, name), [-ord(ch) for ch in name]))
                    elif (sku, loc) not in self.levels and (sku, loc) not in self.deltas:
                        continue
                    charges.append((sku, loc, line["qty"]))
                    self.deltas.setdefault((sku, loc), []).append((msg["ts"], -line["qty"]))
                self.orders[oid] = charges
            else:
                if oid in self.cancelled:
                    return
                self.cancelled.add(oid)
                if oid in self.orders:
                    for sku, loc, qty in self.orders[oid]:
                        self.deltas.setdefault((sku, loc), []).append((msg["ts"], qty))
                else:
                    for line in msg["lines"]:
                        loc = line.get("location")
                        if loc is not None and ((line["sku"], loc) in self.levels or (line["sku"], loc) in self.deltas):
                            self.deltas.setdefault((line["sku"], loc), []).append((msg["ts"], line["qty"]))
