"""The records that cross the edges of every flow: raw input, encoded output."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

__all__ = ["NOT_DECODED", "CampaignView", "OutRecord", "RawRecord", "StockView"]

NOT_DECODED: Final[Any] = object()


class RawRecord(NamedTuple):
    """One input message as a source read it, before any parsing.

    `value` holds the original bytes. A source that already decoded the JSON (the replay
    file holds values as JSON) passes it as `decoded` to save a second parse; `error` is
    set by a source that could not even frame the message (a bad replay line).
    """

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = -1
    timestamp: int | None = None
    decoded: Any = NOT_DECODED
    error: str | None = None


class OutRecord(NamedTuple):
    """One output message: topic, key and the encoded JSON value.

    `label` is the decision (`send`, `retarget`), the suppression reason, or the DLQ
    error's field, for counting in sinks and metrics without decoding the value again.
    `event_ts` is the input event time that caused it, for latency measurements.
    """

    topic: str
    key: str | None
    value: bytes
    label: str = ""
    event_ts: int | None = None
    # Kafka timestamp of the input that caused it (decision latency), when read from Kafka.
    source_ts: int | None = None
    # Position ("topic/partition/offset") of the trigger a decision decides: the Kafka sink
    # writes it as a header, so a restart finds the decisions already made (the journal).
    source: str | None = None


class StockView(NamedTuple):
    """The current stock view of one sku, for the Redis read model (not a topic message)."""

    sku: str
    view: dict[str, Any]


class CampaignView(NamedTuple):
    """The live view of one campaign, for Prometheus gauges and the Redis read model."""

    campaign_id: str
    view: dict[str, Any]
