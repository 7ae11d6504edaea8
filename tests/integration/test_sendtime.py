"""The send-time check end to end: the live flow writes decisions to Redis, the gateway answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from stockguard.config.settings import SecretStr
from stockguard.connectors.gateway.store import RedisStore
from tests.conftest import Services
from tests.connectors.gateway.harness import Harness, settings
from tests.integration.test_live import OutputReader, isolated, probe, produce, start_flow, stop_flows

pytestmark = pytest.mark.integration

T0 = 1_764_547_200_000
TOKEN = {"X-Stockguard-Token": "it-check"}


def _trigger(tid: str, consent: bool = True) -> dict[str, Any]:
    return {
        "trigger_id": tid,
        "ts": T0 + 60_000,
        "campaign_id": "cm-it",
        "customer_id": f"cust-{tid}",
        "kind": "back_in_stock",
        "channel": "email",
        "skus": ["IT-SKU"],
        "consent": consent,
    }


def _level(n: int, on_hand: int, ts: int) -> dict[str, Any]:
    return {"event_id": f"lvl-{n}", "ts": ts, "type": "level", "sku": "IT-SKU", "location": "WH-PARIS",
            "on_hand": on_hand, "reserved": 0}  # fmt: skip


def test_a_retraction_changes_what_the_send_time_check_answers(services: Services) -> None:
    prefix = f"it-check-{uuid.uuid4().hex[:8]}"
    s, env = isolated(services, STOCKGUARD_REDIS__ENABLED="true", STOCKGUARD_REDIS__PREFIX=prefix)
    t = s.topics
    reader = OutputReader(services.kafka, s)
    flow = start_flow(env, "-w", "1")
    gateway_settings = settings(gateway={"api_token": SecretStr("it-check"), "state": "memory"})

    async def ask(tid: str, want: str, timeout: float = 60.0) -> dict[str, Any]:
        async with Harness(gateway_settings) as h:
            h.gateway.store = RedisStore.from_url(services.redis, prefix)
            deadline = time.monotonic() + timeout
            while True:
                status, answer = await h.get_json(f"/v1/triggers/{tid}", TOKEN)
                assert status == 200
                if answer["decision"] == want or time.monotonic() > deadline:
                    await h.gateway.store.close()
                    return dict(answer)
                await asyncio.sleep(0.2)

    try:
        probe(services, s, reader, 0)
        produce(services.kafka, [(t.stock, "IT-SKU", _level(1, 5, T0))])
        produce(
            services.kafka, [(t.triggers, "cust-a", _trigger("it-a")), (t.triggers, "cust-b", _trigger("it-b", False))]
        )
        assert asyncio.run(ask("it-a", "send")) == {
            "trigger_id": "it-a",
            "decision": "send",
            "skus": ["IT-SKU"],
            "reason": None,
        }
        assert asyncio.run(ask("it-b", "suppress"))["reason"] == "no_consent"
        # The sku sells out: the approval is retracted, and the check now says so.
        produce(services.kafka, [(t.stock, "IT-SKU", _level(2, 0, T0 + 120_000))])
        retracted = asyncio.run(ask("it-a", "retracted"))
        assert retracted["decision"] == "retracted" and retracted["skus"] == ["IT-SKU"]
        assert str(retracted["reason"]).startswith("out_of_stock")
        assert asyncio.run(ask("it-never", "unknown", timeout=0))["decision"] == "unknown"
    finally:
        stop_flows([flow])
        reader.close()
