"""The simulated day as vendor webhooks: through a real gateway, every message arrives as mapped."""

from __future__ import annotations

import asyncio
import queue
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from stockguard.cli import main
from stockguard.config.settings import Settings
from stockguard.flows.records import RawRecord
from stockguard.sim import SimConfig, simulate
from stockguard.state.models import ContractError, checked_click, checked_order, checked_stock, checked_trigger
from stockguard.via_gateway import LoopbackPublisher, SendStats, demo_secrets, send_in_process
from stockguard.webhooks import Passthrough

CFG = SimConfig(seed=3, hours=2.0, customers=2000, skus=60, events_per_hour=1500, bad_fraction=0.01)
CHECK = {
    "shop.clickstream": checked_click,
    "inventory.stock": checked_stock,
    "shop.orders": checked_order,
    "marketing.triggers": checked_trigger,
}


def _valid(topic: str, value: Any) -> bool:
    if topic not in CHECK or not isinstance(value, dict):
        return False
    try:
        CHECK[topic](value)
    except ContractError:
        return False
    return True


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[str, dict[str, Any]]], SendStats, Path]:
    s = demo_secrets(Settings(), CFG.locations)
    q: queue.Queue[Any] = queue.Queue()
    stats = SendStats()
    dlq = tmp_path_factory.mktemp("gw") / "gateway.dlq.jsonl"

    def passthrough(p: Passthrough) -> None:
        q.put(RawRecord(p.topic, None, orjson.dumps(p.value)))

    asyncio.run(
        send_in_process(s, CFG, LoopbackPublisher(q, s.topics.dlq, dlq), stats, passthrough, speed=float("inf"))
    )
    out = []
    while not q.empty():
        rec = q.get()
        out.append((rec.topic, orjson.loads(rec.value)))
    return out, stats, dlq


def test_every_webhook_is_accepted_but_the_forged_ones(sent: tuple[list[Any], SendStats, Path]) -> None:
    _records, stats, dlq = sent
    day = list(simulate(CFG))
    malformed = sum(1 for t, _k, v in day if t not in ("catalog.products", "marketing.campaigns") and not _valid(t, v))
    outcomes = Counter(o for (_s, o) in stats.answers)
    assert set(outcomes) <= {"accepted", "duplicate", "401", "skipped stripe_cancellation"}, stats.answers
    assert stats.answers["shopify", "401"] == malformed > 0
    assert {s for (s, o) in stats.answers if o == "accepted"} == {"shopify", "stripe", "klaviyo", "braze", "ga4"}
    assert not dlq.exists()


def test_every_simulated_message_reaches_the_flow_as_the_tables_say(sent: tuple[list[Any], SendStats, Path]) -> None:
    records, stats, _dlq = sent
    day: list[tuple[str, dict[str, Any]]] = [
        (t, v) for t, _k, v in simulate(CFG) if isinstance(v, dict) and (t == "catalog.products" or _valid(t, v))
    ]
    got: dict[str, list[dict[str, Any]]] = {}
    for topic, value in records:
        got.setdefault(topic, []).append(value)

    # Clicks: one per item, same customer, session, type, sku, quantity and time.
    def click(v: dict[str, Any]) -> tuple[Any, ...]:
        return (v["customer_id"], v["session_id"], v["type"], v.get("sku"), v.get("qty", 1), v["ts"])

    assert Counter(click(v) for t, v in day if t == "shop.clickstream") == Counter(
        click(v) for v in got["shop.clickstream"]
    )

    # Triggers: every distinct trigger once (a retried webhook maps to nothing new).
    def trig(v: dict[str, Any]) -> tuple[Any, ...]:
        return (v["trigger_id"], v["campaign_id"], v["customer_id"], v["kind"], tuple(v["skus"]), v["consent"])

    sim_triggers = {trig(v) for t, v in day if t == "marketing.triggers"}
    assert sorted(trig(v) for v in got["marketing.triggers"]) == sorted(sim_triggers)

    # Orders: Shopify ids prefixed, Stripe checkouts by session id, times in Stripe's seconds.
    def order(v: dict[str, Any]) -> tuple[Any, ...]:
        oid = v["order_id"].removeprefix("shopify-").removeprefix("cs_sim_")
        lines = tuple(sorted((ln["sku"], ln["qty"], round(ln["unit_price"], 2)) for ln in v["lines"]))
        return (oid, v["status"], v["customer_id"], lines, v.get("campaign_id"), v["ts"] // 1000)

    stripe_cancels = stats.answers["sim", "skipped stripe_cancellation"]
    sim_orders = Counter(order(v) for t, v in day if t == "shop.orders")
    got_orders = Counter(order(v) for v in got["shop.orders"])
    assert got_orders <= sim_orders
    assert sum((sim_orders - got_orders).values()) == stripe_cancels
    assert any(v["order_id"].startswith("cs_sim_") for v in got["shop.orders"])

    # Stock: the same available-to-promise per sku and location, at the same time.
    atp: dict[tuple[str, str], int] = {}
    want = []
    for t, v in day:
        if t == "inventory.stock":
            where = (v["sku"], v["location"])
            atp[where] = v["on_hand"] - v["reserved"] if v["type"] == "level" else atp.get(where, 0) + v["delta"]
            want.append((*where, atp[where], v["ts"]))
    assert [(v["sku"], v["location"], v["on_hand"] - v["reserved"], v["ts"]) for v in got["inventory.stock"]] == want

    # Catalog: every variant, with price, group, size and flags (no unit cost on Shopify).
    def product(v: dict[str, Any]) -> tuple[Any, ...]:
        return (v["sku"], v["product_id"], v["group"], v["size"], round(v["price"], 2), v["active"], v["online"])

    assert sorted(product(v) for v in got["catalog.products"]) == sorted(
        product(v) for t, v in day if t == "catalog.products"
    )
    assert {v["unit_cost"] for v in got["catalog.products"]} == {0.0}
    assert len(got["marketing.campaigns"]) == sum(1 for t, _k, _v in simulate(CFG) if t == "marketing.campaigns")


def test_the_demo_via_gateway_decides_the_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--via-gateway", "--hours", "2", "--speed", "1e9", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "gateway stripe: accepted" in printed and "gateway klaviyo: accepted" in printed
    approved = (tmp_path / "marketing.triggers.approved.jsonl").read_bytes().splitlines()
    assert approved and all(orjson.loads(x)["decision"] in ("send", "retarget") for x in approved)


def test_a_stripe_webhook_is_signed_when_sent_so_a_late_retry_is_still_within_tolerance() -> None:
    from stockguard.state.vendors import signatures
    from stockguard.webhooks import Request, WebhookDay, one_in

    s = demo_secrets(Settings(), CFG.locations)
    now = [1_764_547_200.0]
    day = WebhookDay(s, CFG.locations, lambda: now[0])
    oid = next(f"o-{i}" for i in range(100) if one_in(f"o-{i}", 5))
    order = {"event_id": "e", "ts": 1_764_547_200_000, "order_id": oid, "status": "placed",
             "customer_id": "c", "lines": [{"sku": "A", "qty": 1, "unit_price": 9.9}]}  # fmt: skip
    (req,) = day.translate("shop.orders", "c", order)
    assert isinstance(req, Request) and req.system == "stripe"
    secret = s.stripe.webhook_secret.get_secret_value()
    first = req.headers_now()["Stripe-Signature"]
    now[0] += 600  # a retry ten minutes later, past the 5 min tolerance of the first signature
    again = req.headers_now()["Stripe-Signature"]
    assert first != again
    assert signatures.stripe(req.body, again, secret, now[0], 300) is None
    assert signatures.stripe(req.body, first, secret, now[0], 300) is not None
