"""The gateway's Redis store on the real Redis: claims, pipelined, hold under concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stockguard.connectors.gateway.store import RedisStore
from tests.conftest import Services

pytestmark = pytest.mark.integration


def test_concurrent_claims_of_one_key_give_exactly_one_new(services: Services) -> None:
    async def go() -> None:
        store = RedisStore.from_url(services.redis, f"it-store-{uuid.uuid4().hex[:8]}")
        try:
            # Issued in one loop turn: they share one pipeline, and Redis orders them.
            claims = await asyncio.gather(*(store.claim("k1", 60_000) for _ in range(50)))
            assert sorted(claims) == ["new"] + ["pending"] * 49
            await store.done("k1", 60_000)
            assert await store.claim("k1", 60_000) == "done"
            # A failed attempt releases its key: the retry is new again.
            assert await store.claim("k2", 60_000) == "new"
            await store.release("k2")
            assert await store.claim("k2", 60_000) == "new"
            # A claim outlives nothing: after its TTL the key can be claimed again.
            assert await store.claim("k3", 50) == "new"
            await asyncio.sleep(0.2)
            assert await store.claim("k3", 60_000) == "new"
            # Many keys at once, each its own answer.
            keys = [f"many-{i}" for i in range(500)]
            assert set(await asyncio.gather(*(store.claim(k, 60_000) for k in keys))) == {"new"}
            await asyncio.gather(*(store.done(k, 60_000) for k in keys))
            assert set(await asyncio.gather(*(store.claim(k, 60_000) for k in keys))) == {"done"}
        finally:
            await store.close()

    asyncio.run(go())


def test_the_shopify_sku_map_survives_a_new_store(services: Services) -> None:
    prefix = f"it-store-{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        first = RedisStore.from_url(services.redis, prefix)
        await first.learn_skus({"808950810": "TEE-RED-M", "808950811": "TEE-BLUE-M"})
        await first.close()
        again = RedisStore.from_url(services.redis, prefix)  # as after a restart
        try:
            assert await again.skus_of(["808950811", "1", "808950810"]) == {
                "808950811": "TEE-BLUE-M",
                "808950810": "TEE-RED-M",
            }
            assert await again.ping()
        finally:
            await again.close()

    asyncio.run(go())


def test_a_redis_that_does_not_answer_fails_every_command_of_the_batch() -> None:
    async def go() -> None:
        store = RedisStore.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
        try:
            results = await asyncio.gather(*(store.claim(f"k{i}", 1000) for i in range(5)), return_exceptions=True)
            assert all(isinstance(r, Exception) for r in results)
            assert not await store.ping()
        finally:
            await store.close()

    asyncio.run(go())
