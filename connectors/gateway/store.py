"""What the gateway remembers: webhook dedup keys, and Shopify's inventory-item -> sku map.

A dedup key is claimed before its records are produced (`pending`), and marked `done` once
Kafka acknowledged them, for `gateway.dedup_window`; a failed attempt releases it. A retry
of a `done` webhook maps to nothing new; one of a `pending` webhook (its records may still
be on their way) is told to retry later. In Redis (`RedisStore`) both survive restarts and
are shared by every gateway process; `MemoryStore` is for one process (tests, the demo).
"""

from __future__ import annotations

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


class MemoryStore:
    """Keep everything in this process: lost at a restart, not shared."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.keys: dict[str, tuple[Claim, float]] = {}
        self.skus: dict[str, str] = {}

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

    async def close(self) -> None:
        """Let go of connections."""


class RedisStore:
    """Keep dedup keys (with their TTLs) and the sku map in Redis, under `prefix`."""

    def __init__(self, client: Any, prefix: str = "stockguard") -> None:
        # A redis.asyncio.Redis; typed Any because redis's asyncio stubs are partial.
        self.r = client
        self.p = f"{prefix}:gateway"

    @classmethod
    def from_url(cls, url: str, prefix: str = "stockguard") -> RedisStore:
        """Connect (lazily) to the Redis at `url`."""
        import redis.asyncio as aioredis

        return cls(aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0), prefix)

    async def claim(self, key: str, pending_ms: int) -> Claim:
        """Claim a dedup key for an attempt; say what it already was if not new."""
        k = f"{self.p}:dedup:{key}"
        if await self.r.set(k, b"pending", nx=True, px=pending_ms):
            return "new"
        held = await self.r.get(k)
        if held is None:  # expired between the two calls: claim again
            return "new" if await self.r.set(k, b"pending", nx=True, px=pending_ms) else "pending"
        return "done" if held == b"done" else "pending"

    async def done(self, key: str, ttl_ms: int) -> None:
        """Mark a key's records acknowledged, for `ttl_ms`."""
        await self.r.set(f"{self.p}:dedup:{key}", b"done", px=ttl_ms)

    async def release(self, key: str) -> None:
        """Forget a claim whose attempt failed, so a retry produces again."""
        await self.r.delete(f"{self.p}:dedup:{key}")

    async def learn_skus(self, items: Mapping[str, str]) -> None:
        """Remember Shopify inventory-item ids -> skus (a hash, no TTL: the catalog's own)."""
        if items:
            await self.r.hset(f"{self.p}:shopify-items", mapping=dict(items))

    async def skus_of(self, items: list[str]) -> dict[str, str]:
        """Return the skus known for these inventory-item ids."""
        values = await self.r.hmget(f"{self.p}:shopify-items", items)
        return {i: v.decode() for i, v in zip(items, values, strict=True) if v is not None}

    async def ping(self) -> bool:
        """Tell whether the store answers (readiness)."""
        try:
            return bool(await self.r.ping())
        except Exception:  # any connection failure is "not ready", never a crash
            return False

    async def close(self) -> None:
        """Let go of connections."""
        await self.r.aclose()
