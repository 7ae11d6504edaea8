"""Wire the decision dataflow: the same `build_flow` runs on Kafka, on files and in tests.

    sources ─► route_events ─┬─► decide_triggers (decision partitions) ──────────────┬─► sinks
                             ├─► dead letters ────────────────────────────────────────┤
                             ├─► monitor_skus (sku partitions) ─┬─ drain, insights ───┤
                             │                                  └─► watch_locations ──┘
                             └─► track_campaigns ─► campaign views ─┬─► view sinks
                                 decide_triggers, partition 0 ─► stock views ─┘ (Redis, gauges)

Sinks that are `FixedPartitionedSink`s (Kafka) receive `(key, record)` pairs routed by the
message key, so per-key order holds; the others receive records.

Step ids are recovery keys: never rename them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import FixedPartitionedSink, Sink

from stockguard.config.settings import Settings
from stockguard.flows.encoding import Encoder, wall_clock_ms
from stockguard.flows.metrics import ADOPTED, MetricsSink, StateGauges
from stockguard.flows.operations import CampaignLogic, MonitorLogic, SurgeLogic
from stockguard.flows.records import CampaignView, OutRecord, RawRecord, StockView
from stockguard.flows.routing import CAMPAIGNS_KEY, Router
from stockguard.state import snapshots
from stockguard.state.decision import Decider, DecisionState, Emit
from stockguard.state.journal import PartitionJournal
from stockguard.state.models import Trigger

__all__ = ["DecideLogic", "JournalSource", "build_flow", "wall_clock_ms"]


# (partition index, wall time in ms of the snapshot it resumed from, None for a partition
# that had none) -> the decisions that partition emitted since, or None.
JournalSource = Callable[[int, int | None], PartitionJournal | None]


class DecideLogic(StatefulBatchLogic[tuple[Any, ...], OutRecord | StockView, bytes | None]):
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

    def on_batch(self, values: list[tuple[Any, ...]]) -> tuple[Iterable[OutRecord | StockView], bool]:
        """Apply a batch of events of this partition in order."""
        decider = self.decider
        if decider is None:
            index = values[0][0]
            decider = self.decider = self._decider(DecisionState(index, self.settings.decision_partitions), None)
        emits: list[Emit] = []
        source_ts: dict[int, int] = {}
        sources: dict[int, str] = {}
        out: list[OutRecord | StockView] = []
        apply = decider.apply
        for item in values:
            ev = item[1]
            if type(ev) is not Trigger:
                try:
                    apply(ev, emits)
                except Exception as exc:  # one bad event must not stop the partition
                    # Broadcast to every partition: partition 0 alone dead-letters it.
                    if item[0] == 0:
                        out.append(self.encoder.failed_event("decide_triggers", ev, exc))
                continue
            pos = item[3]
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
            if item[2] is not None:
                source_ts[n] = item[2]
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


def build_flow(
    settings: Settings,
    sources: Mapping[str, Source[RawRecord]],
    sinks: Mapping[str, Sink[OutRecord] | Sink[tuple[str, OutRecord]]],
    *,
    views: Sink[StockView | CampaignView] | Sequence[Sink[StockView | CampaignView]] = (),
    clock: Callable[[], int] = wall_clock_ms,
    recovery: bool = False,
    journal: JournalSource | None = None,
    flow_id: str = "stockguard",
) -> Dataflow:
    """Build the stockguard dataflow from named sources to named sinks.

    Every output record goes to every sink (usually one: Kafka, files, or a test sink);
    each of `views` receives the stock view of every changed sku and the campaign views
    (the Redis read model, Prometheus gauges). `journal` gives a decision partition the
    decisions it emitted before a restart (see `state.journal`).
    """
    if not sources or not sinks:
        raise ValueError("build_flow needs at least one source and one sink")
    # A caller that knows the run's workers resolved an automatic count already.
    settings = settings.with_workers(1)
    view_sinks = [views] if isinstance(views, Sink) else list(views)
    # Building a stock view per changed sku costs on every batch: only for sinks that read them.
    stock_views = any(getattr(v, "wants_stock_views", True) for v in view_sinks)
    flow = Dataflow(flow_id)
    streams = [op.input(f"read_{name}", flow, src) for name, src in sources.items()]
    raw = streams[0] if len(streams) == 1 else op.merge("merge_inputs", *streams)
    router = Router(settings, clock)
    routed = op.flat_map_batch("route_events", raw, router.route_batch)
    split = op.branch("split_dead_letters", routed, lambda x: type(x) is OutRecord)
    dead: Any = split.trues
    # Keys: "0".."P-1" decision partitions, "m0".."mM-1" monitor partitions, CAMPAIGNS_KEY.
    to_monitor: Any = op.branch("split_monitor", split.falses, lambda x: x[0][0] == "m")
    to_campaigns: Any = op.branch("split_campaigns", to_monitor.falses, lambda x: x[0] == CAMPAIGNS_KEY)
    keyed: Any = to_campaigns.falses

    def decide(resume: bytes | None) -> DecideLogic:
        return DecideLogic(settings, clock, resume, recovery, views=stock_views, journal=journal)

    decided: Any = op.key_rm("unkey_decisions", op.stateful_batch("decide_triggers", keyed, decide))
    split_views = op.branch("split_views", decided, lambda x: type(x) is StockView)
    decided = split_views.falses

    def monitor(resume: bytes | None) -> MonitorLogic:
        return MonitorLogic(settings, resume, recovery)

    monitored: Any = op.key_rm("unkey_monitor", op.stateful_batch("monitor_skus", to_monitor.trues, monitor))
    split_ops = op.branch("split_charged", monitored, lambda x: type(x) is not OutRecord)
    to_locations = op.key_on("key_locations", split_ops.trues, lambda _x: "locations")

    def surge(resume: bytes | None) -> SurgeLogic:
        return SurgeLogic(settings, resume, recovery)

    surges: Any = op.key_rm("unkey_surges", op.stateful_batch("watch_locations", to_locations, surge))

    def campaigns(resume: bytes | None) -> CampaignLogic:
        return CampaignLogic(settings, resume, recovery)

    campaign_views: Any = op.key_rm(
        "unkey_campaigns", op.stateful_batch("track_campaigns", to_campaigns.trues, campaigns)
    )
    outputs: Any = op.merge("merge_outputs", decided, dead, split_ops.falses, surges)
    op.output("count_outputs", outputs, MetricsSink(settings))
    keyed_outputs: Any = None
    for name, sink in sinks.items():
        if isinstance(sink, FixedPartitionedSink):
            if keyed_outputs is None:
                keyed_outputs = op.key_on("key_outputs", outputs, lambda r: r.key or "")
            op.output(f"write_{name}", keyed_outputs, sink)
        else:
            op.output(f"write_{name}", outputs, sink)
    if view_sinks:
        all_views: Any = op.merge("merge_views", split_views.trues, campaign_views)
        for i, vs in enumerate(view_sinks):
            op.output("write_views" if i == 0 else f"write_views_{i}", all_views, vs)
    return flow
