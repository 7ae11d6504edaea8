"""Per-sku monitoring: where order units are charged, stock-drain alerts, merch insights.

A monitor partition owns the skus that hash to it and receives, of each order, the lines
of its skus. It keeps each sku's ATP with the decisions' own stock book
(`state.inventory.StockBook`, so both always agree), a minute window of units ordered with
their campaign attribution and location, the last product view, and alert/insight memory.

- Every placed order line is charged to its location (or the one with the highest ATP)
  and forwarded as `Charged` to the location surge watcher.
- Stock drain: a forecast, made while ATP > 0: projected minutes to stock-out at the
  windowed rate (units over `surge_window`) below `drain_horizon` while campaigns drive at least
  `drain_min_campaign_share` of the units, with at least `drain_min_units` units in the
  window (a single order is no trend): one `open` alert per drain episode, keyed by
  the location that shipped most of the units; `resolved` on restock (a stock event that
  raises ATP so that the projection is back above the horizon).
- Insights, checked every 3 hours of event time and on catalog changes, each at most once per sku
  per day: `invisible_in_stock` (ATP >= `insight_min_atp` but offline in the catalog, or
  no product view for `no_views_window` while in stock) and `overstock` (days of cover
  above `overstock_days` with a margin rate of at least `overstock_min_margin_rate`).
"""

from __future__ import annotations

import zlib
from typing import Any, Final

from mypy_extensions import mypyc_attr

from stockguard.config.settings import RuleSettings, SurgeSettings
from stockguard.state.inventory import OrderLedger, SkuState, StockBook
from stockguard.state.models import Click, Order, Product, Removed, StockAdjustment, StockLevel
from stockguard.state.pickling import restore, state_of
from stockguard.state.surge import Charged, Tick
from stockguard.state.windows import MINUTE, MinuteWindow

__all__ = ["LegacySkuWatch", "Monitor", "MonitorState", "SkuWatch", "monitor_partition_of"]

_HOUR: Final = 3_600_000
_DAY: Final = 86_400_000
# Insight sweeps: a scan of every sku; insights are once a day, so every 3 h is enough.
_SWEEP: Final = 3 * _HOUR
# Each round is spread over this much event time, a slice per event, never one stall: a
# million skus checked at once would hold every decision behind them for seconds.
_SPREAD: Final = 30 * MINUTE


def monitor_partition_of(sku: str, partitions: int) -> int:
    """Return the monitor partition of a sku: stable across processes and runs."""
    return zlib.crc32(sku.encode()) % partitions if partitions > 1 else 0


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SkuWatch:
    """Hold what the monitor knows of one sku."""

    __slots__ = ("drain", "first_ts", "insights", "last_view", "stock", "window")

    def __init__(self, ts: int) -> None:
        self.stock = SkuState()
        # Minute window of units ordered: None until the first order line.
        self.window: MinuteWindow | None = None
        self.first_ts = ts
        self.last_view = -1
        # Open drain alert: (alert_id, location) or None.
        self.drain: tuple[str, str] | None = None
        # Insight kind -> event time it was last sent.
        self.insights: dict[str, int] | None = None

    def __getstate__(self) -> tuple[object, ...]:
        return (self.stock, self.window, self.first_ts, self.last_view, self.drain, self.insights)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        (self.stock, self.window, self.first_ts, self.last_view, self.drain, self.insights) = s


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class LegacySkuWatch(SkuWatch):
    """Read a SkuWatch pickled before the one stock book (555fb64 and earlier).

    It kept its own charges per sku (order_id -> (location, qty, ts)); `MonitorState`
    moves them into its order ledger and keeps plain `SkuWatch`es.
    """

    __slots__ = ("charged",)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        (self.stock, self.window, charged, self.first_ts, self.last_view, self.drain, self.insights) = s
        self.charged: dict[str, tuple[str, int, int]] = charged or {}

    def plain(self) -> SkuWatch:
        """Return the same watch as a plain SkuWatch."""
        w = SkuWatch.__new__(SkuWatch)
        w.stock, w.window, w.first_ts = self.stock, self.window, self.first_ts
        w.last_view, w.drain, w.insights = self.last_view, self.drain, self.insights
        return w


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class MonitorState:
    """Hold one monitor partition's skus and clock."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.skus: dict[str, SkuWatch] = {}
        self.watermark = 0
        self.next_sweep = 0
        # The current sweep round: skus to check (in insertion order) and how far it got.
        self.round: list[str] = []
        self.round_pos = 0
        self.round_start = 0
        # Orders the stock book applied (this partition's lines of them).
        self.ledger = OrderLedger()

    def __getstate__(self) -> tuple[object, ...]:
        return state_of(self, _MONITOR_FIELDS)

    def __setstate__(self, s: Any) -> None:
        if type(s) is dict and "ledger" not in s:
            s = {**s, "ledger": _ledger_of_legacy(s["skus"])}
        restore(self, _MONITOR_FIELDS, s)


_MONITOR_FIELDS: Final = ("index", "skus", "watermark", "next_sweep", "round", "round_pos", "round_start", "ledger")


def _ledger_of_legacy(skus: dict[str, SkuWatch]) -> OrderLedger:
    """Gather the per-sku charges of a legacy snapshot into one order ledger, in place."""
    ledger = OrderLedger()
    orders: dict[str, tuple[int, list[tuple[str, str, int]]]] = {}
    for sku, w in list(skus.items()):
        if type(w) is not LegacySkuWatch:
            continue
        for oid, (loc, qty, ts) in w.charged.items():
            # The legacy monitor also recorded lines at locations it held no stock for;
            # giving those back finds no location, as it did before.
            orders.setdefault(oid, (ts, []))[1].append((sku, loc, qty))
        skus[sku] = w.plain()
    ledger.orders = {oid: (ts, tuple(charges), False) for oid, (ts, charges) in orders.items()}
    ledger.queue.extend(sorted((ts, oid) for oid, (ts, _charges) in orders.items()))
    return ledger


Alert = tuple[str, str, dict[str, Any]]  # (kind "alert" | "insight", key, message)


class Monitor:
    """Apply the monitoring rules to one partition's events."""

    def __init__(self, state: MonitorState, rules: RuleSettings, cfg: SurgeSettings) -> None:
        self.state = state
        self.rules = rules
        self.cfg = cfg
        self.w = max(1, cfg.surge_window // MINUTE)
        self.b = max(1, cfg.baseline_window // MINUTE)
        self.horizon = self.w + self.b + 2
        self.book = StockBook(state.ledger, self._stock_of, rules)

    def _sku(self, sku: str, ts: int) -> SkuWatch:
        s = self.state.skus.get(sku)
        if s is None:
            s = self.state.skus[sku] = SkuWatch(ts)
        return s

    def _stock_of(self, sku: str, ts: int) -> SkuState:
        # The stock book's lookup, one call per order line: _sku inlined.
        w = self.state.skus.get(sku)
        if w is None:
            w = self.state.skus[sku] = SkuWatch(ts)
        return w.stock

    def _advance(self, ts: int, out: list[Alert], ticks: list[Tick]) -> None:
        st = self.state
        if ts <= st.watermark:
            return
        if ts // MINUTE > st.watermark // MINUTE:
            ticks.append(Tick(ts))
            # Orders are forgotten on this partition's clock, a minute at a time.
            self.book.expire(ts)
        st.watermark = ts
        if ts >= st.next_sweep:
            st.next_sweep = (ts // _SWEEP + 1) * _SWEEP
            # A round left unfinished (event time jumped) ends before the next begins.
            self._check(out, len(st.round))
            st.round = list(st.skus)
            st.round_pos = 0
            st.round_start = ts
        if st.round_pos < len(st.round):
            due = -(-len(st.round) * (ts - st.round_start) // _SPREAD)
            if due > st.round_pos:
                self._check(out, due)

    def apply(self, ev: object, alerts: list[Alert], ticks: list[Tick], charged: list[Charged]) -> None:
        """Apply any event routed to a monitor partition (exact type dispatch: hot path)."""
        tp = type(ev)
        if tp is Click:
            # Four in ten events are product views: the click path is inlined.
            ts: int = ev.ts  # type: ignore[attr-defined]
            if ts > self.state.watermark:
                self._advance(ts, alerts, ticks)
            if ev.type == "product_view" and ev.sku is not None:  # type: ignore[attr-defined]
                w = self.state.skus.get(ev.sku)  # type: ignore[attr-defined]
                if w is None:
                    w = self._sku(ev.sku, ts)  # type: ignore[attr-defined]
                if ts > w.last_view:
                    w.last_view = ts
        elif tp is Order:
            self.on_order(ev, alerts, ticks, charged)  # type: ignore[arg-type]
        elif tp is StockLevel or tp is StockAdjustment:
            self.on_stock(ev, alerts, ticks)  # type: ignore[arg-type]
        elif tp is Product:
            self.on_product(ev, alerts, ticks)  # type: ignore[arg-type]
        elif tp is Removed:
            self.on_removed(ev)  # type: ignore[arg-type]

    # ---- events ----

    def on_stock(self, ev: StockLevel | StockAdjustment, out: list[Alert], ticks: list[Tick]) -> None:
        """Apply a stock event; a restock may resolve a drain alert."""
        self._advance(ev.ts, out, ticks)
        w = self._sku(ev.sku, ev.ts)
        before = w.stock.atp()
        self.book.apply_stock(w.stock, ev)
        if w.drain is not None and w.stock.atp() > before:
            upm = self._rate(w, ev.ts)
            if upm <= 0 or w.stock.atp() / upm >= self.cfg.drain_horizon / MINUTE:
                out.append(("alert", w.drain[1], self._drain_message(ev.sku, w, "resolved", ev.ts, w.drain[1])))
                w.drain = None

    def on_product(self, p: Product, out: list[Alert], ticks: list[Tick]) -> None:
        """Apply a catalog record; an offline sku in stock is an insight."""
        self._advance(p.ts, out, ticks)
        w = self._sku(p.sku, p.ts)
        if w.stock.product is not None and w.stock.product.ts > p.ts:
            return
        w.stock.product = p
        self._insights(p.sku, w, p.ts, out)

    def on_removed(self, r: Removed) -> None:
        """Apply a catalog deletion: a deleted product gets no insights."""
        w = self.state.skus.get(r.key)
        if w is not None and w.stock.product is not None:
            w.stock.product = w.stock.product._replace(active=False, online=False)

    def on_order(self, o: Order, out: list[Alert], ticks: list[Tick], charged: list[Charged]) -> None:
        """Charge this partition's lines of an order, count them, and check for a stock drain."""
        self._advance(o.ts, out, ticks)
        skus = self.state.skus
        for line in o.lines:
            # Every sku an order names is watched from then on (its insight checks too).
            if line.sku not in skus:
                skus[line.sku] = SkuWatch(o.ts)
        if o.status == "cancelled":
            self.book.cancel(o)
            return
        charges = self.book.place(o)
        if charges is None:
            return  # seen before: the book took its stock once
        for ch in charges:
            w = skus[ch.sku]
            if ch.location is not None:
                charged.append(Charged(o.ts, ch.location, ch.sku, ch.qty, o.campaign_id, ch.atp))
            win = w.window
            if win is None:
                win = w.window = MinuteWindow(self.horizon)
            win.add(o.ts, ch.qty, o.campaign_id, ch.location, self.state.watermark)
            self._check_drain(ch.sku, w, o.ts, out)

    # ---- rules ----

    def _rate(self, w: SkuWatch, now: int) -> float:
        if w.window is None:
            return 0.0
        minute = now // MINUTE
        return MinuteWindow.total(w.window.span(minute - self.w + 1, minute)) / self.w

    def _check_drain(self, sku: str, w: SkuWatch, now: int, out: list[Alert]) -> None:
        if w.drain is not None or not w.stock.known or w.window is None:
            return
        minute = now // MINUTE
        window = w.window.span(minute - self.w + 1, minute)
        units = MinuteWindow.total(window)
        if units < max(1, self.cfg.drain_min_units):
            return
        upm = units / self.w
        atp = w.stock.atp()
        # A drain alert is a forecast: at ATP 0 the sku has already run out (retractions
        # and suppressions say so), and an alert then only adds to the warehouse's noise.
        # Cheapest test next: most skus have stock for far longer than the horizon.
        if atp <= 0 or atp / upm >= self.cfg.drain_horizon / MINUTE:
            return
        campaign_units = sum(MinuteWindow.campaigns(window).values())
        if campaign_units / units < self.cfg.drain_min_campaign_share:
            return
        by_loc = MinuteWindow.keys(window)
        location = min(by_loc, key=lambda k: (-by_loc[k], k)) if by_loc else (w.stock.best_location() or "")
        w.drain = (f"{sku}-{now}", location)
        out.append(("alert", location, self._drain_message(sku, w, "open", now, location)))

    def _drain_message(self, sku: str, w: SkuWatch, status: str, now: int, location: str) -> dict[str, Any]:
        minute = now // MINUTE
        win = w.window or MinuteWindow(self.horizon)
        window = win.span(minute - self.w + 1, minute)
        base = win.span(minute - self.w - self.b + 1, minute - self.w)
        units = MinuteWindow.total(window)
        upm = units / self.w
        base_upm = max(MinuteWindow.total(base) / self.b, self.cfg.min_baseline_units_per_min)
        by_campaign = MinuteWindow.campaigns(window)
        atp = w.stock.atp()
        assert w.drain is not None  # noqa: S101 - messages exist only for episodes
        return {
            "alert_id": w.drain[0],
            "kind": "stock_drain",
            "status": status,
            "ts": now,
            "location": location,
            "sku": sku,
            "units_per_min": round(upm, 2),
            "baseline_units_per_min": round(base_upm, 2),
            "ratio": round(upm / base_upm, 2),
            "campaign_share": round(sum(by_campaign.values()) / units, 2) if units else 0.0,
            "campaign_ids": [c for c, _ in sorted(by_campaign.items(), key=lambda kv: (-kv[1], kv[0]))],
            "top_skus": [
                {
                    "sku": sku,
                    "units_per_min": round(upm, 2),
                    "atp": atp,
                    "minutes_to_stockout": round(atp / upm, 1) if upm > 0 else None,
                }
            ],
            "recommended_extra_staff": 0,
        }

    def _insights(self, sku: str, w: SkuWatch, now: int, out: list[Alert]) -> None:
        cfg = self.cfg
        p = w.stock.product
        if p is None or not p.active or not w.stock.known:
            return
        sent = w.insights
        # A kind sent within the day is not even evaluated (it would be dropped anyway).
        invisible_due = sent is None or now - sent.get("invisible_in_stock", -_DAY) >= _DAY
        overstock_due = sent is None or now - sent.get("overstock", -_DAY) >= _DAY
        if not (invisible_due or overstock_due):
            return
        atp = w.stock.atp()
        if atp < cfg.insight_min_atp:
            return
        if invisible_due:
            if not p.online:
                self._insight(
                    sku, w, now, "invisible_in_stock", f"offline in the catalog with {atp} units available", atp, out
                )
            elif now - max(w.last_view, w.first_ts) >= cfg.no_views_window:
                hours = (now - max(w.last_view, w.first_ts)) / _HOUR
                self._insight(
                    sku, w, now, "invisible_in_stock", f"no product views for {hours:.0f} h while in stock", atp, out
                )
        if not overstock_due:
            return
        tracked = min(now - w.first_ts, self.rules.velocity_window)
        if p.online and tracked >= cfg.insight_min_history and p.price > 0:
            margin_rate = p.margin / p.price
            if margin_rate < cfg.overstock_min_margin_rate:
                return
            sold = w.stock.units_sold(now, self.rules.velocity_window)
            per_day = sold / (tracked / _DAY)
            cover = atp / per_day if per_day > 0 else float("inf")
            if cover > cfg.overstock_days:
                shown = "no sales" if per_day == 0 else f"{cover:.0f} days of cover"
                self._insight(
                    sku,
                    w,
                    now,
                    "overstock",
                    f"{shown} at a {margin_rate:.0%} margin: a candidate to promote",
                    atp,
                    out,
                    days_of_cover=None if per_day == 0 else round(cover, 1),
                    unit_margin=round(p.margin, 2),
                )

    def _insight(
        self, sku: str, w: SkuWatch, now: int, kind: str, detail: str, atp: int, out: list[Alert], **extra: Any
    ) -> None:
        if w.insights is None:
            w.insights = {}
        last = w.insights.get(kind)
        if last is not None and now - last < _DAY:
            return
        w.insights[kind] = now
        msg: dict[str, Any] = {"kind": kind, "sku": sku, "atp": atp, "ts": now, "detail": detail}
        msg.update(extra)
        out.append(("insight", sku, msg))

    def _check(self, out: list[Alert], upto: int) -> None:
        """Check the skus of the current round up to position `upto`."""
        st = self.state
        now = st.watermark
        skus = st.skus
        names = st.round
        end = min(upto, len(names))
        for i in range(st.round_pos, end):
            sku = names[i]
            w = skus.get(sku)
            if w is None:
                continue
            self._insights(sku, w, now, out)
        st.round_pos = end
        if end >= len(names):
            st.round = []
            st.round_pos = 0
