"""The deliverers over real HTTP against the local fake vendors, faults included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
from aiohttp import web

from stockguard.config.settings import Settings, load_settings
from stockguard.connectors.delivery.engine import Deliverer
from stockguard.connectors.delivery.http import VendorHttp
from stockguard.connectors.delivery.kafka_io import MemoryDlq, MemorySource
from stockguard.connectors.delivery.record import MemoryRecord
from stockguard.deliver import planner_and_http
from stockguard.fake_vendors import FakeVendors, fake_app


@asynccontextmanager
async def serve(fake: FakeVendors) -> AsyncIterator[str]:
    runner = web.AppRunner(fake_app(fake))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def settings(base: str) -> Settings:
    return load_settings(
        env={
            "STOCKGUARD_KLAVIYO__API_BASE": base,
            "STOCKGUARD_KLAVIYO__API_KEY": "pk_test",
            "STOCKGUARD_BRAZE__API_BASE": base,
            "STOCKGUARD_BRAZE__API_KEY": "braze-test",
            "STOCKGUARD_BRAZE__CAMPAIGNS": '{"cm-42": "b-42"}',
            "STOCKGUARD_SHOPPINGFEED__API_BASE": base,
            "STOCKGUARD_SHOPPINGFEED__TOKEN": "sf-test",
            "STOCKGUARD_SHOPPINGFEED__CATALOG_ID": "77",
            "STOCKGUARD_DELIVERY__BACKOFF_BASE": "5ms",
            "STOCKGUARD_DELIVERY__BACKOFF_CAP": "50ms",
            "STOCKGUARD_DELIVERY__CIRCUIT_COOLDOWN": "200ms",
            "STOCKGUARD_DELIVERY__TIMEOUT": "2s",
        }
    )


def approved(i: int) -> bytes:
    return orjson.dumps(
        {
            "trigger_id": f"t-{i}",
            "ts": 1764547400000 + i,
            "campaign_id": "cm-42",
            "customer_id": f"c-{i % 37}",
            "kind": "cart_abandonment",
            "channel": "email",
            "skus": ["A"],
            "decision": "send",
        }
    )


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


def test_every_approval_reaches_both_fakes_once_through_429_500_resets_and_an_outage() -> None:
    async def go() -> None:
        started = time.time()
        fake = FakeVendors()
        async with serve(fake) as base:
            s = settings(base)
            fake.fail_next(3, 429, 0.05, "Retry-After")
            fake.fail_next(2, 500)
            runs = []
            sources = []
            for system in ("klaviyo", "braze"):
                planner, http = planner_and_http(s, system)
                src = MemorySource()
                for i in range(300):
                    src.add(s.topics.approved, approved(i), partition=i % 4)
                d = Deliverer(s, planner, http, MemoryRecord(), src, MemoryDlq())
                runs.append((d, http, asyncio.create_task(d.run())))
                sources.append(src)
            await asyncio.sleep(0.05)
            fake.down(0.5)
            await until(lambda: len(fake.klaviyo_events) >= 300 and len(fake.braze_sends) >= 300)
            for d, http, task in runs:
                d.stop()
                await task
                await http.close()
        ids = sorted(e["properties"]["trigger_id"] for e in fake.klaviyo_events)
        assert ids == sorted(f"t-{i}" for i in range(300))
        braze = sorted(r["trigger_properties"]["trigger_id"] for r in fake.braze_sends)
        assert braze == sorted(f"t-{i}" for i in range(300)) and fake.refused == []
        assert all(src.committed == {(s.topics.approved, p): 75 for p in range(4)} for src in sources)
        # Each accepted approval's arrival is stamped once per system (refused attempts are not).
        for system in ("klaviyo", "braze"):
            assert sorted(t for sy, t, _at in fake.arrivals if sy == system) == sorted(f"t-{i}" for i in range(300))
        assert all(started <= at <= time.time() for _sy, _t, at in fake.arrivals)

    asyncio.run(go())


def test_a_wrong_key_is_refused_by_the_fake_and_dead_lettered_with_the_status() -> None:
    async def go() -> None:
        fake = FakeVendors(klaviyo_key="another")
        async with serve(fake) as base:
            s = settings(base)
            planner, http = planner_and_http(s, "klaviyo")
            src, dlq = MemorySource(), MemoryDlq()
            src.add(s.topics.approved, approved(1))
            d = Deliverer(s, planner, http, MemoryRecord(), src, dlq)
            task = asyncio.create_task(d.run())
            await until(lambda: len(dlq.records) == 1)
            d.stop()
            await task
            await http.close()
        rec = orjson.loads(dlq.records[0][1])
        assert (rec["status"], rec["outcome"]) == (401, "rejected") and "pk_test" not in dlq.records[0][1].decode()
        assert fake.klaviyo_events == []

    asyncio.run(go())


def test_stock_reaches_the_three_catalogs() -> None:
    async def go() -> None:
        fake = FakeVendors()
        async with serve(fake) as base:
            s = settings(base)
            for system in ("klaviyo", "braze", "shoppingfeed"):
                planner, http = planner_and_http(s, system)
                src = MemorySource()
                for i in range(130):
                    src.add(s.topics.stock_views, orjson.dumps({"sku": f"S-{i}", "atp": i - 3}))
                d = Deliverer(s, planner, http, MemoryRecord(), src, MemoryDlq())
                task = asyncio.create_task(d.run())
                await until(lambda src=src: src.committed.get((s.topics.stock_views, 0)) == 130)  # type: ignore[misc]
                d.stop()
                await task
                await http.close()
        want = {f"S-{i}": max(0, i - 3) for i in range(130)}
        assert fake.klaviyo_stock == want and fake.braze_stock == want and fake.shoppingfeed_stock == want

    asyncio.run(go())


def test_the_client_reuses_its_connections() -> None:
    async def go() -> None:
        fake = FakeVendors()
        async with serve(fake) as base:
            http = VendorHttp(base, {"Authorization": "Bearer braze-test", "Content-Type": "application/json"}, 2, 1, 4)
            for _ in range(20):
                reply = await http.call(
                    "POST", "/users/track", {"events": [{"external_id": "c", "name": "x", "time": "t"}]}
                )
                assert reply.status == 201
            session = http._session
            assert session is not None and len(session.connector._conns) == 1  # type: ignore[union-attr]
            await http.close()

    asyncio.run(go())
