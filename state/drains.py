"""Keep a location's stock-drain alerts readable at campaign scale: a limit per window.

The sku monitors find drains sku by sku (`state.monitor`); a campaign can drain dozens of
skus at one warehouse within minutes, and staff stop reading at that volume. This gate,
on the single location watcher, publishes at most `drain_max_per_window` drain `open`
messages per location in any `drain_window`. A drain over the limit is held, not lost:

- the next open message of its location carries it in `top_skus` (after the message's
  own sku; the held ones most urgent first, the soonest stock-out; at most
  `MAX_TOP_SKUS` skus a message, the rest wait for the next);
- when the window frees a slot and drains are still held, the most urgent held drain is
  published as the open message and the others are folded into its `top_skus`.

A held drain that resolves (restocked) before it was published is forgotten: nobody was
told. A drain folded into another message's `top_skus` has no `resolved` of its own;
only a published drain is resolved by message. Pure: no I/O, time is event time.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mypy_extensions import mypyc_attr

from stockguard.config.settings import SurgeSettings
from stockguard.state.pickling import fields

__all__ = ["DrainAlert", "DrainGate", "DrainGateState"]

# Most skus folded into one message's top_skus: the message stays readable.
MAX_TOP_SKUS = 10


class DrainAlert(NamedTuple):
    """A stock-drain message from a sku monitor, on its way to the location watcher."""

    ts: int
    location: str
    message: dict[str, Any]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class LocationDrains:
    """Hold one location's published drain opens and the drains waiting for a slot."""

    __slots__ = ("held", "published", "sent")

    def __init__(self) -> None:
        # Event times of the open messages published within the window, oldest first.
        self.sent: list[int] = []
        # sku -> the held open message, while over the limit.
        self.held: dict[str, dict[str, Any]] = {}
        # alert_id -> open time of each published drain not yet resolved.
        self.published: dict[str, int] = {}

    def __getstate__(self) -> tuple[object, ...]:
        return (self.sent, self.held, self.published)

    def __setstate__(self, s: Any) -> None:
        self.sent, self.held, self.published = fields(s, ("sent", "held", "published"))


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class DrainGateState:
    """Hold every location's drain gate."""

    def __init__(self) -> None:
        self.locations: dict[str, LocationDrains] = {}
        # The latest event time seen: drains come from several sku monitors, each on its
        # own clock, and the limit counts on one that never goes back.
        self.clock = 0

    def __getstate__(self) -> tuple[object, ...]:
        return (self.locations, self.clock)

    def __setstate__(self, s: Any) -> None:
        self.locations, self.clock = fields(s, ("locations", "clock"))


def _urgency(m: dict[str, Any]) -> tuple[float, str]:
    """Sort key: the soonest projected stock-out first, then sku."""
    top = m["top_skus"][0]
    minutes = top.get("minutes_to_stockout")
    return (float("inf") if minutes is None else float(minutes), str(m["sku"]))


class DrainGate:
    """Apply the per-location limit to drain messages."""

    def __init__(self, state: DrainGateState, cfg: SurgeSettings) -> None:
        self.state = state
        self.limit = cfg.drain_max_per_window
        self.window = cfg.drain_window
        # A published drain never resolved (its sku went quiet) is forgotten after a day.
        self.keep = max(cfg.drain_window, 24 * 3_600_000)

    def _loc(self, name: str) -> LocationDrains:
        loc = self.state.locations.get(name)
        if loc is None:
            loc = self.state.locations[name] = LocationDrains()
        return loc

    def _has_slot(self, loc: LocationDrains, now: int) -> bool:
        cut = now - self.window
        sent = loc.sent
        i = 0
        while i < len(sent) and sent[i] <= cut:
            i += 1
        if i:
            del sent[:i]
        return self.limit <= 0 or len(sent) < self.limit

    def _publish(self, loc: LocationDrains, m: dict[str, Any], now: int, out: list[dict[str, Any]]) -> None:
        loc.held.pop(m["sku"], None)
        if loc.held:
            room = max(0, MAX_TOP_SKUS - len(m["top_skus"]))
            # The most urgent fit; any beyond the room stay held for the next message.
            folded = sorted(loc.held.values(), key=_urgency)[:room]
            for h in folded:
                del loc.held[h["sku"]]
            m = dict(m)
            m["top_skus"] = [*m["top_skus"], *(h["top_skus"][0] for h in folded)]
        if m["ts"] != now:
            # The message says when it went out, on the gate's clock: the volume limit
            # holds on the times staff see.
            m = {**m, "ts": now}
        loc.sent.append(now)
        loc.published[m["alert_id"]] = now
        out.append(m)

    def on_drain(self, a: DrainAlert, out: list[dict[str, Any]]) -> None:
        """Publish, hold or drop one drain message of a monitor."""
        m = a.message
        loc = self._loc(a.location)
        st = self.state
        if a.ts > st.clock:
            st.clock = a.ts
        now = st.clock
        if m["status"] == "open":
            if self._has_slot(loc, now):
                self._publish(loc, m, now, out)
            else:
                loc.held[m["sku"]] = m
            return
        # resolved: only a published drain is resolved by message; a held one is dropped.
        if loc.published.pop(m["alert_id"], None) is not None:
            out.append(m)
            return
        held = loc.held.get(m["sku"])
        if held is not None and held["alert_id"] == m["alert_id"]:
            del loc.held[m["sku"]]

    def on_tick(self, ts: int, out: list[dict[str, Any]]) -> None:
        """Publish held drains as a slot frees; forget drains published too long ago."""
        st = self.state
        if ts > st.clock:
            st.clock = ts
        ts = st.clock
        for name in sorted(st.locations):
            loc = st.locations[name]
            if loc.held and self._has_slot(loc, ts):
                self._publish(loc, min(loc.held.values(), key=_urgency), ts, out)
            if loc.published:
                cut = ts - self.keep
                for alert_id in [k for k, t in loc.published.items() if t < cut]:
                    del loc.published[alert_id]
