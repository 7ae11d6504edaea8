"""What the gateway remembers: webhook dedup keys, and Shopify's inventory-item -> sku map.

A dedup key is claimed before its records are produced (`pending`), and marked `done` once
Kafka acknowledged them, for `gateway.dedup_window`; a failed attempt releases it. A retry
of a `done` webhook maps to nothing new; one of a `pending` webhook (its records may still
be on their way) is told to retry later. In Redis (`RedisStore`) both survive restarts and
are shared by every gateway process; `MemoryStore` is for one process (tests, the demo).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

__all__ = ["Claim", "MemoryStore", "RedisStore", "Store"]

Claim = Literal["new", "pending", "done"]


class Store(Protocol):
    """The gateway's memory."""

    async def claim(self, key: str, pending_ms: int) -> Claim:
        """Claim a dedup key for an attempt; say what it already was if not new."""

    async def done(self, key: str, ttl_ms: int) -> None:
        """Mark a key's records acknowledged, for `ttl_ms`."""

    async def release(self, key: str) -> None:
        """Forget a claim whose attempt failed, so a retry produces again."""

    async def learn_skus(self, items: Mapping[str, str]) -> None:
        """Remember Shopify inventory-item ids -> skus."""

    async def skus_of(self, items: list[str]) -> dict[str, str]:
        """Return the skus known for these inventory-item ids."""

    async def ping(self) -> bool:
        """Tell whether the store answers (readiness)."""

    async def close(self) -> None:
        """Let go of connections."""

    async def decision(self, trigger_id: str) -> dict[Any, Any]:
        """Return the stored decision of a trigger (hash fields), empty when none."""

    async def sku(self, sku: str) -> dict[Any, Any]:
        """Return the read model's row of a sku (hash fields), empty when none."""


class MemoryStore:
    """Keep everything in this process: lost at a restart, not shared."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.keys: dict[str, tuple[Claim, float]] = {}
        self.skus: dict[str, str] = {}
        # What the flow's Redis sinks would hold (tests fill them).
        self.decisions: dict[str, dict[Any, Any]] = {}
        self.sku_rows: dict[str, dict[Any, Any]] = {}

    async def claim(self, key: str, pending_ms: int) -> Claim:
        """Claim a dedup key for an attempt; say what it already was if not new."""
        now = self.clock()
        held = self.keys.get(key)
        if held is not None and held[1] > now:
            return held[0]
        if len(self.keys) > 1_000_000:
            self.keys = {k: v for k, v in self.keys.items() if v[1] > now}
        self.keys[key] = ("pending", now + pending_ms / 1000)
        return "new"

    async def done(self, key: str, ttl_ms: int) -> None:
        """Mark a key's records acknowledged, for `ttl_ms`."""
        self.keys[key] = ("done", self.clock() + ttl_ms / 1000)

    async def release(self, key: str) -> None:
        """Forget a claim whose attempt failed, so a retry produces again."""
        self.keys.pop(key, None)

    async def learn_skus(self, items: Mapping[str, str]) -> None:
        """Remember Shopify inventory-item ids -> skus."""
        self.skus.update(items)

    async def skus_of(self, items: list[str]) -> dict[str, str]:
        """Return the skus known for these inventory-item ids."""
        return {i: self.skus[i] for i in items if i in self.skus}

    async def ping(self) -> bool:
        """Tell whether the store answers (readiness)."""
        return True

    async def decision(self, trigger_id: str) -> dict[Any, Any]:
        """Return the stored decision of a trigger (hash fields), empty when none."""
        return self.decisions.get(trigger_id, {})

    async def sku(self, sku: str) -> dict[Any, Any]:
        """Return the read model's row of a sku (hash fields), empty when none."""
        return self.sku_rows.get(sku, {})

    async def close(self) -> None:
        """Let go of connections."""


class _Pipeliner:
    """Send the dedup commands of concurrent webhooks as one pipeline per event-loop turn.

    A command alone costs a connection checkout, its own write and read (measured: half
    of the gateway's CPU per webhook); commands issued in the same loop turn share one
    round trip, and a lone one waits for no other.
    """

    def __init__(self, client: Any) -> None:
        self.r = client
        self.queue: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, *args: Any, **options: Any) -> asyncio.Future[Any]:
        """Queue one command; its future holds the reply (or the error)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.queue.append((args, options, fut))
        if len(self.queue) == 1:
            loop.call_soon(self._start)
        return fut

    def _start(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _flush(self) -> None:
        batch, self.queue = self.queue, []
        try:
            async with self.r.pipeline(transaction=False) as pipe:
                for args, options, _fut in batch:
                    pipe.execute_command(*args, **options)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every command of the batch did
            for _args, _options, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_args, _options, fut), reply in zip(batch, replies, strict=True):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)


class RedisStore:
    """Keep dedup keys (with their TTLs) and the sku map in Redis, under `prefix`."""

    def __init__(self, client: Any, prefix: str = "stockguard") -> None:
        # A redis.asyncio.Redis; typed Any because redis's asyncio stubs are partial.
        self.r = client
        self.base = prefix  # the flow's read model: {prefix}:sku:*, {prefix}:trigger:*
        self.p = f"{prefix}:gateway"
        self.batch = _Pipeliner(client)

    @classmethod
    def from_url(cls, url: str, prefix: str = "stockguard") -> RedisStore:
        """Connect (lazily) to the Redis at `url`."""
        import redis.asyncio as aioredis

        # A burst waits for a free connection (up to the socket timeout) instead of failing.
        pool: aioredis.BlockingConnectionPool[Any] = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=2.0, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        return cls(aioredis.Redis(connection_pool=pool), prefix)

    async def claim(self, key: str, pending_ms: int) -> Claim:
        """Claim a dedup key for an attempt; say what it already was if not new."""
        k = f"{self.p}:dedup:{key}"
        if await self.batch.submit("SET", k, b"pending", "NX", "PX", pending_ms):
            return "new"
        held = await self.r.get(k)
        if held is None:  # expired between the two calls: claim again
            return "new" if await self.r.set(k, b"pending", nx=True, px=pending_ms) else "pending"
        return "done" if held == b"done" else "pending"

    async def done(self, key: str, ttl_ms: int) -> None:
        """Mark a key's records acknowledged, for `ttl_ms`."""
        await self.batch.submit("SET", f"{self.p}:dedup:{key}", b"done", "PX", ttl_ms)

    async def release(self, key: str) -> None:
        """Forget a claim whose attempt failed, so a retry produces again."""
        await self.r.delete(f"{self.p}:dedup:{key}")

    async def learn_skus(self, items: Mapping[str, str]) -> None:
        """Remember Shopify inventory-item ids -> skus (a hash, no TTL: the catalog's own)."""
        if items:
            flat = [x for pair in items.items() for x in pair]
            await self.batch.submit("HSET", f"{self.p}:shopify-items", *flat)

    async def skus_of(self, items: list[str]) -> dict[str, str]:
        """Return the skus known for these inventory-item ids."""
        values = await self.batch.submit("HMGET", f"{self.p}:shopify-items", *items)
        return {i: v.decode() for i, v in zip(items, values, strict=True) if v is not None}

    async def decision(self, trigger_id: str) -> dict[Any, Any]:
        """Return the stored decision of a trigger (hash fields), empty when none."""
        return await self._hash(f"{self.base}:trigger:{trigger_id}")

    async def sku(self, sku: str) -> dict[Any, Any]:
        """Return the read model's row of a sku (hash fields), empty when none."""
        return await self._hash(f"{self.base}:sku:{sku}")

    async def _hash(self, key: str) -> dict[Any, Any]:
        # HGETALL answers a flat list under RESP2 and a map under RESP3.
        reply = await self.batch.submit("HGETALL", key)
        if isinstance(reply, dict):
            return reply
        return dict(zip(reply[::2], reply[1::2], strict=True)) if reply else {}

    async def ping(self) -> bool:
        """Tell whether the store answers (readiness)."""
        try:
            return bool(await self.r.ping())
        except Exception:  # any connection failure is "not ready", never a crash
            return False

    async def close(self) -> None:
        """Let go of connections."""
        await self.r.aclose()
