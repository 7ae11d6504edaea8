"""A simulated day: the opening snapshot, then the scheduled messages minute by minute."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from typing import Any

from stockguard.sim.config import (
    _HOUR_MS,
    _MINUTE_MS,
    _RESTOCK_H,
    _RESYNC_EVERY_H,
    CAMPAIGN_ABANDON,
    CAMPAIGN_CYBER,
    CAMPAIGN_LIFECYCLE,
    TOPIC_CAMPAIGNS,
    TOPIC_CATALOG,
    TOPIC_STOCK,
    Message,
    SimConfig,
)
from stockguard.sim.demand import _Demand
from stockguard.sim.malformed import _Malformer
from stockguard.sim.schedule import _ADJUST, _CANCEL, _LEVEL, _ORDER, _RESTOCK, _RESYNC
from stockguard.sim.stock import _StockBook

__all__ = ["simulate"]

_DEFAULT_CONFIG = SimConfig()  # frozen, so one default shared by every call is safe


def simulate(cfg: SimConfig = _DEFAULT_CONFIG) -> Iterator[Message]:
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


class _Simulator(_Demand, _StockBook):
    """Hold the state of one simulated day; see :func:`simulate`.

    Each layer's ``__init__`` adds only its own state and passes ``cfg`` on with ``super()``, so the one
    ``_Setup.__init__`` (the only one drawing random numbers) runs once, first.
    """

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
        malformed = _Malformer(self.rng, self.cfg.bad_fraction)
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
                bad = malformed.follow(topic, key, value)
                if bad is not None:
                    yield bad
