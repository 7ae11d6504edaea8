"""Wire the decision dataflow: the same `build_flow` runs on Kafka, on files and in tests.

    sources ─► route_events ─┬─► dead letters ──────────────────────────────────────────┐
                             ├─► decide_triggers ◆ ─┬─ decisions, retractions ───────────┤
                             │                      └─ stock views ¹ ──────► view sinks  │
                             ├─► monitor_skus ◆ ─┬─ drain alerts, insights ──────────────┤
                             │                   └─► watch_locations ◆ ─ surge alerts ───┤
                             └─► track_campaigns ◆ ¹ ─ campaign views ─► view sinks      │
                                                                                         ▼
                                                                 count_outputs, write_<name>

◆ stateful: step ids are recovery keys, never renamed. ¹ only for view sinks that read
them. Sinks that are `FixedPartitionedSink`s (Kafka) receive `(key, record)` pairs routed
by the message key, so per-key order holds; the others receive records. Every step id and
the item on every edge: docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import FixedPartitionedSink, Sink

from stockguard.config.settings import Settings
from stockguard.flows.encoding import wall_clock_ms
from stockguard.flows.logics import CampaignLogic, DecideLogic, JournalSource, MonitorLogic, SurgeLogic
from stockguard.flows.metrics import MetricsSink
from stockguard.flows.records import CampaignView, OutRecord, RawRecord, StockView
from stockguard.flows.routing import (
    Router,
    pick_campaign_failures,
    pick_campaign_views,
    pick_campaigns,
    pick_dead_letters,
    pick_decision_outputs,
    pick_decisions,
    pick_locations,
    pick_monitor_outputs,
    pick_monitors,
    pick_stock_views,
)

__all__ = ["build_flow"]


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
    # Campaign views, like stock views, only for sinks that read them (a replay has none).
    campaign_views = bool(view_sinks)
    router = Router(settings, clock, campaigns=campaign_views)
    # One item per input batch, a list per downstream; each step picks its list in one call.
    routed = op.flat_map_batch("route_events", raw, router.split_batch)
    dead: Any = op.flat_map_batch("pick_dead_letters", routed, pick_dead_letters)
    keyed: Any = op.flat_map_batch("pick_decisions", routed, pick_decisions)
    to_monitor: Any = op.flat_map_batch("pick_monitors", routed, pick_monitors)

    def decide(resume: bytes | None) -> DecideLogic:
        return DecideLogic(settings, clock, resume, recovery, views=stock_views, journal=journal)

    decided_keyed = op.stateful_batch("decide_triggers", keyed, decide)
    decided: Any = op.flat_map_batch("unkey_decisions", decided_keyed, pick_decision_outputs)

    def monitor(resume: bytes | None) -> MonitorLogic:
        return MonitorLogic(settings, resume, recovery)

    monitored = op.stateful_batch("monitor_skus", to_monitor, monitor)
    charged: Any = op.flat_map_batch("unkey_monitor", monitored, pick_monitor_outputs)
    to_locations = op.flat_map_batch("key_locations", monitored, pick_locations)

    def surge(resume: bytes | None) -> SurgeLogic:
        return SurgeLogic(settings, resume, recovery)

    surges: Any = _unkey("unkey_surges", op.stateful_batch("watch_locations", to_locations, surge))

    outputs_in: list[Any] = [decided, dead, charged, surges]
    views_out: list[Any] = []
    if view_sinks:
        to_campaigns: Any = op.flat_map_batch("pick_campaigns", routed, pick_campaigns)

        def campaigns(resume: bytes | None) -> CampaignLogic:
            return CampaignLogic(settings, resume, recovery)

        tracked = op.stateful_batch("track_campaigns", to_campaigns, campaigns)
        # An event the tracker failed on is a dead letter like any other step's.
        outputs_in.append(op.flat_map_batch("unkey_campaign_failures", tracked, pick_campaign_failures))
        views_out.append(op.flat_map_batch("unkey_campaigns", tracked, pick_campaign_views))
        if stock_views:
            views_out.insert(0, op.flat_map_batch("pick_views", decided_keyed, pick_stock_views))
    outputs: Any = op.merge("merge_outputs", *outputs_in)
    op.output("count_outputs", outputs, MetricsSink(settings))
    keyed_outputs: Any = None
    for name, sink in sinks.items():
        if isinstance(sink, FixedPartitionedSink):
            if keyed_outputs is None:
                keyed_outputs = op.flat_map_batch("key_outputs", outputs, _keyed_by_message_key)
            op.output(f"write_{name}", keyed_outputs, sink)
        else:
            op.output(f"write_{name}", outputs, sink)
    if views_out:
        all_views: Any = views_out[0] if len(views_out) == 1 else op.merge("merge_views", *views_out)
        for i, vs in enumerate(view_sinks):
            op.output("write_views" if i == 0 else f"write_views_{i}", all_views, vs)
    return flow


# Keys on and off a batch at a time: op.key_rm and op.key_on call Python per item.


def _unkey(step_id: str, up: Any) -> Any:
    """Drop the keys of a keyed stream."""
    return op.flat_map_batch(step_id, up, _values)


def _values(batch: list[tuple[str, Any]]) -> list[Any]:
    return [v for _k, v in batch]


def _keyed_by_message_key(batch: list[OutRecord]) -> list[tuple[str, OutRecord]]:
    # Kafka's partitioner hashes the message key: per-key order holds downstream.
    return [(r.key or "", r) for r in batch]
