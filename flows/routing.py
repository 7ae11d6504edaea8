"""Parse raw input, send bad input to the dead-letter topic, route events to partitions.

Pure functions: no bytewax, Kafka or Redis. Triggers go to their customer's decision
partition; stock, catalog and order events go to every partition (broadcast state), so
each partition holds the product state its decisions need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from config.settings import Settings
from flows.records import NOT_DECODED, OutRecord, RawRecord
from state.decision import APPROVED, RETRACTED, SUPPRESSED, Emit, partition_of
from state.models import (
    ContractError,
    Order,
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
from state.monitor import OrderLineEvent, monitor_partition_of

__all__ = ["CAMPAIGNS_KEY", "Event", "Router", "encode_emits"]

Event = StockLevel | StockAdjustment | Order | Product | Trigger | Removed
# (key, payload): decision partitions "0".."P-1" and monitor partitions "m0".."mM-1" get
# (index, event); the campaign tracker's single key gets the event.
Routed = tuple[str, Any]
CAMPAIGNS_KEY = "campaigns"


def _text(raw: bytes | None) -> str:
    if raw is None:
        return ""
    return raw.decode("utf-8", errors="backslashreplace")


class Router:
    """Turn raw records into routed events or dead-letter records."""

    def __init__(self, settings: Settings, clock: Callable[[], int]) -> None:
        t = settings.topics
        self.partitions = settings.decision_partitions
        self.keys = [str(i) for i in range(self.partitions)]
        self.dlq_topic = t.dlq
        self.clock = clock
        self.parsers: dict[str, Callable[[Any], Any]] = {
            t.triggers: parse_trigger,
            t.stock: parse_stock,
            t.orders: parse_order,
            t.products: parse_product,
            t.clickstream: parse_click,
            t.campaigns: parse_campaign,
        }
        self.broadcast_topics = {t.stock, t.orders, t.products}
        self.trigger_topic = t.triggers
        self.t = t
        # Compacted topics: a tombstone (null value) deletes the key, it is not bad input.
        self.compacted = {t.products, t.campaigns}
        self.monitors = settings.surge.monitor_partitions
        self.monitor_keys = [f"m{j}" for j in range(self.monitors)]
        # sku -> monitor partition: the hash costs more than the lookup.
        self._sku_part: dict[str, int] = {}

    def dead_letter(self, rec: RawRecord, error: str) -> OutRecord:
        """Build the dead-letter record of an input that cannot be used."""
        raw = rec.value
        if raw is None and rec.decoded is not NOT_DECODED:
            raw = orjson.dumps(rec.decoded)
        msg = {
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "key": _text(rec.key) if rec.key is not None else None,
            "raw": _text(raw),
            "error": error,
            "ts": self.clock(),
        }
        field = error.split(":", 1)[0]
        return OutRecord(self.dlq_topic, rec.topic, orjson.dumps(msg), field, rec.timestamp)

    def route_batch(self, recs: list[RawRecord]) -> list[Routed | OutRecord]:
        """Route a batch: one Python call per batch instead of per record."""
        out: list[Routed | OutRecord] = []
        route = self.route
        for rec in recs:
            out.extend(route(rec))
        return out

    def route(self, rec: RawRecord) -> list[Routed | OutRecord]:
        """Parse one record; return its routed copies, a dead-letter record, or nothing."""
        if rec.error is not None:
            return [self.dead_letter(rec, rec.error)]
        parser = self.parsers.get(rec.topic)
        if parser is None:
            return [self.dead_letter(rec, f"topic: not an input topic of stockguard ({rec.topic!r})")]
        value = rec.decoded
        if (value is None or (value is NOT_DECODED and rec.value is None)) and rec.topic in self.compacted:
            return self._tombstone(rec)
        if value is NOT_DECODED:
            if rec.value is None:
                return [self.dead_letter(rec, "value: missing (tombstone)")]
            try:
                value = orjson.loads(rec.value)
            except orjson.JSONDecodeError as exc:
                return [self.dead_letter(rec, f"value: not JSON ({exc})")]
        try:
            ev = parser(value)
        except ContractError as exc:
            return [self.dead_letter(rec, str(exc))]
        topic = rec.topic
        t = self.t
        if topic == self.trigger_topic:
            i = partition_of(ev.customer_id, self.partitions)
            # The Kafka timestamp rides along for the decision-latency metric.
            return [(self.keys[i], (i, ev, rec.timestamp))]
        if topic == t.clickstream:
            if ev.type != "product_view" or ev.sku is None:
                return []
            return [self._to_monitor(ev.sku, ev)]
        out: list[Routed | OutRecord] = []
        if topic in self.broadcast_topics:
            out = [(k, (i, ev)) for i, k in enumerate(self.keys)]
        if topic == t.stock or topic == t.products:
            out.append(self._to_monitor(ev.sku, ev))
        if topic == t.orders:
            for line in ev.lines:
                out.append(
                    self._to_monitor(
                        line.sku,
                        OrderLineEvent(
                            ev.ts, ev.order_id, ev.status, ev.campaign_id, line.sku, line.qty, line.location
                        ),
                    )
                )
            if ev.campaign_id is not None or ev.status == "cancelled":
                out.append((CAMPAIGNS_KEY, ev))
        elif topic == t.products or topic == t.campaigns:
            out.append((CAMPAIGNS_KEY, ev))
        return out

    def _tombstone(self, rec: RawRecord) -> list[Routed | OutRecord]:
        """Apply a deletion on a compacted topic: a removed product becomes unsellable."""
        if not rec.key:
            return [self.dead_letter(rec, "key: a tombstone needs the sku or campaign id as its key")]
        gone = Removed(rec.key.decode("utf-8", errors="backslashreplace"), rec.timestamp)
        if rec.topic == self.t.campaigns:
            return [(CAMPAIGNS_KEY, gone)]
        out: list[Routed | OutRecord] = [(k, (i, gone)) for i, k in enumerate(self.keys)]
        out.append(self._to_monitor(gone.key, gone))
        return out

    def _to_monitor(self, sku: str, item: Any) -> Routed:
        j = self._sku_part.get(sku)
        if j is None:
            if len(self._sku_part) > 1_000_000:
                self._sku_part.clear()  # bounded: junk skus must not grow it forever
            j = self._sku_part[sku] = monitor_partition_of(sku, self.monitors)
        return (self.monitor_keys[j], (j, item))


def encode_emits(emits: list[Emit], settings: Settings, source_ts: dict[int, int] | None = None) -> list[OutRecord]:
    """Encode decision outputs as messages of the contract's output topics.

    `source_ts` maps an emit's index to the Kafka timestamp of the trigger it decides.
    """
    t = settings.topics
    out = []
    src = source_ts or {}
    for i, (kind, key, msg) in enumerate(emits):
        if kind == APPROVED:
            out.append(OutRecord(t.approved, key, orjson.dumps(msg), msg["decision"], msg["ts"], src.get(i)))
        elif kind == SUPPRESSED:
            out.append(OutRecord(t.suppressed, key, orjson.dumps(msg), msg["reason"], msg["ts"], src.get(i)))
        elif kind == RETRACTED:
            out.append(OutRecord(t.retracted, key, orjson.dumps(msg), msg["reason"], msg["ts"]))
    return out
