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

import pickle
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import FixedPartitionedSink, Sink

from config.settings import Settings
from connectors.metrics import MetricsSink, StateGauges
from flows.operations import CampaignLogic, MonitorLogic, SurgeLogic
from flows.records import CampaignView, OutRecord, RawRecord, StockView
from flows.routing import CAMPAIGNS_KEY, Event, Router, encode_emits
from state.decision import Decider, DecisionState, Emit

__all__ = ["DecideLogic", "build_flow", "wall_clock_ms"]


def wall_clock_ms() -> int:
    """Return the wall clock in epoch milliseconds: `decided_ts` and DLQ `ts`."""
    return time.time_ns() // 1_000_000


class DecideLogic(StatefulBatchLogic[tuple[int, Event], OutRecord | StockView, bytes | None]):
    """Run the pure decision rules of one logical partition inside Bytewax."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], int],
        resume: bytes | None,
        keep_snapshots: bool,
        views: bool = False,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.keep_snapshots = keep_snapshots
        self.views = views
        self.gauges = StateGauges("decide_triggers")
        self.decider: Decider | None = None
        if resume is not None:
            state: DecisionState = pickle.loads(resume)  # noqa: S301 - our own recovery store
            if state.partitions != settings.decision_partitions:
                # Customers would hash to other partitions: their dedup and caps would be lost.
                raise RuntimeError(
                    f"the recovery store holds {state.partitions} decision partitions, this run has "
                    f"{settings.decision_partitions}: set decision_partitions={state.partitions} "
                    "(STOCKGUARD_DECISION_PARTITIONS) or start from a new recovery store"
                )
            self.decider = self._decider(state)

    def _decider(self, state: DecisionState) -> Decider:
        # Every partition holds the same product state: partition 0 alone feeds the view.
        track = self.views and state.index == 0
        return Decider(state, self.settings.rules, self.clock, track_views=track)

    def on_batch(self, values: list[tuple[int, Event]]) -> tuple[Iterable[OutRecord | StockView], bool]:
        """Apply a batch of events of this partition in order."""
        decider = self.decider
        if decider is None:
            index = values[0][0]
            decider = self.decider = self._decider(DecisionState(index, self.settings.decision_partitions))
        emits: list[Emit] = []
        source_ts: dict[int, int] = {}
        apply = decider.apply
        for item in values:
            apply(item[1], emits)
            if len(item) == 3 and item[2] is not None:
                # A trigger read from Kafka: exactly one decision, the last emit.
                source_ts[len(emits) - 1] = item[2]
        out: list[OutRecord | StockView] = []
        if emits:
            out.extend(encode_emits(emits, self.settings, source_ts))
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
        return pickle.dumps(self.decider.state, protocol=pickle.HIGHEST_PROTOCOL)


def build_flow(
    settings: Settings,
    sources: Mapping[str, Source[RawRecord]],
    sinks: Mapping[str, Sink[OutRecord] | Sink[tuple[str, OutRecord]]],
    *,
    views: Sink[StockView | CampaignView] | Sequence[Sink[StockView | CampaignView]] = (),
    clock: Callable[[], int] = wall_clock_ms,
    recovery: bool = False,
    flow_id: str = "stockguard",
) -> Dataflow:
    """Build the stockguard dataflow from named sources to named sinks.

    Every output record goes to every sink (usually one: Kafka, files, or a test sink);
    each of `views` receives the stock view of every changed sku and the campaign views
    (the Redis read model, Prometheus gauges).
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
        return DecideLogic(settings, clock, resume, recovery, views=stock_views)

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
