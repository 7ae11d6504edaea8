"""`stockguard poll shoppingfeed`'s engine: new marketplace orders into `shop.orders`.

Each poll reads every page of `GET /v1/store/{store_id}/order?since=...` (the cursor minus
`shoppingfeed.poll_lookback`), maps the orders (`state.vendors.shoppingfeed`), produces
what is new and waits for Kafka's acknowledgement, then records each order's emitted
outcome and, once all pages are done, the new cursor. So a crash re-reads and re-produces
at most what was not yet recorded, with the same `event_id`s (the flow applies an order
event once). An order that cannot be mapped goes to `stockguard.dlq` without its
addresses. Requests are paced by a token bucket; a 429 waits `X-RateLimit-Wait`, a 5xx or
no answer backs off with jitter, and a poll that still fails is retried whole at the next.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge

from stockguard.config.settings import Settings
from stockguard.connectors.delivery.http import Http, Transient
from stockguard.connectors.gateway.publisher import Publisher, Record
from stockguard.flows.encoding import Encoder, wall_clock_ms
from stockguard.state.delivery.pacing import Backoff, TokenBucket, retry_after
from stockguard.state.vendors import shoppingfeed as sf
from stockguard.state.vendors.common import MappingError, iso_ms, stable_id

__all__ = ["MemoryOrderStore", "OrderPoller", "OrderStore", "PollFailed", "RedisOrderStore"]

log = logging.getLogger(__name__)

POLLED = Counter("stockguard_poll_orders", "Marketplace orders read by outcome", ["system", "outcome"])
POLL_REQUESTS = Counter("stockguard_poll_requests", "Order API requests made", ["system", "status"])
LAST_POLL = Gauge("stockguard_poll_last_success_timestamp_seconds", "When a poll last completed", ["system"])

# Addresses hold names and emails: a dead letter keeps the rest of the order.
_PRIVATE = ("billingAddress", "shippingAddress", "customer", "payment")
_ATTEMPTS = 5


class PollFailed(RuntimeError):
    """The order API did not answer a page after the retries: the poll is tried again later."""


class OrderStore(Protocol):
    """Where the poller keeps its cursor and each order's emitted outcome."""

    async def cursor(self) -> int | None:
        """Return the newest `createdAt` seen (epoch ms), or None on the first run."""
        ...

    async def set_cursor(self, ms: int) -> None:
        """Save the cursor."""
        ...

    async def seen(self, ids: Sequence[str]) -> list[str | None]:
        """Return each order's emitted outcome, or None."""
        ...

    async def mark(self, outcomes: dict[str, str]) -> None:
        """Record orders' emitted outcomes."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryOrderStore:
    """The store in a dict, for tests and a broker-less run."""

    def __init__(self) -> None:
        self.at: int | None = None
        self.outcomes: dict[str, str] = {}

    async def cursor(self) -> int | None:
        """Return the cursor."""
        return self.at

    async def set_cursor(self, ms: int) -> None:
        """Save the cursor."""
        self.at = ms

    async def seen(self, ids: Sequence[str]) -> list[str | None]:
        """Return each order's emitted outcome."""
        return [self.outcomes.get(i) for i in ids]

    async def mark(self, outcomes: dict[str, str]) -> None:
        """Record outcomes."""
        self.outcomes.update(outcomes)

    async def close(self) -> None:
        """Nothing to release."""


class RedisOrderStore:
    """The store in Redis: `{prefix}:poll:shoppingfeed:{store}:cursor` and `...:order:{id}`."""

    def __init__(self, url: str, prefix: str, store_id: str, ttl_ms: int) -> None:
        self._r: aioredis.Redis[bytes] = aioredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self._key = f"{prefix}:poll:shoppingfeed:{store_id}"
        self._ttl = ttl_ms

    async def cursor(self) -> int | None:
        """GET the cursor."""
        raw = await self._r.get(self._key + ":cursor")
        return int(raw) if raw is not None else None

    async def set_cursor(self, ms: int) -> None:
        """SET the cursor (no TTL: it is the poller's position)."""
        await self._r.set(self._key + ":cursor", ms)

    async def seen(self, ids: Sequence[str]) -> list[str | None]:
        """MGET the outcomes."""
        if not ids:
            return []
        raw = await self._r.mget([f"{self._key}:order:{i}" for i in ids])
        return [v.decode() if v is not None else None for v in raw]

    async def mark(self, outcomes: dict[str, str]) -> None:
        """SET the outcomes, each kept longer than the lookback can bring its order back."""
        if not outcomes:
            return
        async with self._r.pipeline(transaction=False) as pipe:
            for i, o in outcomes.items():
                pipe.set(f"{self._key}:order:{i}", o, px=self._ttl)
            await pipe.execute()

    async def close(self) -> None:
        """Close the connections."""
        await self._r.aclose()  # type: ignore[attr-defined]


class OrderPoller:
    """Poll one Shoppingfeed store's orders into `shop.orders`."""

    def __init__(
        self,
        settings: Settings,
        http: Http,
        publisher: Publisher,
        store: OrderStore,
        clock_ms: Callable[[], int] = wall_clock_ms,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        s = settings.shoppingfeed
        self.s = s
        self.http = http
        self.publisher = publisher
        self.store = store
        self.clock_ms = clock_ms
        self.sleep = sleep
        self.topic = settings.topics.orders
        self.encoder = Encoder(settings, clock_ms)
        self.path = f"/v1/store/{s.store_id}/order"
        self.bucket = TokenBucket(s.orders_rate, s.orders_burst)
        d = settings.delivery
        self.backoff = Backoff(random.random, d.backoff_base / 1000, d.backoff_cap / 1000)  # noqa: S311 - jitter
        self.outcomes: Tally[str] = Tally()
        self.polls = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Finish the page in hand and stop."""
        self._stop.set()

    async def _page(self, query: dict[str, str]) -> Any:
        for attempt in range(1, _ATTEMPTS + 1):
            wait = self.bucket.wait(time.monotonic())
            if wait > 0:
                await self.sleep(wait)
            self.bucket.take(time.monotonic())
            try:
                reply = await self.http.call("GET", self.path, params=query)
            except Transient as exc:
                POLL_REQUESTS.labels("shoppingfeed", exc.kind).inc()
                await self.sleep(self.backoff.delay(attempt))
                continue
            POLL_REQUESTS.labels("shoppingfeed", str(reply.status)).inc()
            if reply.status == 200:
                try:
                    return orjson.loads(reply.body)
                except orjson.JSONDecodeError:
                    raise PollFailed("the order API answered 200 with a body that is not JSON") from None
            if reply.status == 429 or reply.status >= 500 or reply.status == 408:
                await self.sleep(self.backoff.delay(attempt, retry_after(reply.headers)))
                continue
            # 401/403/404: a setting is wrong; no retry fixes it.
            raise PollFailed(f"the order API answered {reply.status}: check shoppingfeed.token and store_id")
        raise PollFailed(f"the order API did not answer after {_ATTEMPTS} attempts")

    async def poll_once(self) -> Tally[str]:
        """Read every page since the cursor, produce what is new; return the outcomes."""
        now = self.clock_ms()
        cursor = await self.store.cursor()
        start = cursor if cursor is not None else now  # first run: the last lookback only
        newest = start
        tally: Tally[str] = Tally()
        page, pages = 1, 1
        while page <= pages and not self._stop.is_set():
            body = await self._page(sf.query(start, self.s.poll_lookback, page, self.s.page_size))
            try:
                got = sf.page_of(body)
            except MappingError as exc:
                raise PollFailed(f"the order API's page is not a page of orders: {exc}") from None
            pages = got.pages
            newest = max(newest, await self._handle(got.orders, tally))
            page += 1
        if not self._stop.is_set():
            await self.store.set_cursor(newest)
            LAST_POLL.labels("shoppingfeed").set(self.clock_ms() / 1000)
            self.polls += 1
        for k, v in tally.items():
            POLLED.labels("shoppingfeed", k).inc(v)
        self.outcomes.update(tally)
        return tally

    async def _handle(self, orders: list[dict[str, Any]], tally: Tally[str]) -> int:
        newest = 0
        # An order without an id (bad input) is remembered by its content instead, so a
        # second one is dead-lettered too rather than taken for the first.
        ids = [
            str(o["id"])
            if o.get("id") not in (None, "")
            else stable_id("no-id", orjson.dumps(o, option=orjson.OPT_SORT_KEYS))
            for o in orders
        ]
        seen = await self.store.seen(ids)
        records: list[Record] = []
        marks: dict[str, str] = {}
        for oid, order, before in zip(ids, orders, seen, strict=True):
            try:
                created = iso_ms(order.get("createdAt"), "order.createdAt")
                newest = max(newest, created)
                emit = sf.to_emit(sf.outcome(order), before)
                if emit is None:
                    tally["skipped" if sf.outcome(order) is None else "unchanged"] += 1
                    continue
                out = sf.order_message(order, emit)
                records.append((self.topic, out.key, orjson.dumps(out.value)))
                marks[oid] = emit
                tally[emit] += 1
            except MappingError as exc:
                if before == "dead_lettered":
                    tally["unchanged"] += 1
                    continue
                kept = {k: v for k, v in order.items() if k not in _PRIVATE}
                dead = self.encoder.dead_letter(
                    "shoppingfeed:order", None, None, f"sf-{oid}", orjson.dumps(kept), str(exc)
                )
                records.append((dead.topic, dead.key, dead.value))
                marks[oid] = "dead_lettered"
                tally["dead_lettered"] += 1
                log.warning("a Shoppingfeed order was dead-lettered", extra={"sg_reason": str(exc)})
        if records:
            await self.publisher.publish(asyncio.get_running_loop(), records)
        await self.store.mark(marks)
        return newest

    async def run(self) -> None:
        """Poll every `shoppingfeed.poll_interval` until stopped."""
        while not self._stop.is_set():
            try:
                tally = await self.poll_once()
                if tally:
                    log.info("polled Shoppingfeed orders", extra={"sg_outcomes": dict(tally)})
            except PollFailed as exc:
                log.error("a Shoppingfeed poll failed; trying again next interval", extra={"sg_reason": str(exc)})
            except Exception as exc:  # broker or Redis down: the next poll starts again from the cursor
                log.error(
                    "a Shoppingfeed poll failed; trying again next interval",
                    extra={"sg_reason": f"{type(exc).__name__}: {exc}"},
                )
            try:
                await asyncio.wait_for(self._stop.wait(), self.s.poll_interval / 1000)
            except TimeoutError:
                pass
