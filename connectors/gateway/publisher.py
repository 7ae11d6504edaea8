"""Produce a webhook's records to Kafka and learn, in the event loop, when all are acknowledged.

One idempotent producer (`acks=all`) per gateway process; a daemon thread serves its
delivery reports and hands each poll's batch to the event loop. `publish` returns a future that is
done when Kafka acknowledged every record of the batch, or fails with `NotTaken` naming
the first error. librdkafka keeps retrying a record until `message.timeout.ms`: a
webhook answered 503 while Kafka is down may still have its records delivered later,
which is why the dedup key stays claimed until the outcome is known (`app`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, Producer

__all__ = ["KafkaPublisher", "NotTaken", "Publisher", "Record"]

# (topic, key, value)
Record = tuple[str, str | None, bytes]
Settle = Callable[[str | None], None]


class NotTaken(RuntimeError):
    """Kafka did not take a record (queue full, delivery failed, message too large)."""


class Publisher(Protocol):
    """Something that produces records and tells when they are acknowledged."""

    def publish(self, loop: asyncio.AbstractEventLoop, records: Sequence[Record]) -> asyncio.Future[None]:
        """Produce the records; the future is done when all are acknowledged."""

    def close(self, timeout_s: float) -> int:
        """Flush what is queued; return how many records were left undelivered."""


class KafkaPublisher:
    """Produce with one idempotent producer; delivery reports served by a daemon thread."""

    def __init__(self, config: Mapping[str, str], message_timeout_ms: int) -> None:
        conf: dict[str, Any] = dict(config)
        conf.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                # A webhook waits for its acknowledgement: batching longer only adds latency.
                "linger.ms": 1,
                "message.timeout.ms": message_timeout_ms,
            }
        )
        self.producer = Producer(conf)
        # The reports of one poll, handed to the event loop in one wake-up, not one each:
        # polling in the loop instead was measured costlier (timers at 1 ms resolution).
        self._reports: list[tuple[asyncio.AbstractEventLoop, Settle, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="gateway-delivery-reports", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)
            if self._reports:
                reports, self._reports = self._reports, []
                by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Settle, str | None]]] = {}
                for loop, settle, err in reports:
                    by_loop.setdefault(loop, []).append((settle, err))
                for loop, batch in by_loop.items():
                    try:
                        loop.call_soon_threadsafe(_settle_all, batch)
                    except RuntimeError:  # that loop is closed: nobody waits any more
                        pass

    def warm(self, topics: Sequence[str], timeout_s: float = 10.0) -> None:
        """Learn the topics' partition leaders now, so the first webhook does not wait for them."""

        def fetch() -> None:
            for topic in topics:
                try:
                    self.producer.list_topics(topic, timeout=timeout_s)
                except Exception:  # noqa: S110 - Kafka down: the first produce learns them instead
                    pass

        threading.Thread(target=fetch, name="gateway-metadata", daemon=True).start()

    def publish(self, loop: asyncio.AbstractEventLoop, records: Sequence[Record]) -> asyncio.Future[None]:
        """Produce the records; the future is done when all are acknowledged."""
        fut: asyncio.Future[None] = loop.create_future()
        left = [len(records)]

        def settle(err: str | None) -> None:  # in the event loop
            if fut.done():
                return
            if err is not None:
                fut.set_exception(NotTaken(err))
                return
            left[0] -= 1
            if left[0] == 0:
                fut.set_result(None)

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:  # in the report thread, inside poll
            self._reports.append((loop, settle, None if err is None else err.str()))

        if not records:
            fut.set_result(None)
            return fut
        for topic, key, value in records:
            try:
                self.producer.produce(topic, value, key, on_delivery=on_delivery)
            except BufferError:
                settle("librdkafka's queue is full")
                break
            except Exception as exc:  # KafkaException: too large, unknown topic, ...
                settle(f"{type(exc).__name__}: {exc}")
                break
        return fut

    def close(self, timeout_s: float) -> int:
        """Flush what is queued; return how many records were left undelivered."""
        self._stop.set()
        self._thread.join(2.0)
        left: int = self.producer.flush(timeout_s)  # reports now go nowhere: the loop is done
        return left


def _settle_all(batch: list[tuple[Settle, str | None]]) -> None:
    """Settle a poll's delivery reports, in the event loop."""
    for settle, err in batch:
        settle(err)
