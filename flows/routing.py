"""Parse raw input, send bad input to the dead-letter topic, route events to partitions.

Pure functions: no bytewax, Kafka or Redis. Triggers go to their customer's decision
partition; stock, catalog and order events go to every partition (broadcast state), so
each partition holds the product state its decisions need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from stockguard.config.settings import Settings
from stockguard.flows.encoding import Encoder
from stockguard.flows.records import NOT_DECODED, CampaignView, OutRecord, RawRecord, StockView
from stockguard.state.decision import partition_of
from stockguard.state.limits import check_input
from stockguard.state.models import (
    Campaign,
    Click,
    ContractError,
    Order,
    OrderLine,
    Product,
    Removed,
    StockAdjustment,
    StockLevel,
    Trigger,
    parse_campaign,
    parse_click,
    parse_order,
    parse_product,
    parse_stock,
    parse_trigger,
)
from stockguard.state.monitor import monitor_partition_of

__all__ = [
    "CAMPAIGNS_KEY",
    "CampaignEvent",
    "DecisionEvent",
    "MonitorEvent",
    "Routed",
    "Router",
    "ToDecision",
    "monitor_sku",
    "pick_campaign_failures",
    "pick_campaign_views",
    "pick_campaigns",
    "pick_dead_letters",
    "pick_decision_outputs",
    "pick_decisions",
    "pick_locations",
    "pick_monitor_outputs",
    "pick_monitors",
    "pick_stock_views",
    "split_routed",
]

DecisionEvent = StockLevel | StockAdjustment | Order | Product | Trigger | Removed
MonitorEvent = Click | StockLevel | StockAdjustment | Order | Product | Removed
CampaignEvent = Order | Product | Campaign | Removed
CAMPAIGNS_KEY = "campaigns"


class ToDecision(NamedTuple):
    """An event for one decision partition: a trigger of its customers, or a broadcast one."""

    partition: int
    event: DecisionEvent
    # A trigger's Kafka timestamp (the decision-latency metric) and "topic/partition/offset"
    # (the decision journal: a re-read trigger adopts the decision recorded for it).
    kafka_ts: int | None = None
    position: str | None = None


# A keyed item, Bytewax's (key, value): a decision partition ("0".."P-1") gets a
# ToDecision, a sku monitor partition ("m0".."mM-1") and the campaign tracker
# (CAMPAIGNS_KEY) the event itself. A monitor needs no wrapper: the sku of any of its
# events tells its partition (`monitor_sku`), and four in five events go to a monitor.
Routed = tuple[str, ToDecision | MonitorEvent | CampaignEvent]
# Routed copies are made per event and partition: tuple.__new__ skips the NamedTuple
# constructor's Python frame (0.45 us a copy where a literal tuple costs 0.03).
_new = tuple.__new__


# The routed items of one input batch as one item, a list per downstream step: dead
# letters, the campaign tracker, the sku monitors, the decision partitions. Each step picks
# its list in one call per batch, where a chain of `op.branch` called a Python predicate
# per item and per branch (three calls an event).
Split = tuple[list[OutRecord], list[Routed], list[Routed], list[Routed]]


def split_routed(items: list[Routed | OutRecord]) -> Split:
    """Split routed items into the lists of their downstream steps, order kept."""
    dead: list[OutRecord] = []
    campaigns: list[Routed] = []
    monitors: list[Routed] = []
    decisions: list[Routed] = []
    for x in items:
        if isinstance(x, OutRecord):
            dead.append(x)
        elif x[0] == CAMPAIGNS_KEY:
            campaigns.append(x)
        elif type(x[1]) is ToDecision:
            decisions.append(x)
        else:
            monitors.append(x)
    return (dead, campaigns, monitors, decisions)


def pick_dead_letters(splits: list[Split]) -> list[OutRecord]:
    """Return the dead letters of a batch of splits."""
    return splits[0][0] if len(splits) == 1 else [x for s in splits for x in s[0]]


def pick_campaigns(splits: list[Split]) -> list[Routed]:
    """Return the campaign tracker's items of a batch of splits."""
    return splits[0][1] if len(splits) == 1 else [x for s in splits for x in s[1]]


def pick_monitors(splits: list[Split]) -> list[Routed]:
    """Return the sku monitors' items of a batch of splits."""
    return splits[0][2] if len(splits) == 1 else [x for s in splits for x in s[2]]


def pick_decisions(splits: list[Split]) -> list[Routed]:
    """Return the decision partitions' items of a batch of splits."""
    return splits[0][3] if len(splits) == 1 else [x for s in splits for x in s[3]]


# After a stateful step: drop the keys and pick one kind, one call per batch (op.key_rm
# and op.branch call Python per item).


def pick_decision_outputs(batch: list[tuple[str, Any]]) -> list[OutRecord]:
    """Return a decision step's output records (not its stock views), unkeyed."""
    return [v for _k, v in batch if type(v) is not StockView]


def pick_stock_views(batch: list[tuple[str, Any]]) -> list[StockView]:
    """Return a decision step's stock views, unkeyed."""
    return [v for _k, v in batch if type(v) is StockView]


def pick_monitor_outputs(batch: list[tuple[str, Any]]) -> list[OutRecord]:
    """Return a monitor step's output records (alerts, insights, dead letters), unkeyed."""
    return [v for _k, v in batch if type(v) is OutRecord]


def pick_locations(batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Return a monitor step's items for the surge watcher, under its one key."""
    # Locations are few: one key, one surge watcher.
    return [("locations", v) for _k, v in batch if type(v) is not OutRecord]


def pick_campaign_failures(batch: list[tuple[str, Any]]) -> list[OutRecord]:
    """Return the dead letters of the campaign tracker, unkeyed."""
    return [v for _k, v in batch if type(v) is OutRecord]


def pick_campaign_views(batch: list[tuple[str, Any]]) -> list[CampaignView]:
    """Return the campaign views of the campaign tracker, unkeyed."""
    return [v for _k, v in batch if type(v) is not OutRecord]


def monitor_sku(ev: MonitorEvent) -> str:
    """Return the sku by which an event was routed to its monitor partition."""
    if isinstance(ev, Order):
        return ev.lines[0].sku
    if isinstance(ev, Removed):
        return ev.key
    sku: str = ev.sku  # type: ignore[assignment] # a Click reaches a monitor only with its sku
    return sku


class Router:
    """Turn raw records into routed events or dead-letter records."""

    def __init__(self, settings: Settings, clock: Callable[[], int], campaigns: bool = True) -> None:
        t = settings.topics
        # Without a campaign tracker (no view sink reads its views) campaign input is still
        # validated, then has no further use.
        self.campaigns = campaigns
        self.partitions = settings.decision_partitions
        self.keys = [str(i) for i in range(self.partitions)]
        self.dlq_topic = t.dlq
        self.clock = clock
        self.encoder = Encoder(settings, clock)
        self.max_bytes = settings.input.max_message_bytes
        self.max_depth = settings.input.max_json_depth
        # A trigger is echoed into its decision: at most half the output limit, so the
        # decision (its skus, substitutions) always fits in one Kafka message.
        self.max_trigger_bytes = min(self.max_bytes, settings.kafka.max_message_bytes // 2)
        Handler = Callable[[Any, RawRecord, list[Routed | OutRecord]], None]
        self.handlers: dict[str, Handler] = {
            t.triggers: self._trigger,
            t.stock: self._stock,
            t.orders: self._order,
            t.products: self._product,
            t.clickstream: self._click,
            t.campaigns: self._campaign,
        }
        # (index, key) of every decision partition: stock, catalog and orders go to all.
        self.broadcast = list(enumerate(self.keys))
        self.t = t
        # Compacted topics: a tombstone (null value) deletes the key, it is not bad input.
        self.compacted = {t.products, t.campaigns}
        self.monitors = settings.surge.monitor_partitions
        self.monitor_keys = [f"m{j}" for j in range(self.monitors)]
        # sku -> monitor partition: the hash costs more than the lookup.
        self._sku_part: dict[str, int] = {}

    def dead_letter(self, rec: RawRecord, error: str) -> OutRecord:
        """Build the dead-letter record of an input that cannot be used."""
        return self.encoder.refused_input(rec, error)

    def split_batch(self, recs: list[RawRecord]) -> list[Split]:
        """Route a batch into one item: the lists of its downstream steps."""
        return [split_routed(self.route_batch(recs))]

    def route_batch(self, recs: list[RawRecord]) -> list[Routed | OutRecord]:
        """Route a batch: one Python call per batch, each record appended in place."""
        out: list[Routed | OutRecord] = []
        handlers = self.handlers
        for rec in recs:
            handler = handlers.get(rec.topic)
            value = rec.decoded
            if handler is None or rec.error is not None or value is None:
                out.extend(self._route_unusual(rec))
                continue
            if value is NOT_DECODED:
                raw = rec.value
                if raw is None:
                    out.extend(self._route_unusual(rec))
                    continue
                refused = check_input(raw, self.max_bytes, self.max_depth)
                if refused is not None:
                    out.append(self.dead_letter(rec, refused))
                    continue
                try:
                    value = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    out.append(self.dead_letter(rec, f"value: not JSON ({exc})"))
                    continue
            n = len(out)
            try:
                handler(value, rec, out)
            except ContractError as exc:
                del out[n:]
                out.append(self.dead_letter(rec, str(exc)))
            except Exception as exc:  # one bad record must not stop the batch
                del out[n:]
                out.append(self.dead_letter(rec, f"internal: {type(exc).__name__} while routing: {exc}"))
        return out

    def _route_unusual(self, rec: RawRecord) -> list[Routed | OutRecord]:
        """Route what the fast loop does not: framing errors, unknown topics, null values."""
        if rec.error is not None:
            return [self.dead_letter(rec, rec.error)]
        if rec.topic not in self.handlers:
            return [self.dead_letter(rec, f"topic: not an input topic of stockguard ({rec.topic!r})")]
        if rec.topic in self.compacted:
            return self._tombstone(rec)
        if rec.decoded is None:
            # A JSON null from a replay file: the parser names the problem.
            out: list[Routed | OutRecord] = []
            try:
                self.handlers[rec.topic](None, rec, out)
            except ContractError as exc:
                return [self.dead_letter(rec, str(exc))]
            except Exception as exc:  # one bad record must not stop the batch
                return [self.dead_letter(rec, f"internal: {type(exc).__name__} while routing: {exc}")]
            return out
        return [self.dead_letter(rec, "value: missing (tombstone)")]

    # ---- one handler per input topic: parse, then append the routed copies ----

    def _trigger(self, value: Any, rec: RawRecord, out: list[Routed | OutRecord]) -> None:
        raw = rec.value
        if raw is not None and len(raw) > self.max_trigger_bytes:
            raise ContractError(
                f"value: {len(raw):,} bytes, more than a trigger may be "
                f"({self.max_trigger_bytes:,}: half of kafka.max_message_bytes, so its decision fits)"
            )
        ev = parse_trigger(value)
        i = partition_of(ev.customer_id, self.partitions)
        # The Kafka timestamp rides along for the decision-latency metric, the position for
        # the decision journal (a re-read trigger adopts the decision recorded for it).
        pos = f"{rec.topic}/{rec.partition}/{rec.offset}" if rec.offset >= 0 else None
        out.append((self.keys[i], _new(ToDecision, (i, ev, rec.timestamp, pos))))

    def _click(self, value: Any, _rec: RawRecord, out: list[Routed | OutRecord]) -> None:
        ev = parse_click(value)
        # Only product views matter downstream (the monitor's last view); the rest is read,
        # validated and counted, then has no further use.
        if ev.type == "product_view" and ev.sku is not None:
            out.append(self._to_monitor(ev.sku, ev))

    def _stock(self, value: Any, _rec: RawRecord, out: list[Routed | OutRecord]) -> None:
        ev = parse_stock(value)
        for i, k in self.broadcast:
            out.append((k, _new(ToDecision, (i, ev, None, None))))
        out.append(self._to_monitor(ev.sku, ev))

    def _product(self, value: Any, _rec: RawRecord, out: list[Routed | OutRecord]) -> None:
        ev = parse_product(value)
        for i, k in self.broadcast:
            out.append((k, _new(ToDecision, (i, ev, None, None))))
        out.append(self._to_monitor(ev.sku, ev))
        if self.campaigns:
            out.append((CAMPAIGNS_KEY, ev))

    def _order(self, value: Any, _rec: RawRecord, out: list[Routed | OutRecord]) -> None:
        ev = parse_order(value)
        for i, k in self.broadcast:
            out.append((k, _new(ToDecision, (i, ev, None, None))))
        lines = ev.lines
        if len(lines) == 1:
            out.append(self._to_monitor(lines[0].sku, ev))
        else:
            # Each monitor partition gets the order with the lines of its skus, in order.
            parts: dict[int, list[OrderLine]] = {}
            for line in lines:
                parts.setdefault(self._monitor_of(line.sku), []).append(line)
            whole = len(parts) == 1
            for j, part in parts.items():
                sub = ev if whole else ev._replace(lines=tuple(part))
                out.append((self.monitor_keys[j], sub))
        if self.campaigns and (ev.campaign_id is not None or ev.status == "cancelled"):
            out.append((CAMPAIGNS_KEY, ev))

    def _campaign(self, value: Any, _rec: RawRecord, out: list[Routed | OutRecord]) -> None:
        ev = parse_campaign(value)
        if self.campaigns:
            out.append((CAMPAIGNS_KEY, ev))

    def _tombstone(self, rec: RawRecord) -> list[Routed | OutRecord]:
        """Apply a deletion on a compacted topic: a removed product becomes unsellable."""
        if not rec.key:
            return [self.dead_letter(rec, "key: a tombstone needs the sku or campaign id as its key")]
        gone = Removed(rec.key.decode("utf-8", errors="backslashreplace"), rec.timestamp)
        if rec.topic == self.t.campaigns:
            return [(CAMPAIGNS_KEY, gone)] if self.campaigns else []
        out: list[Routed | OutRecord] = [(k, _new(ToDecision, (i, gone, None, None))) for i, k in self.broadcast]
        out.append(self._to_monitor(gone.key, gone))
        return out

    def _monitor_of(self, sku: str) -> int:
        j = self._sku_part.get(sku)
        if j is None:
            if len(self._sku_part) > 1_000_000:
                self._sku_part.clear()  # bounded: junk skus must not grow it forever
            j = self._sku_part[sku] = monitor_partition_of(sku, self.monitors)
        return j

    def _to_monitor(self, sku: str, ev: MonitorEvent) -> Routed:
        # _monitor_of inlined: four in five events take this path.
        j = self._sku_part.get(sku)
        if j is None:
            j = self._monitor_of(sku)
        return (self.monitor_keys[j], ev)
