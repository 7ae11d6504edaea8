"""Stock pushed to a vendor's catalog: coalesced per sku, at most once per interval.

Every stock view (topic `stockguard.stock-views`) replaces the pending ATP of its sku;
`due(now)` hands out what changed since the last push once `interval` passed, so a sku
whose stock moves a hundred times a minute costs the vendor one item a minute. An ATP
equal to the one last accepted is not sent again. The Kafka offsets behind a push are
committed when it is accepted (`OffsetTracker`), so a crash re-reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StockPush", "StockSync"]

Position = tuple[str, int, int]


@dataclass
class StockPush:
    """One push: the ATP of each sku, and the message positions it settles."""

    atp: dict[str, int]
    positions: list[Position]


@dataclass
class StockSync:
    """Coalesce stock views per sku and release them at most once per `interval` seconds."""

    interval: float
    pending: dict[str, int] = field(default_factory=dict)
    positions: list[Position] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    last_push: float | None = None

    def add(self, sku: str, atp: int, position: Position) -> None:
        """Take a sku's newest ATP (below zero counts as zero: nothing can be sold)."""
        self.pending[sku] = max(0, atp)
        self.positions.append(position)

    def due(self, now: float, force: bool = False) -> StockPush | None:
        """Return the push to make now (None: nothing to do, or not yet time)."""
        if not self.positions:
            return None
        if not force and self.last_push is not None and now - self.last_push < self.interval:
            return None
        atp = {sku: qty for sku, qty in self.pending.items() if self.sent.get(sku) != qty}
        push = StockPush(atp, self.positions)
        self.pending = {}
        self.positions = []
        self.last_push = now
        return push

    def wait(self, now: float) -> float:
        """Return the seconds until a push may go (0: now or nothing pending)."""
        if not self.positions or self.last_push is None:
            return 0.0
        return max(0.0, self.interval - (now - self.last_push))

    def accepted(self, push: StockPush) -> None:
        """Remember what the vendor took, so an unchanged ATP is not sent again."""
        self.sent.update(push.atp)

    def failed(self, push: StockPush) -> None:
        """Put a push that could not be delivered back, under any newer views."""
        for sku, qty in push.atp.items():
            self.pending.setdefault(sku, qty)
        self.positions = push.positions + self.positions
