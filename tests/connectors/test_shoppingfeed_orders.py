"""The Shoppingfeed order poller over real HTTP against the fake: pages, cursor, restarts, faults."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from stockguard.config.settings import load_settings
from stockguard.connectors.delivery.http import VendorHttp
from stockguard.connectors.shoppingfeed_orders import MemoryOrderStore, OrderPoller, PollFailed
from stockguard.fake_vendors import FakeVendors
from tests.connectors.gateway.harness import FakePublisher
from tests.stockguard.test_fake_vendors import serve

NOW = 1764577800000  # 2025-12-01T08:30:00Z, before the orders


def sf_order(i: int, status: str = "waiting_shipment", minute: int = 0, **kw: Any) -> dict[str, Any]:
    o: dict[str, Any] = {
        "id": i,
        "reference": f"AMZ-{i}",
        "status": status,
        "createdAt": f"2025-12-01T09:{minute:02d}:00+00:00",
        "billingAddress": {"email": f"buyer{i}@example.com", "lastName": "Doe"},
        "items": [{"reference": f"SKU-{i % 3}", "quantity": 1 + i % 2, "price": 10.0}],
    }
    o.update(kw)
    return o


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, s: float) -> None:
        self.waits.append(s)


def poller(
    base: str, store: MemoryOrderStore, pub: FakePublisher, sleeps: Sleeps, token: str = "sf-test"
) -> OrderPoller:
    settings = load_settings(
        env={
            "STOCKGUARD_SHOPPINGFEED__API_BASE": base,
            "STOCKGUARD_SHOPPINGFEED__TOKEN": token,
            "STOCKGUARD_SHOPPINGFEED__STORE_ID": "12",
            "STOCKGUARD_SHOPPINGFEED__PAGE_SIZE": "2",
            "STOCKGUARD_SHOPPINGFEED__ORDERS_RATE": "1000",
            "STOCKGUARD_SHOPPINGFEED__ORDERS_BURST": "1000",
            "STOCKGUARD_DELIVERY__BACKOFF_BASE": "5ms",
        }
    )
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    http = VendorHttp(base, headers, 2.0, 1.0, 4)
    return OrderPoller(settings, http, pub, store, clock_ms=lambda: NOW, sleep=sleeps)


def orders(pub: FakePublisher) -> list[dict[str, Any]]:
    return pub.values("shop.orders")


def test_every_page_is_read_and_a_restart_emits_nothing_twice() -> None:
    async def go() -> None:
        fake = FakeVendors()
        fake.shoppingfeed_orders.extend(sf_order(i, minute=i) for i in range(1, 6))
        store, pub, sleeps = MemoryOrderStore(), FakePublisher(), Sleeps()
        async with serve(fake) as base:
            p = poller(base, store, pub, sleeps)
            tally = await p.poll_once()
            assert tally == {"placed": 5}
            assert sorted(o["order_id"] for o in orders(pub)) == [f"sf-{i}" for i in range(1, 6)]
            assert fake.requests["/v1/store/12/order"] == 3  # 5 orders, 2 a page
            assert store.at == 1764579600000 + 5 * 60_000  # the newest createdAt

            # A restart (a new poller on the same store) finds nothing new.
            p2 = poller(base, store, pub, sleeps)
            assert await p2.poll_once() == {"unchanged": 5}
            assert len(orders(pub)) == 5

            # One is refused, one new arrives: exactly those two are emitted.
            fake.shoppingfeed_orders[1] = sf_order(2, "refused", minute=2, updatedAt="2025-12-01T09:20:00+00:00")
            fake.shoppingfeed_orders.append(sf_order(6, "created", minute=6))
            assert await p2.poll_once() == {"cancelled": 1, "placed": 1, "unchanged": 4}
            new = orders(pub)[5:]
            assert {(o["event_id"], o["status"]) for o in new} == {
                ("sf-2-cancelled", "cancelled"),
                ("sf-6-placed", "placed"),
            }
            await p.http.close()  # type: ignore[attr-defined]
            await p2.http.close()  # type: ignore[attr-defined]

    asyncio.run(go())


def test_the_query_asks_since_cursor_minus_lookback() -> None:
    async def go() -> None:
        fake = FakeVendors()
        # Created two hours before the cursor: outside the 1 h lookback, never asked for.
        fake.shoppingfeed_orders.extend([sf_order(1, minute=0), sf_order(2, createdAt="2025-12-01T06:00:00+00:00")])
        store, pub = MemoryOrderStore(), FakePublisher()
        store.at = 1764579600000 + 30 * 60_000  # 09:30
        async with serve(fake) as base:
            p = poller(base, store, pub, Sleeps())
            assert await p.poll_once() == {"placed": 1}
            assert [o["order_id"] for o in orders(pub)] == ["sf-1"]
            assert store.at == 1764579600000 + 30 * 60_000  # the cursor never goes back
            await p.http.close()  # type: ignore[attr-defined]

    asyncio.run(go())


def test_skipped_statuses_and_a_bad_order_to_the_dlq_without_addresses() -> None:
    async def go() -> None:
        fake = FakeVendors()
        fake.shoppingfeed_orders.extend(
            [sf_order(1, "refunded"), sf_order(2, items=[{"reference": "X", "quantity": 0, "price": 1}]), sf_order(3)]
        )
        store, pub = MemoryOrderStore(), FakePublisher()
        async with serve(fake) as base:
            p = poller(base, store, pub, Sleeps())
            assert await p.poll_once() == {"skipped": 1, "dead_lettered": 1, "placed": 1}
            dead = pub.values("stockguard.dlq")
            assert len(dead) == 1
            assert dead[0]["topic"] == "shoppingfeed:order" and dead[0]["key"] == "sf-2"
            assert "quantity" in dead[0]["error"]
            assert "example.com" not in dead[0]["raw"] and "Doe" not in dead[0]["raw"]
            # Seen again next poll: not dead-lettered twice.
            assert await p.poll_once() == {"skipped": 1, "unchanged": 2}
            assert len(pub.values("stockguard.dlq")) == 1
            await p.http.close()  # type: ignore[attr-defined]

    asyncio.run(go())


def test_429_waits_as_told_and_5xx_and_resets_are_retried() -> None:
    async def go() -> None:
        fake = FakeVendors()
        fake.shoppingfeed_orders.extend(sf_order(i) for i in range(1, 4))
        store, pub, sleeps = MemoryOrderStore(), FakePublisher(), Sleeps()
        async with serve(fake) as base:
            p = poller(base, store, pub, sleeps)
            fake.fail_next(1, 429, 1.5, "X-RateLimit-Wait")
            fake.fail_next(1, 502)
            fake.reset_next(1)
            assert await p.poll_once() == {"placed": 3}
            assert 1.5 in sleeps.waits  # the vendor's own wait
            assert len(orders(pub)) == 3
            await p.http.close()  # type: ignore[attr-defined]

    asyncio.run(go())


def test_a_wrong_token_fails_the_poll_and_moves_nothing() -> None:
    async def go() -> None:
        fake = FakeVendors()
        fake.shoppingfeed_orders.append(sf_order(1))
        store, pub = MemoryOrderStore(), FakePublisher()
        async with serve(fake) as base:
            p = poller(base, store, pub, Sleeps(), token="wrong")
            with pytest.raises(PollFailed, match="401"):
                await p.poll_once()
            assert store.at is None and not pub.published
            await p.http.close()  # type: ignore[attr-defined]

    asyncio.run(go())


def test_broker_refusal_records_nothing_so_the_next_poll_emits_again() -> None:
    async def go() -> None:
        fake = FakeVendors()
        fake.shoppingfeed_orders.append(sf_order(1))
        store, pub = MemoryOrderStore(), FakePublisher()
        async with serve(fake) as base:
            p = poller(base, store, pub, Sleeps())
            pub.mode = "fail"
            with pytest.raises(Exception, match="broker down"):
                await p.poll_once()
            assert store.at is None and store.outcomes == {}
            pub.mode = "ack"
            assert await p.poll_once() == {"placed": 1}
            assert orjson.loads(pub.published[0][2])["event_id"] == "sf-1-placed"
            await p.http.close()  # type: ignore[attr-defined]

    asyncio.run(go())


def test_orders_without_an_id_are_each_dead_lettered_never_taken_for_one_another() -> None:
    async def go() -> None:
        fake = FakeVendors()
        fake.shoppingfeed_orders.extend([sf_order(1, id=None), sf_order(2, id=None, reference="AMZ-other")])
        store, pub = MemoryOrderStore(), FakePublisher()
        async with serve(fake) as base:
            p = poller(base, store, pub, Sleeps())
            assert await p.poll_once() == {"dead_lettered": 2}
            assert len(pub.values("stockguard.dlq")) == 2
            assert all("id: missing" in d["error"] for d in pub.values("stockguard.dlq"))
            await p.http.close()  # type: ignore[attr-defined]

    asyncio.run(go())
