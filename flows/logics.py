"""The Bytewax logic shells of every stateful step: thin, around the pure rules in `state`.

- `DecideLogic` (step `decide_triggers`): one logical decision partition, `state.decision`.
- `MonitorLogic` (`monitor_skus`): one sku monitor partition, `state.monitor`.
- `SurgeLogic` (`watch_locations`): every location's surge watch, `state.surge`.
- `CampaignLogic` (`track_campaigns`): the live campaign view, `state.campaigns`.

Each dispatches its batch to the rules, encodes what they emit (`flows.encoding`), keeps
its state-size gauges, and snapshots (only when recovery is on) in the one format of
`state.snapshots`. One bad event never stops a step: it becomes a dead-letter record.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from bytewax.operators import StatefulBatchLogic

from stockguard.config.settings import Settings
from stockguard.flows.encoding import Encoder, wall_clock_ms
from stockguard.flows.metrics import ADOPTED, SURGE_OPEN, StateGauges, init_location_series
from stockguard.flows.records import CampaignView, OutRecord, StockView
from stockguard.flows.routing import CampaignEvent, MonitorEvent, ToDecision, monitor_sku
from stockguard.state import snapshots
from stockguard.state.campaigns import CampaignState, CampaignTracker
from stockguard.state.decision import Decider, DecisionState, Emit
from stockguard.state.drains import DrainAlert, DrainGate
from stockguard.state.journal import PartitionJournal
from stockguard.state.models import Campaign, Order, Product, Removed, Trigger
from stockguard.state.monitor import Alert, Monitor, MonitorState, monitor_partition_of
from stockguard.state.surge import Charged, SurgeState, SurgeWatcher, Tick

__all__ = ["CampaignLogic", "DecideLogic", "JournalSource", "MonitorLogic", "SurgeLogic"]


# (partition index, wall time in ms of the snapshot it resumed from, None for a partition
# that had none) -> the decisions that partition emitted since, or None.
JournalSource = Callable[[int, int | None], PartitionJournal | None]


class DecideLogic(StatefulBatchLogic[ToDecision, OutRecord | StockView, bytes | None]):
    """Run the pure decision rules of one logical partition inside Bytewax."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], int],
        resume: bytes | None,
        keep_snapshots: bool,
        views: bool = False,
        journal: JournalSource | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.keep_snapshots = keep_snapshots
        self.views = views
        self.gauges = StateGauges("decide_triggers")
        self.encoder = Encoder(settings, clock)
        self.journal_source = journal
        self.journal: PartitionJournal | None = None
        self.decider: Decider | None = None
        if resume is not None:
            template = DecisionState(0, settings.decision_partitions)
            snap = snapshots.load("decide_triggers", resume, DecisionState, template)
            state: DecisionState = snap.state
            snapshot_ms = snap.wall_ms
            if state.partitions != settings.decision_partitions:
                # Customers would hash to other partitions: their dedup and caps would be lost.
                raise RuntimeError(
                    f"the recovery store holds {state.partitions} decision partitions, this run has "
                    f"{settings.decision_partitions}: set decision_partitions={state.partitions} "
                    "(STOCKGUARD_DECISION_PARTITIONS) or start from a new recovery store"
                )
            self.decider = self._decider(state, snapshot_ms)
            # Resumed: views sent just before the stop may not have reached Redis or Kafka.
            self.decider.resync_views()

    def _decider(self, state: DecisionState, snapshot_ms: int | None) -> Decider:
        # Every partition holds the same product state: partition 0 alone feeds the view.
        track = self.views and state.index == 0
        decider = Decider(state, self.settings.rules, self.clock, track_views=track)
        if self.journal_source is not None:
            # After a restart: what this partition emitted since its snapshot is a fact.
            journal = self.journal_source(state.index, snapshot_ms)
            if journal is not None:
                decider.preload_retractions(journal.retracted)
                if journal.pending:
                    self.journal = journal
        return decider

    def on_batch(self, values: list[ToDecision]) -> tuple[Iterable[OutRecord | StockView], bool]:
        """Apply a batch of events of this partition in order."""
        decider = self.decider
        if decider is None:
            index = values[0].partition
            decider = self.decider = self._decider(DecisionState(index, self.settings.decision_partitions), None)
        emits: list[Emit] = []
        source_ts: dict[int, int] = {}
        sources: dict[int, str] = {}
        out: list[OutRecord | StockView] = []
        apply = decider.apply
        for partition, ev, kafka_ts, pos in values:
            if type(ev) is not Trigger:
                try:
                    apply(ev, emits)
                except Exception as exc:  # one bad event must not stop the partition
                    # Broadcast to every partition: partition 0 alone dead-letters it.
                    if partition == 0:
                        out.append(self.encoder.failed_event("decide_triggers", ev, exc))
                continue
            journal = self.journal
            if journal is not None and pos is not None:
                recorded = journal.take(pos)
                if not journal.pending:
                    self.journal = None
                if recorded is not None:
                    decider.adopt(ev, recorded, emits)
                    ADOPTED.inc()
                    continue
            n = len(emits)
            try:
                decider.on_trigger(ev, emits)
            except Exception as exc:  # one bad trigger must not stop the partition
                del emits[n:]
                out.append(self.encoder.failed_event("decide_triggers", ev, exc))
                continue
            # Exactly one decision per decided trigger: the first emit since.
            if kafka_ts is not None:
                source_ts[n] = kafka_ts
            if pos is not None:
                sources[n] = pos
        if emits:
            out.extend(self.encoder.emits(emits, source_ts, sources))
        if decider.dirty:
            out.extend(StockView(v["sku"], v) for v in decider.take_views())
        self.gauges.maybe_set(decider.state.index, decider.state.sizes)
        return (out, StatefulBatchLogic.RETAIN)

    def snapshot(self) -> bytes | None:
        """Return the pickled state when recovery is on, else nothing.

        Bytewax asks for a snapshot of every touched key at each epoch even without
        recovery; pickling the whole partition then would be pure waste.
        """
        if not self.keep_snapshots or self.decider is None:
            return None
        # The wall time tells a restart from when to read the journal back.
        return snapshots.dump("decide_triggers", self.decider.state, wall_clock_ms())


def _snapshot(keep: bool, step: str, state: object) -> bytes | None:
    return snapshots.dump(step, state) if keep else None


class MonitorLogic(StatefulBatchLogic[MonitorEvent, OutRecord | Charged | Tick | DrainAlert, bytes | None]):
    """Run one sku monitor partition."""

    def __init__(self, settings: Settings, resume: bytes | None, keep: bool) -> None:
        self.settings = settings
        self.keep = keep
        self.gauges = StateGauges("monitor_skus")
        self.encoder = Encoder(settings, wall_clock_ms)
        self.monitor: Monitor | None = None
        if resume is not None:
            state = snapshots.load("monitor_skus", resume, MonitorState, MonitorState(0)).state
            _check_monitor_partitions(state, settings.surge.monitor_partitions)
            self.monitor = Monitor(state, settings.rules, settings.surge)

    def on_batch(self, values: list[MonitorEvent]) -> tuple[Iterable[OutRecord | Charged | Tick | DrainAlert], bool]:
        """Apply a batch of this partition's sku events."""
        m = self.monitor
        if m is None:
            # A new partition: its events' skus are the ones routed to it.
            index = monitor_partition_of(monitor_sku(values[0]), self.settings.surge.monitor_partitions)
            m = self.monitor = Monitor(MonitorState(index), self.settings.rules, self.settings.surge)
        alerts: list[Alert] = []
        ticks: list[Tick] = []
        charged: list[Charged] = []
        apply = m.apply
        out: list[OutRecord | Charged | Tick | DrainAlert] = []
        for ev in values:
            try:
                apply(ev, alerts, ticks, charged)
            except Exception as exc:  # one bad event must not stop the partition
                out.append(self.encoder.failed_event("monitor_skus", ev, exc))
        if alerts:
            # Drain alerts go to the location watcher, which limits them per location
            # (state.drains); insights are written as they are.
            insights = [a for a in alerts if a[0] != "alert"]
            out.extend(DrainAlert(m["ts"], key, m) for kind, key, m in alerts if kind == "alert")
            if insights:
                out.extend(self.encoder.alerts(insights))
        out.extend(charged)
        if ticks:
            out.append(ticks[-1])
        self.gauges.maybe_set(m.state.index, lambda: {"skus": len(m.state.skus)})
        return (out, StatefulBatchLogic.RETAIN)

    def snapshot(self) -> bytes | None:
        """Return the pickled partition when recovery is on."""
        if not self.keep or self.monitor is None:
            return None
        return snapshots.dump("monitor_skus", self.monitor.state)


def _check_monitor_partitions(state: MonitorState, partitions: int, sample: int = 1000) -> None:
    """Refuse a monitor partition whose skus the router would now send elsewhere."""
    skus = list(itertools.islice(state.skus, sample))
    if all(monitor_partition_of(sku, partitions) == state.index for sku in skus):
        return
    # Skus would hash to other partitions: their ATP, windows and alerts would be split.
    # Name the count the store was written with when enough skus tell it apart.
    written = next(
        (m for m in range(state.index + 1, 257) if all(monitor_partition_of(s, m) == state.index for s in skus)),
        None,
    )
    written = written if len(skus) >= 20 else None
    was = f"surge.monitor_partitions={written}" if written else "another surge.monitor_partitions"
    raise RuntimeError(
        f"the recovery store's monitor partition m{state.index} was written with {was}, this run has "
        f"{partitions}: set it back (STOCKGUARD_SURGE__MONITOR_PARTITIONS) or start from a new recovery store"
    )


class SurgeLogic(StatefulBatchLogic[Charged | Tick | DrainAlert, OutRecord, bytes | None]):
    """Watch every location for order surges (one key: locations are few)."""

    def __init__(self, settings: Settings, resume: bytes | None, keep: bool) -> None:
        self.settings = settings
        self.keep = keep
        state = SurgeState()
        if resume is not None:
            state = snapshots.load("watch_locations", resume, SurgeState, state).state
        self.watcher = SurgeWatcher(state, settings.surge)
        self.gate = DrainGate(state.drains, settings.surge)
        self.encoder = Encoder(settings, wall_clock_ms)
        self.gauges = StateGauges("watch_locations")
        self.seen: set[str] = set()

    def on_batch(self, values: list[Charged | Tick | DrainAlert]) -> tuple[Iterable[OutRecord], bool]:
        """Count charged units and evaluate minutes as event time passes."""
        msgs: list[dict[str, Any]] = []
        failed: list[OutRecord] = []
        w = self.watcher
        gate = self.gate
        for v in values:
            try:
                tp = type(v)
                if tp is Charged:
                    w.on_charged(v, msgs)  # type: ignore[arg-type]
                elif tp is DrainAlert:
                    gate.on_drain(v, msgs)  # type: ignore[arg-type]
                else:
                    w.on_tick(v.ts, msgs)
                    gate.on_tick(v.ts, msgs)
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


class CampaignLogic(StatefulBatchLogic[CampaignEvent, CampaignView | OutRecord, bytes | None]):
    """Keep the live campaign view (one key: campaigns are few)."""

    def __init__(self, settings: Settings, resume: bytes | None, keep: bool) -> None:
        self.keep = keep
        state = CampaignState()
        if resume is not None:
            state = snapshots.load("track_campaigns", resume, CampaignState, state).state
        self.tracker = CampaignTracker(state, settings.rules.order_ttl)
        self.gauges = StateGauges("track_campaigns")
        self.encoder = Encoder(settings, wall_clock_ms)

    def on_batch(self, values: list[CampaignEvent]) -> tuple[Iterable[CampaignView | OutRecord], bool]:
        """Attribute orders and emit the views that changed."""
        views: list[dict[str, Any]] = []
        failed: list[CampaignView | OutRecord] = []
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
                failed.append(self.encoder.failed_event("track_campaigns", v, exc))
        st = t.state
        self.gauges.maybe_set(0, lambda: {"campaigns": len(st.meta), "orders": len(st.ledger)})
        failed.extend(CampaignView(v["campaign_id"], v) for v in views)
        return (failed, StatefulBatchLogic.RETAIN)

    def on_eof(self) -> tuple[Iterable[CampaignView | OutRecord], bool]:
        """Emit the final views of a finite stream (a replay)."""
        t = self.tracker
        st = t.state
        views = [t.view(cid) for cid in sorted(st.dirty)]
        st.dirty.clear()
        return ([CampaignView(v["campaign_id"], v) for v in views], StatefulBatchLogic.RETAIN)

    def snapshot(self) -> bytes | None:
        """Return the pickled campaign state when recovery is on."""
        return _snapshot(self.keep, "track_campaigns", self.tracker.state)
