"""The deliverer's loop on in-memory edges and a scripted vendor: what is sent, when, once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from prometheus_client import REGISTRY

from stockguard.config.settings import Settings, load_settings
from stockguard.connectors.delivery.engine import Deliverer
from stockguard.connectors.delivery.http import Reply, Transient
from stockguard.connectors.delivery.kafka_io import MemoryDlq, MemorySource
from stockguard.connectors.delivery.metrics import OUTCOMES
from stockguard.connectors.delivery.record import MemoryRecord
from stockguard.state.delivery.plan import BrazePlanner, KlaviyoPlanner, Planner

Answer = Callable[[str, str, Any], Reply | Exception]


class Vendor:
    """Answer each request with `answer` (202 by default) and keep them."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.answer = answer or (lambda _m, _p, _b: Reply(202, {}, b""))

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Reply:
        self.requests.append((method, path, body))
        out = self.answer(method, path, body)
        if isinstance(out, Exception):
            raise out
        return out


def settings() -> Settings:
    return load_settings(
        env={
            "STOCKGUARD_DELIVERY__BACKOFF_BASE": "1ms",
            "STOCKGUARD_DELIVERY__BACKOFF_CAP": "5ms",
            "STOCKGUARD_DELIVERY__RETRACTION_HOLD": "10m",
            "STOCKGUARD_BRAZE__CAMPAIGNS": '{"cm-42": "b-42"}',
            "STOCKGUARD_KLAVIYO__STOCK_INTERVAL": "0ms",
        }
    )


def approved(i: int) -> bytes:
    return orjson.dumps(
        {
            "trigger_id": f"t-{i}",
            "ts": 1764547400000,
            "campaign_id": "cm-42",
            "customer_id": f"c-{i}",
            "kind": "cart_abandonment",
            "channel": "email",
            "skus": ["A"],
            "decision": "send",
        }
    )


def retracted(i: int) -> bytes:
    return orjson.dumps({"trigger_id": f"t-{i}", "ts": 1764547500000, "customer_id": f"c-{i}", "sku": "A"})


async def run_until(d: Deliverer, done: Callable[[], bool], timeout: float = 5.0) -> None:
    task = asyncio.create_task(d.run())
    deadline = asyncio.get_running_loop().time() + timeout
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    d.stop()
    await task


def deliverer(
    planner: Planner, vendor: Vendor, record: MemoryRecord | None = None
) -> tuple[Deliverer, MemorySource, MemoryDlq]:
    src, dlq = MemorySource(), MemoryDlq()
    return Deliverer(settings(), planner, vendor, record or MemoryRecord(), src, dlq, chance=lambda: 0.5), src, dlq


def test_klaviyo_gets_each_approval_once_and_a_retraction_only_after_its_approval() -> None:
    async def go() -> None:
        vendor = Vendor()
        d, src, _dlq = deliverer(KlaviyoPlanner(), vendor)
        t = Settings().topics
        src.add(t.retracted, retracted(1))  # read before its approval (another topic)
        src.add(t.approved, approved(1))
        src.add(t.approved, approved(2))
        await run_until(d, lambda: len(vendor.requests) >= 3)
        kinds = [b["data"]["attributes"]["unique_id"] for _m, _p, b in vendor.requests]
        assert kinds == ["t-1:approved", "t-2:approved", "t-1:retracted"]
        assert src.committed == {(t.approved, 0): 2, (t.retracted, 0): 1}
        assert d.outcomes["delivered"] == 3

    asyncio.run(go())


def test_braze_never_sends_a_recorded_trigger_again_and_dead_letters_one_in_doubt() -> None:
    async def go() -> None:
        vendor = Vendor(lambda _m, _p, _b: Reply(201, {}, b'{"message":"success"}'))
        record = MemoryRecord()
        record.data["t-1"] = "sent"  # delivered before a restart
        record.data["t-2"] = "pending:old-run"  # a send cut by a crash
        d, src, dlq = deliverer(BrazePlanner({"cm-42": "b-42"}), vendor, record)
        t = Settings().topics
        for i in (1, 2, 3):
            src.add(t.approved, approved(i))
        await run_until(d, lambda: src.committed.get((t.approved, 0)) == 3)
        sent = [r["trigger_properties"]["trigger_id"] for _m, _p, b in vendor.requests for r in b["recipients"]]
        assert sent == ["t-3"] and record.data["t-3"] == "sent"
        [(key, raw)] = dlq.records
        assert key == "t-2" and orjson.loads(raw)["outcome"] == "in_doubt"
        assert (d.outcomes["duplicate"], d.outcomes["in_doubt"], d.outcomes["delivered"]) == (1, 1, 1)

    asyncio.run(go())


def test_429_waits_the_vendors_time_5xx_retries_and_a_4xx_goes_to_the_dlq_without_emails() -> None:
    answers: Iterator[Reply | Exception] = iter(
        [
            Reply(429, {"Retry-After": "0"}, b""),
            Reply(503, {}, b""),
            Transient("refused"),
            Reply(202, {}, b""),
            Reply(400, {}, b'{"errors":[{"detail":"bad profile jane@example.com"}]}'),
        ]
    )

    async def go() -> None:
        vendor = Vendor(lambda _m, _p, _b: next(answers))
        d, src, dlq = deliverer(KlaviyoPlanner(), vendor)
        t = Settings().topics
        src.add(t.approved, approved(1))
        await run_until(d, lambda: d.outcomes["delivered"] == 1)
        src.add(t.approved, approved(2))
        await run_until(d, lambda: len(dlq.records) == 1)
        assert len(vendor.requests) == 5
        rec = orjson.loads(dlq.records[0][1])
        assert (rec["status"], rec["outcome"], rec["trigger_id"]) == (400, "rejected", "t-2")
        assert "jane@example.com" not in rec["vendor_body"] and "<email>" in rec["vendor_body"]
        assert src.committed[(t.approved, 0)] == 2

    asyncio.run(go())


def test_braze_does_not_retry_a_send_that_may_have_arrived() -> None:
    async def go() -> None:
        vendor = Vendor(lambda _m, _p, _b: Transient("timeout"))
        d, src, dlq = deliverer(BrazePlanner({"cm-42": "b-42"}), vendor)
        src.add(Settings().topics.approved, approved(1))
        await run_until(d, lambda: len(dlq.records) == 1)
        assert len(vendor.requests) == 1 and orjson.loads(dlq.records[0][1])["outcome"] == "in_doubt"

    asyncio.run(go())


def test_stock_views_are_coalesced_into_one_catalog_call_and_bad_ones_dead_lettered() -> None:
    async def go() -> None:
        vendor = Vendor()
        d, src, dlq = deliverer(KlaviyoPlanner(), vendor)
        topic = Settings().topics.stock_views
        src.add(topic, orjson.dumps({"sku": "A", "atp": 5}))
        src.add(topic, orjson.dumps({"sku": "A", "atp": 2}))
        src.add(topic, orjson.dumps({"sku": "B", "atp": 1}))
        src.add(topic, b"not json")
        await run_until(d, lambda: src.committed.get((topic, 0)) == 4)
        [(_m, path, body)] = vendor.requests
        assert path == "/api/catalog-variant-bulk-update-jobs"
        variants = body["data"]["attributes"]["variants"]["data"]
        assert [(v["id"], v["attributes"]["inventory_quantity"]) for v in variants] == [
            ("$custom:::$default:::A", 2),
            ("$custom:::$default:::B", 1),
        ]
        assert orjson.loads(dlq.records[0][1])["error"] == "not JSON"

    asyncio.run(go())


class SlowVendor(Vendor):
    """Answer after `wait` seconds, so a stop can land while a request is in flight."""

    def __init__(self, wait: float, answer: Answer | None = None) -> None:
        super().__init__(answer)
        self.wait = wait
        self.started = asyncio.Event()

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Reply:
        self.started.set()
        await asyncio.sleep(self.wait)
        return await super().call(method, path, body, params)


def braze_ok(_m: str, _p: str, _b: Any) -> Reply:
    return Reply(201, {}, b'{"message":"success"}')


def test_a_stop_lets_a_braze_send_in_flight_finish_and_records_it() -> None:
    async def go() -> None:
        vendor = SlowVendor(0.3, braze_ok)
        record = MemoryRecord()
        d, src, dlq = deliverer(BrazePlanner({"cm-42": "b-42"}), vendor, record)
        t = Settings().topics
        src.add(t.approved, approved(1))
        task = asyncio.create_task(d.run())
        await vendor.started.wait()
        d.stop()  # SIGTERM while the request is in flight
        await task
        assert record.data == {"t-1": "sent"} and dlq.records == []
        assert src.committed == {(t.approved, 0): 1}
        # The next run sends nothing again, even if the message came back.
        d2, src2, dlq2 = deliverer(BrazePlanner({"cm-42": "b-42"}), vendor, record)
        src2.add(t.approved, approved(1))
        await run_until(d2, lambda: src2.committed.get((t.approved, 0)) == 1)
        assert len(vendor.requests) == 1 and dlq2.records == [] and d2.outcomes["duplicate"] == 1

    asyncio.run(go())


def test_a_stop_during_a_backoff_leaves_the_send_uncommitted_and_unclaimed() -> None:
    async def go() -> None:
        vendor = Vendor(lambda _m, _p, _b: Reply(503, {}, b""))
        record = MemoryRecord()
        d, src, dlq = deliverer(BrazePlanner({"cm-42": "b-42"}), vendor, record)
        src.add(Settings().topics.approved, approved(1))
        await run_until(d, lambda: len(vendor.requests) >= 2)
        # Not sent, not in doubt: redelivered after the restart and sent then.
        assert record.data == {} and dlq.records == [] and src.committed == {}

    asyncio.run(go())


class RacingRecord(MemoryRecord):
    """A rebalance: another run claims t-2 between our read of the states and our claim."""

    def __init__(self, then: str | None) -> None:
        super().__init__()
        self.then = then
        self.raced = False

    async def claim(self, ids: Any, run: str) -> Any:
        if not self.raced:
            self.raced = True
            self.data["t-2"] = "pending:other-run"

            async def other_finishes() -> None:
                await asyncio.sleep(0.1)
                if self.then is None:
                    return  # the other run died with it in flight
                self.data["t-2"] = self.then

            asyncio.get_running_loop().create_task(other_finishes())
        return await super().claim(ids, run)


def test_a_rebalance_race_sends_the_rest_and_counts_the_others_send_as_a_duplicate() -> None:
    async def go() -> None:
        vendor = Vendor(braze_ok)
        record = RacingRecord("sent")
        d, src, dlq = deliverer(BrazePlanner({"cm-42": "b-42"}), vendor, record)
        t = Settings().topics
        for i in (1, 2, 3):
            src.add(t.approved, approved(i))
        await run_until(d, lambda: src.committed.get((t.approved, 0)) == 3)
        sent = [r["trigger_properties"]["trigger_id"] for _m, _p, b in vendor.requests for r in b["recipients"]]
        assert sorted(sent) == ["t-1", "t-3"] and dlq.records == []
        assert (d.outcomes["delivered"], d.outcomes["duplicate"]) == (2, 1)
        assert record.data == {"t-1": "sent", "t-2": "sent", "t-3": "sent"}

    asyncio.run(go())


def test_a_rebalance_race_whose_other_run_never_answers_is_in_doubt_after_the_timeout() -> None:
    async def go() -> None:
        vendor = Vendor(braze_ok)
        record = RacingRecord(None)
        s = load_settings(
            env={"STOCKGUARD_DELIVERY__TIMEOUT": "100ms", "STOCKGUARD_DELIVERY__BACKOFF_BASE": "1ms"},
        )
        src, dlq = MemorySource(), MemoryDlq()
        d = Deliverer(s, BrazePlanner({"cm-42": "b-42"}), vendor, record, src, dlq, chance=lambda: 0.5)
        for i in (1, 2, 3):
            src.add(s.topics.approved, approved(i))
        await run_until(d, lambda: src.committed.get((s.topics.approved, 0)) == 3, timeout=15)
        sent = [r["trigger_properties"]["trigger_id"] for _m, _p, b in vendor.requests for r in b["recipients"]]
        assert sorted(sent) == ["t-1", "t-3"]
        [(key, raw)] = dlq.records
        assert key == "t-2" and orjson.loads(raw)["outcome"] == "in_doubt"


def test_the_circuit_gauge_follows_the_circuit_and_every_outcome_is_exported_from_the_start() -> None:
    # The alert rules read these: a first dead letter must be an increase from 0, and an
    # open circuit must read 0 again as soon as the vendor answers, whatever it answers.
    gauge: list[float | None] = []

    def answer(_m: str, _p: str, _b: Any) -> Reply:
        gauge.append(REGISTRY.get_sample_value("stockguard_delivery_circuit_open", {"system": "braze"}))
        return Reply(503, {}, b"") if len(gauge) <= 5 else Reply(400, {}, b'{"message":"bad"}')

    async def go() -> None:
        s = load_settings(
            env={
                "STOCKGUARD_DELIVERY__BACKOFF_BASE": "1ms",
                "STOCKGUARD_DELIVERY__BACKOFF_CAP": "5ms",
                "STOCKGUARD_DELIVERY__CIRCUIT_COOLDOWN": "10ms",
                "STOCKGUARD_BRAZE__CAMPAIGNS": '{"cm-42": "b-42"}',
            }
        )
        src, dlq = MemorySource(), MemoryDlq()
        d = Deliverer(s, BrazePlanner({"cm-42": "b-42"}), Vendor(answer), MemoryRecord(), src, dlq)
        for outcome in OUTCOMES:
            assert (
                REGISTRY.get_sample_value("stockguard_delivery_total", {"system": "braze", "outcome": outcome})
                is not None
            )
        src.add(s.topics.approved, approved(1))
        await run_until(d, lambda: len(dlq.records) == 1)
        # Five 503s open the circuit; the probe after the cooldown gets a 400: closed again.
        assert len(gauge) == 6 and gauge[:5] == [0.0] * 5 and gauge[5] == 1.0
        assert REGISTRY.get_sample_value("stockguard_delivery_circuit_open", {"system": "braze"}) == 0.0
        assert orjson.loads(dlq.records[0][1])["outcome"] == "rejected"

    asyncio.run(go())


def test_the_lag_is_reported_while_the_loop_waits_for_redis() -> None:
    class Down(MemoryRecord):
        async def states(self, ids: Any) -> list[str | None]:
            raise ConnectionError("redis down")

    def lag() -> float | None:
        return REGISTRY.get_sample_value("stockguard_delivery_consumer_lag", {"system": "braze", "topic": "memory"})

    async def go() -> None:
        d, src, _dlq = deliverer(BrazePlanner({"cm-42": "b-42"}), Vendor(), Down())
        d.lag_every = 0.01
        t = Settings().topics
        src.add(t.approved, approved(1))
        task = asyncio.create_task(d.run())
        while src.queue.qsize():  # taken: the loop now retries the record
            await asyncio.sleep(0.01)
        for i in (2, 3, 4):
            src.add(t.approved, approved(i))
        for _ in range(200):
            if lag() == 3:
                break
            await asyncio.sleep(0.01)
        d.stop()
        await task
        assert lag() == 3 and d.outcomes["delivered"] == 0

    asyncio.run(go())
