"""The Redis read model: per-sku stock for send-time checks by the email platform.

Key schema (prefix `redis.prefix`, default `stockguard`), each key expiring `redis.ttl`
(default 7 days) after its last update; `{prefix}:campaign:{campaign_id}` hashes hold the
live campaign view (orders, units, revenue, gross_margin, media_cost, roas, active,
updated_ts):

    {prefix}:sku:{sku}   hash
        atp             ATP over all locations (each at max(0, ATP))
        available       1 when the sku may be sent (stock and catalog), else 0
        known           1 once a stock event was seen for the sku
        units_per_day   units ordered per day over the velocity window
        updated_ts      event time (epoch ms) of the newest event behind the view
        loc:{location}  ATP at that location (may be negative)

    {prefix}:trigger:{trigger_id}   hash, expiring `redis.decision_ttl` (2 days)
        decision        send | retarget | suppress | retracted
        skus            JSON array
        reason          suppression or retraction reason, "" otherwise
        ts              when it was decided (epoch ms)

The trigger hashes answer the send-time check (`stockguard.state.sendtime`); a retraction
overwrites the approval it cancels. Writes happen off the decision path: the sink only
stores the newest view per sku in a dict (bounded by the number of skus) and a background
thread writes them in pipelines.
When Redis is down, decisions go on, views keep coalescing, the thread retries with
backoff, and `stockguard_redis_errors_total` rises. Once Redis answers again the writer
re-sends the newest view of *every* sku it knows, since a restarted Redis may have lost
them all; it does the same every half TTL, so unchanged skus do not expire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from stockguard.config.settings import TopicSettings
from stockguard.connectors.metrics import REDIS_ERRORS, REDIS_WRITES
from stockguard.flows.records import CampaignView, OutRecord, StockView
from stockguard.state.sendtime import record_of

__all__ = ["REDIS_ERRORS", "DecisionWriter", "RedisDecisionSink", "RedisViewSink", "ViewWriter", "view_mapping"]

log = logging.getLogger(__name__)

Mapping = dict[str | bytes, bytes | float | int | str]


def campaign_mapping(view: dict[str, Any]) -> dict[str | bytes, bytes | float | int | str]:
    """Flatten a campaign view into the fields of its Redis hash."""
    m: dict[str | bytes, bytes | float | int | str] = {}
    for k, v in view.items():
        if v is None:
            continue
        m[k] = int(v) if isinstance(v, bool) else v
    return m


def view_mapping(view: dict[str, Any]) -> dict[str | bytes, bytes | float | int | str]:
    """Flatten a stock view into the fields of its Redis hash."""
    m: dict[str | bytes, bytes | float | int | str] = {
        "atp": view["atp"],
        "available": int(view["available"]),
        "known": int(view["known"]),
        "units_per_day": round(view["units_per_day"], 3),
        "updated_ts": view["updated_ts"],
    }
    for loc, atp in view["locations"].items():
        m[f"loc:{loc}"] = atp
    return m


class ViewWriter:
    """Coalesce views per sku and write them to Redis from a background thread."""

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis[bytes]],
        prefix: str = "stockguard",
        ttl_s: int = 7 * 86_400,
        batch: int = 500,
    ) -> None:
        self._factory = client_factory
        self._prefix = prefix
        self._ttl = ttl_s
        self._batch = batch
        # Redis key -> hash fields, newest only.
        self._pending: dict[str, Mapping] = {}
        # Newest fields of every key seen: the source of full re-syncs.
        self._latest: dict[str, Mapping] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.errors = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="stockguard-redis-view", daemon=True)
        self._thread.start()

    def submit(self, views: list[StockView | CampaignView]) -> None:
        """Queue the newest view of each sku or campaign; never blocks on Redis."""
        with self._lock:
            for v in views:
                if type(v) is StockView:
                    key = f"{self._prefix}:sku:{v.sku}"
                    mapping = view_mapping(v.view)
                else:
                    key = f"{self._prefix}:campaign:{v.campaign_id}"  # type: ignore[union-attr]
                    mapping = campaign_mapping(v.view)
                self._pending[key] = mapping
                self._latest[key] = mapping
        self._wake.set()

    def _resync_all(self) -> None:
        with self._lock:
            for sku, view in self._latest.items():
                self._pending.setdefault(sku, view)

    def pending(self) -> int:
        """Return how many sku views wait to be written."""
        with self._lock:
            return len(self._pending)

    def _take(self) -> dict[str, Mapping]:
        with self._lock:
            if len(self._pending) <= self._batch:
                taken, self._pending = self._pending, {}
                return taken
            taken = {}
            for sku in list(self._pending)[: self._batch]:
                taken[sku] = self._pending.pop(sku)
            return taken

    def _put_back(self, taken: dict[str, Mapping]) -> None:
        with self._lock:
            for sku, view in taken.items():
                # A newer view submitted meanwhile wins.
                self._pending.setdefault(sku, view)

    def _run(self) -> None:
        client: redis.Redis[bytes] | None = None
        backoff = 0.1
        failed = False
        next_refresh = time.monotonic() + self._ttl / 2
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self._ttl / 2
                self._resync_all()
            while True:
                taken = self._take()
                if not taken:
                    break
                try:
                    if client is None:
                        client = self._factory()
                    if failed:
                        client.ping()
                        failed = False
                        # Redis is back, perhaps restarted empty: send everything again.
                        self._put_back(taken)
                        self._resync_all()
                        continue
                    pipe = client.pipeline(transaction=False)
                    for key, mapping in taken.items():
                        pipe.hset(key, mapping=mapping)
                        pipe.expire(key, self._ttl)
                    pipe.execute()
                    self.written += len(taken)
                    REDIS_WRITES.inc(len(taken))
                    backoff = 0.1
                except (redis.RedisError, OSError) as exc:
                    self.errors += 1
                    REDIS_ERRORS.inc()
                    log.warning("redis read model write failed, will retry: %s", type(exc).__name__)
                    self._put_back(taken)
                    client = None
                    failed = True
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    if self._stop:
                        return
            if self._stop:
                return

    def close(self, timeout: float = 5.0) -> None:
        """Try to write what is pending for up to `timeout` seconds, then stop."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=1.0)


class _ViewPartition(StatelessSinkPartition[StockView | CampaignView]):
    def __init__(self, writer: ViewWriter) -> None:
        self._writer = writer

    def write_batch(self, items: list[StockView | CampaignView]) -> None:
        self._writer.submit(items)

    def close(self) -> None:
        self._writer.close()


class RedisViewSink(DynamicSink[StockView | CampaignView]):
    """Feed the Redis read model; a Redis outage never slows or stops the flow."""

    def __init__(self, url: str, prefix: str = "stockguard", ttl_s: int = 7 * 86_400) -> None:
        self._url = url
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.writers: list[ViewWriter] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ViewPartition:
        """Start this worker's background writer."""
        url = self._url

        def factory() -> redis.Redis[bytes]:
            return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

        writer = ViewWriter(factory, self.prefix, self.ttl_s)
        self.writers.append(writer)
        return _ViewPartition(writer)

    def __repr__(self) -> str:
        return f"RedisViewSink(prefix={self.prefix!r})"


class DecisionWriter(ViewWriter):
    """Write each decision's answer (`{prefix}:trigger:{id}`) from a background thread.

    Coalesced per trigger like the views (a retraction replaces its approval while both
    wait), but not kept for re-syncs: decisions are many and short-lived, so after a Redis
    restart the ones written before it answer `unknown` (do not send) until they expire.
    """

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis[bytes]],
        topics: TopicSettings,
        prefix: str = "stockguard",
        ttl_s: int = 2 * 86_400,
    ) -> None:
        self._kinds = {topics.approved: "approved", topics.suppressed: "suppressed", topics.retracted: "retracted"}
        # Decisions as emitted, decoded by the writer thread (set before it starts).
        self._raw: list[tuple[str, bytes]] = []
        super().__init__(client_factory, prefix, ttl_s)

    def submit_records(self, records: list[OutRecord]) -> None:
        """Queue the decisions among `records`; never blocks on Redis, decodes nothing here.

        This runs in the dataflow's worker: the JSON is read in the writer thread instead.
        """
        raw = [(kind, r.value) for r in records if (kind := self._kinds.get(r.topic)) is not None]
        if raw:
            with self._lock:
                self._raw.extend(raw)
            self._wake.set()

    def _take(self) -> dict[str, Mapping]:
        with self._lock:
            raw, self._raw = self._raw, []
        answers: dict[str, Mapping] = {}
        for kind, value in raw:  # in order: a retraction replaces the approval before it
            rec = record_of(kind, orjson.loads(value))
            if rec is not None:
                fields: Mapping = {k: v for k, v in rec[1].items()}
                answers[f"{self._prefix}:trigger:{rec[0]}"] = fields
        if answers:
            with self._lock:
                self._pending.update(answers)
        return super()._take()

    def pending(self) -> int:
        """Return how many decisions wait to be written."""
        with self._lock:
            return len(self._pending) + len(self._raw)


class _DecisionPartition(StatelessSinkPartition[OutRecord]):
    def __init__(self, writer: DecisionWriter) -> None:
        self._writer = writer

    def write_batch(self, items: list[OutRecord]) -> None:
        self._writer.submit_records(items)

    def close(self) -> None:
        self._writer.close()


class RedisDecisionSink(DynamicSink[OutRecord]):
    """Store each decision for the send-time check; a Redis outage never slows the flow."""

    def __init__(self, url: str, topics: TopicSettings, prefix: str = "stockguard", ttl_s: int = 2 * 86_400) -> None:
        self._url = url
        self.topics = topics
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.writers: list[DecisionWriter] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DecisionPartition:
        """Start this worker's background writer."""
        url = self._url

        def factory() -> redis.Redis[bytes]:
            return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

        writer = DecisionWriter(factory, self.topics, self.prefix, self.ttl_s)
        self.writers.append(writer)
        return _DecisionPartition(writer)
