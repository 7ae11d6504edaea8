"""Event heap of a simulated day: every message is scheduled on it, then emitted in ts order."""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from stockguard.sim.catalog import _Setup
from stockguard.sim.config import _P_CONSENT, _P_DUPLICATE_TRIGGER, TOPIC_TRIGGERS, SimConfig

# Heap entry kinds.
_EMIT = 0  # a ready (topic, key, value)
_ORDER = 1  # a placed order; reserves stock when emitted
_CANCEL = 2  # a cancellation; gives the order's stock back when emitted
_LEVEL = 3  # a WMS level for one (sku, location), computed when emitted
_RESYNC = 4  # schedules a batch of levels
_RESTOCK = 5  # schedules the big receipt of sold-out skus and back-in-stock triggers
_ADJUST = 6  # an adjustment, its delta bounded by the stock when emitted

_Entry = tuple[int, int, int, str, str | None, Any, Any]


class _Scheduler(_Setup):
    """Add the event heap, and the marketing triggers both the demand and the restock schedule."""

    def __init__(self, cfg: SimConfig) -> None:
        """Build the opening state and start with an empty heap."""
        super().__init__(cfg)
        self.seq = itertools.count()  # ties on ts keep the scheduling order
        self.heap: list[_Entry] = []
        self.n_trigger = 0

    def _push(self, ts: int, kind: int, topic: str, key: str | None, value: Any, extra: Any = None) -> None:
        """Schedule an entry on the event heap."""
        heapq.heappush(self.heap, (ts, next(self.seq), kind, topic, key, value, extra))

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
