"""Bytewax logics of the operations side: sku monitor, location surges, campaign view.

Thin shells around the pure transitions in `state.monitor`, `state.surge` and
`state.campaigns`: they dispatch events, encode messages and snapshot (only when
recovery is on, pickled, so the snapshot is immutable).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bytewax.operators import StatefulBatchLogic

from stockguard.config.settings import Settings
from stockguard.flows.encoding import Encoder, wall_clock_ms
from stockguard.flows.metrics import SURGE_OPEN, StateGauges, init_location_series
from stockguard.flows.records import CampaignView, OutRecord
from stockguard.state import snapshots
from stockguard.state.campaigns import CampaignState, CampaignTracker
from stockguard.state.models import Campaign, Order, Product, Removed
from stockguard.state.monitor import Alert, Monitor, MonitorState
from stockguard.state.surge import Charged, SurgeState, SurgeWatcher, Tick

__all__ = ["CampaignLogic", "MonitorLogic", "SurgeLogic"]

log = logging.getLogger(__name__)


def _snapshot(keep: bool, step: str, state: object) -> bytes | None:
    return snapshots.dump(step, state) if keep else None


class MonitorLogic(StatefulBatchLogic[tuple[int, Any], OutRecord | Charged | Tick, bytes | None]):
    """Run one sku monitor partition."""

    def __init__(self, settings: Settings, resume: bytes | None, keep: bool) -> None:
        self.settings = settings
        self.keep = keep
        self.gauges = StateGauges("monitor_skus")
        self.encoder = Encoder(settings, wall_clock_ms)
        self.monitor: Monitor | None = None
        if resume is not None:
            state = snapshots.load("monitor_skus", resume, MonitorState, MonitorState(0)).state
            self.monitor = Monitor(state, settings.rules, settings.surge)

    def on_batch(self, values: list[tuple[int, Any]]) -> tuple[Iterable[OutRecord | Charged | Tick], bool]:
        """Apply a batch of this partition's sku events."""
        m = self.monitor
        if m is None:
            m = self.monitor = Monitor(MonitorState(values[0][0]), self.settings.rules, self.settings.surge)
        alerts: list[Alert] = []
        ticks: list[Tick] = []
        charged: list[Charged] = []
        apply = m.apply
        out: list[OutRecord | Charged | Tick] = []
        for _, ev in values:
            try:
                apply(ev, alerts, ticks, charged)
            except Exception as exc:  # one bad event must not stop the partition
                out.append(self.encoder.failed_event("monitor_skus", ev, exc))
        if alerts:
            out.extend(self.encoder.alerts(alerts))
        out.extend(charged)
        if ticks:
            out.append(ticks[-1])
        self.gauges.maybe_set(m.state.index, lambda: {"skus": len(m.state.skus)})
        return (out, StatefulBatchLogic.RETAIN)

    def snapshot(self) -> bytes | None:
        """Return the pickled partition when recovery is on."""
        return _snapshot(self.keep and self.monitor is not None, "monitor_skus", self.monitor and self.monitor.state)


class SurgeLogic(StatefulBatchLogic[Charged | Tick, OutRecord, bytes | None]):
    """Watch every location for order surges (one key: locations are few)."""

    def __init__(self, settings: Settings, resume: bytes | None, keep: bool) -> None:
        self.settings = settings
        self.keep = keep
        state = SurgeState()
        if resume is not None:
            state = snapshots.load("watch_locations", resume, SurgeState, state).state
        self.watcher = SurgeWatcher(state, settings.surge)
        self.encoder = Encoder(settings, wall_clock_ms)
        self.gauges = StateGauges("watch_locations")
        self.seen: set[str] = set()

    def on_batch(self, values: list[Charged | Tick]) -> tuple[Iterable[OutRecord], bool]:
        """Count charged units and evaluate minutes as event time passes."""
        msgs: list[dict[str, Any]] = []
        failed: list[OutRecord] = []
        w = self.watcher
        for v in values:
            try:
                if type(v) is Charged:
                    w.on_charged(v, msgs)
                else:
                    w.on_tick(v.ts, msgs)
            except Exception as exc:  # one bad event must not stop the partition
                failed.append(self.encoder.failed_event("watch_locations", v, exc))
        self.gauges.maybe_set(0, lambda: {"locations": len(w.state.locations)})
        for name, loc in w.state.locations.items():
            if name not in self.seen:
                self.seen.add(name)
                init_location_series(name)
            # Few locations: cheap per batch, and right again after a restore.
            SURGE_OPEN.labels(name).set(1 if loc.alert_id is not None else 0)
        if not msgs:
            return (failed, StatefulBatchLogic.RETAIN)
        failed.extend(self.encoder.alerts([("alert", m["location"], m) for m in msgs]))
        return (failed, StatefulBatchLogic.RETAIN)

    def snapshot(self) -> bytes | None:
        """Return the pickled surge state when recovery is on."""
        return _snapshot(self.keep, "watch_locations", self.watcher.state)


class CampaignLogic(StatefulBatchLogic[Order | Product | Campaign | Removed, CampaignView, bytes | None]):
    """Keep the live campaign view (one key: campaigns are few)."""

    def __init__(self, settings: Settings, resume: bytes | None, keep: bool) -> None:
        self.keep = keep
        state = CampaignState()
        if resume is not None:
            state = snapshots.load("track_campaigns", resume, CampaignState, state).state
        self.tracker = CampaignTracker(state, settings.rules.order_ttl)
        self.gauges = StateGauges("track_campaigns")

    def on_batch(self, values: list[Order | Product | Campaign | Removed]) -> tuple[Iterable[CampaignView], bool]:
        """Attribute orders and emit the views that changed."""
        views: list[dict[str, Any]] = []
        t = self.tracker
        for v in values:
            tp = type(v)
            try:
                if tp is Order:
                    t.on_order(v, views)  # type: ignore[arg-type]
                elif tp is Product:
                    t.on_product(v, views)  # type: ignore[arg-type]
                elif tp is Campaign:
                    t.on_campaign(v, views)  # type: ignore[arg-type]
                elif tp is Removed:
                    t.on_removed(v.key, views)  # type: ignore[union-attr]
            except Exception as exc:  # one bad event must not stop the campaign view
                # The view is a read model with no output topic: say so, without the event
                # itself (it may hold a customer id).
                log.error("campaign view skipped a %s: %s: %s", tp.__name__, type(exc).__name__, exc)
        st = t.state
        self.gauges.maybe_set(0, lambda: {"campaigns": len(st.meta), "orders": len(st.ledger)})
        return ([CampaignView(v["campaign_id"], v) for v in views], StatefulBatchLogic.RETAIN)

    def on_eof(self) -> tuple[Iterable[CampaignView], bool]:
        """Emit the final views of a finite stream (a replay)."""
        t = self.tracker
        st = t.state
        views = [t.view(cid) for cid in sorted(st.dirty)]
        st.dirty.clear()
        return ([CampaignView(v["campaign_id"], v) for v in views], StatefulBatchLogic.RETAIN)

    def snapshot(self) -> bytes | None:
        """Return the pickled campaign state when recovery is on."""
        return _snapshot(self.keep, "track_campaigns", self.tracker.state)
