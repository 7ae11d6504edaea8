"""The stock views on Kafka: the newest ATP of each sku, for `stockguard deliver`.

Topic `topics.stock_views` (compacted, key sku), one message per changed sku:

    {"sku": "TEE-RED-M", "atp": 12, "available": true, "known": true,
     "locations": {"WH-PARIS": 12}, "ts": 1764547200000}

`ts` is the event time of the newest event behind the view. The deliverers coalesce these
per sku and push them to the vendors' catalogs. Produced without waiting on the decision
path (an idempotent producer that never times a view out, flushed when the flow stops);
a view lost in a crash is sent again because the flow re-emits every sku's view when it
resumes (`Decider.resync_views`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from stockguard.flows.records import CampaignView, StockView

__all__ = ["StockViewSink", "view_message"]

log = logging.getLogger(__name__)


def view_message(view: dict[str, Any]) -> bytes:
    """Encode a stock view as its topic message."""
    return orjson.dumps(
        {
            "sku": view["sku"],
            "atp": view["atp"],
            "available": bool(view["available"]),
            "known": bool(view["known"]),
            "locations": view["locations"],
            "ts": view["updated_ts"],
        }
    )


class _Partition(StatelessSinkPartition[StockView | CampaignView]):
    def __init__(self, producer: Producer, topic: str) -> None:
        self._p = producer
        self._topic = topic
        self.errors = 0

    def _report(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.errors += 1
            log.warning("stock view not produced: %s", err.str())

    def write_batch(self, items: list[StockView | CampaignView]) -> None:
        produce = self._p.produce
        for v in items:
            if type(v) is StockView:
                while True:
                    try:
                        produce(self._topic, view_message(v.view), v.sku.encode(), on_delivery=self._report)
                        break
                    except BufferError:  # the local queue is full: let it drain
                        self._p.poll(0.05)
        self._p.poll(0)

    def close(self) -> None:
        left = self._p.flush(10)
        if left:
            log.warning("%d stock views not acknowledged at close", left)


class StockViewSink(DynamicSink[StockView | CampaignView]):
    """Produce each changed sku's stock view to the stock-views topic."""

    wants_stock_views = True

    def __init__(self, conf: dict[str, str], topic: str) -> None:
        self._conf = conf
        self.topic = topic

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        """Start this worker's producer."""
        conf: dict[str, str | int | float | bool] = {
            **self._conf,
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
            # Never give up on a view: one dropped after librdkafka's default 5 min would
            # leave its sku's catalog stock stale until the sku changes again. Idempotence
            # keeps them in order; a long outage fills the queue and holds the flow back,
            # as the decision sink on the same broker does.
            "message.timeout.ms": 0,
        }
        return _Partition(Producer(conf), self.topic)

    def __repr__(self) -> str:
        return f"StockViewSink(topic={self.topic!r})"
