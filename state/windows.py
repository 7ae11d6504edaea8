"""Event-time minute buckets: the window arithmetic of surge and drain alerts.

A `MinuteWindow` keeps, per event-time minute, the units ordered, the units attributed to
campaigns (by campaign id) and the units per key (sku or location). Buckets older than the
horizon are dropped as time advances, so state is bounded by the horizon, and events older
than the allowed lateness are refused. Rates are units per minute over whole buckets.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import mypyc_attr

__all__ = ["MINUTE", "Bucket", "MinuteWindow"]

MINUTE: Final = 60_000


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Bucket:
    """Units ordered in one event-time minute."""

    __slots__ = ("by_campaign", "by_key", "minute", "units")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.units = 0
        self.by_campaign: dict[str, int] | None = None
        self.by_key: dict[str, int] | None = None

    def __getstate__(self) -> tuple[object, ...]:
        return (self.minute, self.units, self.by_campaign, self.by_key)

    def __setstate__(self, s: tuple[object, ...]) -> None:
        self.minute, self.units, self.by_campaign, self.by_key = s  # type: ignore[assignment]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class MinuteWindow:
    """Minute buckets of units over `horizon_min` minutes, newest last."""

    __slots__ = ("buckets", "horizon")

    def __init__(self, horizon_min: int) -> None:
        self.horizon = horizon_min
        self.buckets: list[Bucket] = []

    def add(self, ts: int, units: int, campaign: str | None, key: str | None, now: int) -> bool:
        """Count units at event time `ts`; False when older than the horizon before `now`."""
        minute = ts // MINUTE
        if minute <= now // MINUTE - self.horizon:
            return False
        buckets = self.buckets
        b: Bucket | None = None
        if buckets and buckets[-1].minute == minute:
            b = buckets[-1]
        elif not buckets or buckets[-1].minute < minute:
            b = Bucket(minute)
            buckets.append(b)
            # Evict as the window moves: no sweep has to visit idle windows.
            if buckets[0].minute <= minute - self.horizon:
                self.buckets = buckets = [x for x in buckets if x.minute > minute - self.horizon]
        else:
            for i, x in enumerate(buckets):
                if x.minute == minute:
                    b = x
                    break
                if x.minute > minute:
                    b = Bucket(minute)
                    buckets.insert(i, b)
                    break
        assert b is not None  # noqa: S101 - one of the branches found or made it
        b.units += units
        if campaign is not None:
            if b.by_campaign is None:
                b.by_campaign = {}
            b.by_campaign[campaign] = b.by_campaign.get(campaign, 0) + units
        if key is not None:
            if b.by_key is None:
                b.by_key = {}
            b.by_key[key] = b.by_key.get(key, 0) + units
        return True

    def evict(self, now: int) -> None:
        """Drop buckets that fell out of the horizon."""
        oldest = now // MINUTE - self.horizon
        if self.buckets and self.buckets[0].minute <= oldest:
            self.buckets = [b for b in self.buckets if b.minute > oldest]

    def span(self, first_minute: int, last_minute: int) -> list[Bucket]:
        """Return the buckets with first_minute <= minute <= last_minute."""
        buckets = self.buckets
        # Minutes ascend and most spans are the last few minutes: scan from the end.
        i = len(buckets)
        while i > 0 and buckets[i - 1].minute >= first_minute:
            i -= 1
        return [b for b in buckets[i:] if b.minute <= last_minute]

    @staticmethod
    def total(buckets: list[Bucket]) -> int:
        """Sum the units of buckets."""
        return sum(b.units for b in buckets)

    @staticmethod
    def campaigns(buckets: list[Bucket]) -> dict[str, int]:
        """Sum units per campaign over buckets."""
        out: dict[str, int] = {}
        for b in buckets:
            if b.by_campaign:
                for c, u in b.by_campaign.items():
                    out[c] = out.get(c, 0) + u
        return out

    @staticmethod
    def keys(buckets: list[Bucket]) -> dict[str, int]:
        """Sum units per key over buckets."""
        out: dict[str, int] = {}
        for b in buckets:
            if b.by_key:
                for k, u in b.by_key.items():
                    out[k] = out.get(k, 0) + u
        return out

    def __getstate__(self) -> tuple[object, ...]:
        return (self.horizon, self.buckets)

    def __setstate__(self, s: tuple[object, ...]) -> None:
        self.horizon, self.buckets = s  # type: ignore[assignment]
