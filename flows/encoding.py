"""Encode every output message of the contract, and every dead-letter record, in one place.

Nothing an input can hold stops the flow here: a message that cannot be encoded, or is
larger than `kafka.max_message_bytes`, becomes a dead-letter record instead (its `raw`
cut to `dlq.max_raw_bytes`, with the original size), so the sink never sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from stockguard.config.settings import Settings
from stockguard.flows.records import NOT_DECODED, OutRecord, RawRecord
from stockguard.state.decision import APPROVED, RETRACTED, SUPPRESSED, Emit
from stockguard.state.monitor import Alert

__all__ = ["Encoder", "wall_clock_ms"]

# Room left for Kafka's record overhead (key, headers, batch framing) under the limit.
_OVERHEAD = 1024


def wall_clock_ms() -> int:
    """Return the wall clock in epoch milliseconds: `decided_ts` and DLQ `ts`."""
    return time.time_ns() // 1_000_000


def _text(raw: bytes | None) -> str:
    if raw is None:
        return ""
    return raw.decode("utf-8", errors="backslashreplace")


class Encoder:
    """Turn decisions, alerts and refused inputs into output records."""

    def __init__(self, settings: Settings, clock: Callable[[], int]) -> None:
        t = settings.topics
        self.t = t
        self.clock = clock
        self.max_bytes = settings.kafka.max_message_bytes - _OVERHEAD
        self.max_raw = settings.dlq.max_raw_bytes

    def dead_letter(
        self,
        topic: str,
        partition: int | None,
        offset: int | None,
        key: str | None,
        raw: bytes | None,
        error: str,
        event_ts: int | None = None,
    ) -> OutRecord:
        """Build the dead-letter record of a message that cannot be used or sent."""
        msg: dict[str, Any] = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key,
            "raw": "",
            "error": error,
            "ts": self.clock(),
        }
        if raw is not None:
            if len(raw) > self.max_raw:
                msg["raw"] = _text(raw[: self.max_raw])
                msg["raw_bytes"] = len(raw)
                msg["raw_truncated"] = True
            else:
                msg["raw"] = _text(raw)
        field = error.split(":", 1)[0]
        return OutRecord(self.t.dlq, topic, orjson.dumps(msg), field, event_ts)

    def refused_input(self, rec: RawRecord, error: str) -> OutRecord:
        """Build the dead-letter record of an input record that cannot be used."""
        raw = rec.value
        if raw is None and rec.decoded is not NOT_DECODED:
            # A replay file's value arrives decoded: show it as the JSON it was.
            try:
                raw = orjson.dumps(rec.decoded)
            except (TypeError, orjson.JSONEncodeError):
                raw = repr(rec.decoded).encode()
        key = rec.key.decode("utf-8", errors="backslashreplace") if rec.key is not None else None
        return self.dead_letter(rec.topic, rec.partition, rec.offset, key, raw, error, rec.timestamp)

    def _refused(self, topic: str, key: str | None, msg: dict[str, Any], error: str) -> OutRecord:
        """Dead-letter an output that cannot be sent, with as much of it as can be shown."""
        try:
            raw = orjson.dumps(msg)
        except (TypeError, orjson.JSONEncodeError):
            raw = repr(msg)[: self.max_raw].encode()
        ts = msg.get("ts")
        return self.dead_letter(topic, None, None, key, raw, error, ts if type(ts) is int else None)

    def record(
        self,
        topic: str,
        key: str | None,
        msg: dict[str, Any],
        label: str,
        event_ts: int | None,
        source_ts: int | None = None,
        source: str | None = None,
    ) -> OutRecord:
        """Encode one output message, or its dead-letter record when it cannot be sent."""
        try:
            value = orjson.dumps(msg)
        except (TypeError, orjson.JSONEncodeError) as exc:
            return self._refused(topic, key, msg, f"output: cannot be encoded as JSON ({exc})")
        if len(value) > self.max_bytes:
            return self._refused(
                topic,
                key,
                msg,
                f"output: {len(value):,} bytes, more than kafka.max_message_bytes allows ({self.max_bytes:,})",
            )
        return OutRecord(topic, key, value, label, event_ts, source_ts, source)

    def failed_event(self, step: str, event: object, exc: Exception) -> OutRecord:
        """Dead-letter an event whose processing raised: the flow goes on without it."""
        ts = getattr(event, "ts", None)
        return self.dead_letter(
            f"stockguard:{step}",
            None,
            None,
            None,
            repr(event).encode(),
            f"internal: {type(exc).__name__} in {step}: {exc}",
            ts if type(ts) is int else None,
        )

    def emits(
        self,
        emits: list[Emit],
        source_ts: dict[int, int] | None = None,
        sources: dict[int, str] | None = None,
    ) -> list[OutRecord]:
        """Encode decision outputs; maps give an emit's trigger Kafka timestamp and position."""
        t = self.t
        out = []
        src_ts = source_ts or {}
        src = sources or {}
        record = self.record
        for i, (kind, key, msg) in enumerate(emits):
            if kind == APPROVED:
                out.append(record(t.approved, key, msg, msg["decision"], msg["ts"], src_ts.get(i), src.get(i)))
            elif kind == SUPPRESSED:
                out.append(record(t.suppressed, key, msg, msg["reason"], msg["ts"], src_ts.get(i), src.get(i)))
            elif kind == RETRACTED:
                out.append(record(t.retracted, key, msg, msg["reason"], msg["ts"]))
        return out

    def alerts(self, alerts: list[Alert]) -> list[OutRecord]:
        """Encode surge/drain alerts (keyed by location) and insights (keyed by sku)."""
        t = self.t
        out = []
        for kind, key, msg in alerts:
            if kind == "alert":
                out.append(self.record(t.surge_alerts, key, msg, f"{msg['kind']}:{msg['status']}", msg["ts"]))
            else:
                out.append(self.record(t.insights, key, msg, msg["kind"], msg["ts"]))
        return out
