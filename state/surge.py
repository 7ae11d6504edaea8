"""Order-surge alerts per location: units per minute against a baseline, open/update/resolved.

Every location's units ordered per minute over the last `surge_window` (whole minutes) are
compared with its rate over the `baseline_window` before that (floored at
`min_baseline_units_per_min`). Evaluated each time event time enters a new minute:

- open      ratio >= surge_ratio and units in the window >= surge_min_units, no alert open,
            and a full baseline of event time has been observed since the stream began
            (else the first orders anywhere look like a surge against the floor);
- update    the ratio has doubled since the last message of the open alert;
- resolved  the ratio stayed below `resolve_ratio` (1.5) for a full surge window.

While an alert is open its baseline is frozen at the pre-surge rate (the baseline when it
opened): a rolling baseline would climb with a sustained surge and "resolve" it while the
warehouse is still flooded.

Between 1.5 and the surge ratio nothing happens, so a location hovering around the
threshold yields one alert, not dozens.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from mypy_extensions import mypyc_attr

from stockguard.config.settings import SurgeSettings
from stockguard.state.drains import DrainGateState
from stockguard.state.pickling import fields
from stockguard.state.windows import MINUTE, MinuteWindow

__all__ = ["Charged", "LocationSurge", "SurgeState", "SurgeWatcher", "Tick"]

RESOLVE_RATIO = 1.5
TOP_SKUS = 5


class Charged(NamedTuple):
    """Units of an order line charged to a location (from the sku monitor)."""

    ts: int
    location: str
    sku: str
    qty: int
    campaign_id: str | None
    loc_atp: int


class Tick(NamedTuple):
    """Event time has reached `ts` (from the sku monitor), for time-driven rules."""

    ts: int


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class LocationSurge:
    """Hold one location's minute window, its skus' ATP and its open alert."""

    __slots__ = ("alert_id", "atp", "base_upm", "below_since", "first_minute", "last_ratio", "window")

    def __init__(self, horizon_min: int, minute: int) -> None:
        self.window = MinuteWindow(horizon_min)
        self.atp: dict[str, int] = {}
        self.first_minute = minute
        self.alert_id: str | None = None
        self.last_ratio = 0.0
        self.below_since: int | None = None
        self.base_upm = 0.0

    def __getstate__(self) -> tuple[object, ...]:
        return (
            self.window,
            self.atp,
            self.first_minute,
            self.alert_id,
            self.last_ratio,
            self.below_since,
            self.base_upm,
        )

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        (self.window, self.atp, self.first_minute, self.alert_id, self.last_ratio, self.below_since, self.base_upm) = s


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SurgeState:
    """Hold every location's surge state and the event-time minute reached.

    Locations are few (warehouses), so they are kept once seen: their windows empty
    themselves as time passes.
    """

    def __init__(self) -> None:
        self.locations: dict[str, LocationSurge] = {}
        self.minute = 0
        # First event-time minute observed: the baseline needs that much observed time.
        self.first_minute = -1
        # The per-location limit on drain alerts (state.drains).
        self.drains = DrainGateState()

    def __getstate__(self) -> tuple[object, ...]:
        return (self.locations, self.minute, self.first_minute, self.drains)

    def __setstate__(self, s: Any) -> None:
        # Written before the drain limit: no gate yet.
        if type(s) is tuple and len(s) == 3:
            s = (*s, DrainGateState())
        elif type(s) is dict and "drains" not in s:
            s = {**s, "drains": DrainGateState()}
        self.locations, self.minute, self.first_minute, self.drains = fields(
            s, ("locations", "minute", "first_minute", "drains")
        )


class SurgeWatcher:
    """Apply the surge rules to charged units and ticks."""

    def __init__(self, state: SurgeState, cfg: SurgeSettings, lateness_min: int = 2) -> None:
        self.state = state
        self.cfg = cfg
        self.w = max(1, cfg.surge_window // MINUTE)
        self.b = max(1, cfg.baseline_window // MINUTE)
        self.horizon = self.w + self.b + lateness_min + 1
        self.late = 0

    def on_charged(self, c: Charged, out: list[dict[str, Any]]) -> None:
        """Count a charged order line, then evaluate if a minute has passed."""
        st = self.state
        loc = st.locations.get(c.location)
        if loc is None:
            loc = st.locations[c.location] = LocationSurge(self.horizon, c.ts // MINUTE)
        if not loc.window.add(c.ts, c.qty, c.campaign_id, c.sku, max(c.ts, st.minute * MINUTE)):
            self.late += 1
        loc.atp[c.sku] = c.loc_atp
        self._advance(c.ts, out)

    def on_tick(self, ts: int, out: list[dict[str, Any]]) -> None:
        """Advance event time."""
        self._advance(ts, out)

    def _advance(self, ts: int, out: list[dict[str, Any]]) -> None:
        st = self.state
        minute = ts // MINUTE
        if st.first_minute < 0:
            st.first_minute = minute
        if minute <= st.minute:
            return
        st.minute = minute
        for name in sorted(st.locations):
            self._evaluate(name, st.locations[name], minute, out)

    def _evaluate(self, name: str, loc: LocationSurge, minute: int, out: list[dict[str, Any]]) -> None:
        cfg = self.cfg
        loc.window.evict(minute * MINUTE)
        window = loc.window.span(minute - self.w, minute - 1)
        base = loc.window.span(minute - self.w - self.b, minute - self.w - 1)
        units = MinuteWindow.total(window)
        upm = units / self.w
        if loc.alert_id is None:
            base_upm = max(MinuteWindow.total(base) / self.b, cfg.min_baseline_units_per_min)
        else:
            base_upm = loc.base_upm
        ratio = upm / base_upm
        now = minute * MINUTE
        if loc.alert_id is None:
            # A full baseline of *observed time* (not of orders at this location): a quiet
            # or new location has a true baseline of zero, floored, and may surge at once.
            history = minute - self.state.first_minute >= self.w + self.b
            if history and ratio >= cfg.surge_ratio and units >= cfg.surge_min_units:
                loc.alert_id = f"{name}-{now}"
                loc.last_ratio = ratio
                loc.base_upm = base_upm
                loc.below_since = None
                out.append(self._message(name, loc, "open", now, window, upm, base_upm, ratio))
            return
        if ratio < RESOLVE_RATIO:
            if loc.below_since is None:
                loc.below_since = now
            if now - loc.below_since >= self.w * MINUTE:
                out.append(self._message(name, loc, "resolved", now, window, upm, base_upm, ratio))
                loc.alert_id = None
                loc.below_since = None
                loc.last_ratio = 0.0
            return
        loc.below_since = None
        if ratio >= 2 * loc.last_ratio:
            loc.last_ratio = ratio
            out.append(self._message(name, loc, "update", now, window, upm, base_upm, ratio))

    def _message(
        self,
        name: str,
        loc: LocationSurge,
        status: str,
        now: int,
        window: list[Any],
        upm: float,
        base_upm: float,
        ratio: float,
    ) -> dict[str, Any]:
        units = MinuteWindow.total(window)
        by_campaign = MinuteWindow.campaigns(window)
        campaign_units = sum(by_campaign.values())
        by_sku = MinuteWindow.keys(window)
        top = sorted(by_sku.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SKUS]
        top_skus = []
        for sku, u in top:
            sku_upm = u / self.w
            atp = loc.atp.get(sku, 0)
            top_skus.append(
                {
                    "sku": sku,
                    "units_per_min": round(sku_upm, 2),
                    "atp": atp,
                    "minutes_to_stockout": round(max(atp, 0) / sku_upm, 1) if sku_upm > 0 else None,
                }
            )
        extra = (upm * 60 - base_upm * 60) / self.cfg.units_per_staff_hour
        assert loc.alert_id is not None  # noqa: S101 - only open alerts have messages
        return {
            "alert_id": loc.alert_id,
            "kind": "order_surge",
            "status": status,
            "ts": now,
            "location": name,
            "units_per_min": round(upm, 2),
            "baseline_units_per_min": round(base_upm, 2),
            "ratio": round(ratio, 2),
            "campaign_share": round(campaign_units / units, 2) if units else 0.0,
            "campaign_ids": [c for c, _ in sorted(by_campaign.items(), key=lambda kv: (-kv[1], kv[0]))],
            "top_skus": top_skus,
            "recommended_extra_staff": max(0, math.ceil(extra)),
            "units_in_window": units,
        }
