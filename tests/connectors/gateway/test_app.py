"""The gateway's pipeline: verification first, limits, dead letters, dedup, 2xx only once acknowledged."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from stockguard.connectors.gateway.app import OPENAPI, build_app
from tests.connectors.gateway.harness import (
    NOW_S,
    TOKEN,
    Harness,
    run,
    settings,
    shopify_headers,
    stripe_headers,
    token_headers,
)

TOPICS = settings().topics
ORDER = {
    "id": 450789469,
    "created_at": "2025-12-01T10:00:00+01:00",
    "customer": {"id": 115310627314723954},
    "location_id": 905684977,
    "landing_site": "/products/tee?utm_campaign=cm-42&utm_source=email",
    "line_items": [
        {"sku": "TEE-RED-M", "quantity": 2, "price": "19.90"},
        {"sku": "", "quantity": 1, "price": "5.00"},
    ],
}
PRODUCT = {
    "id": 632910392,
    "product_type": "tee-basic",
    "status": "active",
    "published_at": "2025-11-01T00:00:00Z",
    "updated_at": "2025-12-01T08:00:00Z",
    "options": [{"name": "Color", "position": 1}, {"name": "Size", "position": 2}],
    "variants": [
        {"sku": "TEE-RED-M", "price": "19.90", "option1": "Red", "option2": "M", "inventory_item_id": 808950810},
        {"sku": "TEE-BLUE-M", "price": "19.90", "option1": "Blue", "option2": "M", "inventory_item_id": 808950811},
    ],
}
LEVEL = {"inventory_item_id": 808950810, "location_id": 905684977, "available": 7, "updated_at": "2025-12-01T09:00:00Z"}
TRIGGER = {"trigger_id": "t-1", "campaign_id": "cm-42", "kind": "cart_abandonment", "customer_id": "c-1", "skus": ["A"]}


def b(obj: Any) -> bytes:
    return orjson.dumps(obj)


def test_a_shopify_order_is_produced_once_and_its_retry_maps_to_nothing_new() -> None:
    async def go() -> None:
        async with Harness() as h:
            body = b(ORDER)
            status, _, answer = await h.post("/webhooks/shopify", body, shopify_headers(body, "orders/create", "ev-1"))
            assert (status, answer) == (200, {"status": "accepted", "records": 1})
            (msg,) = h.publisher.values(TOPICS.orders)
            assert msg["order_id"] == "shopify-450789469" and msg["customer_id"] == "115310627314723954"
            assert msg["campaign_id"] == "cm-42" and msg["ts"] == 1764579600000
            assert msg["lines"] == [{"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9, "location": "WH-PARIS"}]
            status, _, answer = await h.post("/webhooks/shopify", body, shopify_headers(body, "orders/create", "ev-1"))
            assert (status, answer) == (200, {"status": "duplicate", "records": 0})
            assert len(h.publisher.published) == 1

    run(go)


def test_verification_comes_first_and_refuses_with_401() -> None:
    async def go() -> None:
        async with Harness() as h:
            labels = {"outcome": "unauthorized", "system": "shopify"}
            before = REGISTRY.get_sample_value("stockguard_gateway_requests_total", labels) or 0.0
            body = b(ORDER)
            bad = shopify_headers(body, "orders/create", "ev-1", secret="wrong")
            assert (await h.post("/webhooks/shopify", body, bad))[0] == 401
            # Not even the content type or the JSON is looked at before the signature.
            junk = b"not json at all"
            assert (await h.post("/webhooks/shopify", junk, {"Content-Type": "text/plain"}))[0] == 401
            assert (await h.post("/webhooks/klaviyo", b(TRIGGER), token_headers("nope")))[0] == 401
            assert (await h.post("/webhooks/braze", b(TRIGGER), {"Content-Type": "application/json"}))[0] == 401
            assert (await h.post("/ga4/mp/collect?api_secret=nope", b"{}", {}))[0] == 401
            stale = stripe_headers(b"{}", t=int(NOW_S) - 301)
            assert (await h.post("/webhooks/stripe", b"{}", stale))[0] == 401
            assert h.publisher.published == []
            status, metrics = await h.get("/metrics")
            assert b'stockguard_gateway_requests_total{outcome="unauthorized",system="shopify"}' in metrics
            # Other tests in the session count on the same registry: compare, not absolute.
            assert REGISTRY.get_sample_value("stockguard_gateway_requests_total", labels) == before + 2

    run(go)


def test_limits_and_parse_errors_are_400_and_413_after_verification() -> None:
    async def go() -> None:
        s = settings(gateway={"max_body": 2_000, "state": "memory", "produce_timeout": 300})
        async with Harness(s) as h:
            cases = [
                (b"{not json", "application/json", 400),
                (b(ORDER), "text/plain", 400),
                (b"[" * 100 + b"]" * 100, "application/json", 400),
                (b(ORDER) + b" " * 3_000, "application/json", 413),
            ]
            for body, ctype, want in cases:
                headers = shopify_headers(body, "orders/create", "ev-x") | {"Content-Type": ctype}
                status, _, answer = await h.post("/webhooks/shopify", body, headers)
                assert status == want, (body[:20], answer)
            assert h.publisher.published == []

    run(go)


def test_unused_event_types_are_200_ignored_and_not_dead_lettered() -> None:
    async def go() -> None:
        async with Harness() as h:
            body = b({"id": 1})
            status, _, answer = await h.post("/webhooks/shopify", body, shopify_headers(body, "customers/create", "e"))
            assert (status, answer["status"]) == (200, "ignored")
            event = b({"id": "evt_9", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}})
            status, _, answer = await h.post("/webhooks/stripe", event, stripe_headers(event))
            assert (status, answer["status"]) == (200, "ignored")
            assert h.publisher.published == []

    run(go)


def test_a_level_before_its_product_is_dead_lettered_then_maps_once_the_sku_is_learned() -> None:
    async def go() -> None:
        async with Harness() as h:
            level = b(LEVEL)
            status, _, answer = await h.post(
                "/webhooks/shopify", level, shopify_headers(level, "inventory_levels/update", "lv-1")
            )
            assert (status, answer["status"]) == (200, "dead_lettered")
            (dead,) = h.publisher.values(TOPICS.dlq)
            assert dead["topic"] == "gateway:shopify" and dead["key"] == "shopify:lv-1"
            assert "inventory_item_id 808950810" in dead["error"] and orjson.loads(dead["raw"]) == LEVEL
            product = b(PRODUCT)
            await h.post("/webhooks/shopify", product, shopify_headers(product, "products/create", "pr-1"))
            assert [p["sku"] for p in h.publisher.values(TOPICS.products)] == ["TEE-RED-M", "TEE-BLUE-M"]
            assert h.publisher.values(TOPICS.products)[0]["size"] == "M"
            status, _, answer = await h.post(
                "/webhooks/shopify", level, shopify_headers(level, "inventory_levels/update", "lv-2")
            )
            assert answer["status"] == "accepted"
            (stock,) = h.publisher.values(TOPICS.stock)
            assert (stock["sku"], stock["location"], stock["on_hand"], stock["reserved"]) == (
                "TEE-RED-M",
                "WH-PARIS",
                7,
                0,
            )

    run(go)


def test_kafka_silent_is_503_and_a_retry_waits_for_the_first_attempt_instead_of_producing_again() -> None:
    async def go() -> None:
        async with Harness() as h:
            h.publisher.mode = "hold"
            body = b(TRIGGER)
            status, headers, _ = await h.post("/webhooks/klaviyo", body, token_headers())
            assert status == 503 and headers["Retry-After"] == "5"
            status, _, _ = await h.post("/webhooks/klaviyo", body, token_headers())
            assert status == 503
            assert len(h.publisher.held) == 1  # the retry produced nothing
            h.publisher.release(ok=True)  # Kafka came back: the first attempt's records land
            status, _, answer = await h.post("/webhooks/klaviyo", body, token_headers())
            assert (status, answer["status"]) == (200, "duplicate")
            assert len(h.publisher.values(TOPICS.triggers)) == 1

    run(go)


def test_records_kafka_refused_are_produced_again_by_the_retry() -> None:
    async def go() -> None:
        async with Harness() as h:
            h.publisher.mode = "hold"
            body = b(TRIGGER)
            assert (await h.post("/webhooks/braze", body, token_headers()))[0] == 503
            h.publisher.release(ok=False)  # librdkafka gave up on them
            h.publisher.mode = "ack"
            status, _, answer = await h.post("/webhooks/braze", body, token_headers())
            assert (status, answer["status"]) == (200, "accepted")
            assert len(h.publisher.values(TOPICS.triggers)) == 1

    run(go)


def test_an_outage_logs_one_not_taken_warning_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with Harness() as h:
            h.publisher.mode = "fail"
            for i in range(5):
                body = b(dict(TRIGGER, trigger_id=f"t-outage-{i}"))
                assert (await h.post("/webhooks/braze", body, token_headers()))[0] == 503

    with caplog.at_level(logging.WARNING, logger="stockguard.gateway"):
        run(go)
    warned = [r for r in caplog.records if r.getMessage() == "gateway records not taken by Kafka"]
    # A full pipe of these lines once blocked the event loop: one line, not five.
    assert len(warned) == 1
    assert getattr(warned[0], "sg_error", "") == "broker down"


def test_a_template_without_trigger_id_dedups_within_its_minute_and_an_unmappable_one_is_dead_lettered() -> None:
    async def go() -> None:
        async with Harness() as h:
            body = b({"campaign_id": "cm-42", "kind": "promotion", "email": "Ann@Example.com ", "skus": "A, B"})
            for _ in range(2):
                await h.post("/webhooks/klaviyo", body, token_headers())
            (msg,) = h.publisher.values(TOPICS.triggers)
            assert msg["customer_id"] == "ann@example.com" and msg["skus"] == ["A", "B"] and msg["consent"] is True
            assert msg["trigger_id"].startswith("klaviyo-") and msg["ts"] == int(NOW_S * 1000)
            bad = b({"campaign_id": "cm-42", "kind": "birthday", "customer_id": "c", "skus": ["A"]})
            status, _, answer = await h.post("/webhooks/klaviyo", bad, token_headers())
            assert (status, answer["status"]) == (200, "dead_lettered")
            (dead,) = h.publisher.values(TOPICS.dlq)
            assert dead["topic"] == "gateway:klaviyo" and "kind: unknown value 'birthday'" in dead["error"]

    run(go)


def test_ga4_fans_out_one_click_per_item_and_accepts_text_plain() -> None:
    async def go() -> None:
        async with Harness() as h:
            mp = {
                "client_id": "123.456",
                "user_id": "c-9",
                "timestamp_micros": 1764547200000000,
                "events": [
                    {
                        "name": "view_item",
                        "params": {"session_id": "s1", "items": [{"item_id": "A"}, {"item_id": "B"}]},
                    },
                    {"name": "page_view", "params": {}},
                ],
            }
            status, _, answer = await h.post(
                f"/ga4/mp/collect?api_secret={TOKEN}", b(mp), {"Content-Type": "text/plain"}
            )
            assert (status, answer) == (200, {"status": "accepted", "records": 2})
            clicks = h.publisher.values(TOPICS.clickstream)
            assert [(c["sku"], c["type"], c["session_id"], c["ts"]) for c in clicks] == [
                ("A", "product_view", "s1", 1764547200000),
                ("B", "product_view", "s1", 1764547200000),
            ]
            assert len({c["event_id"] for c in clicks}) == 2
            await h.post(f"/ga4/mp/collect?api_secret={TOKEN}", b(mp), {"Content-Type": "application/json"})
            assert len(h.publisher.values(TOPICS.clickstream)) == 2  # the same events: a duplicate

    run(go)


def fake_stripe(status: int = 200, items: list[dict[str, Any]] | None = None) -> web.Application:
    """A Stripe API that checks the request as Stripe documents it."""
    app = web.Application()

    async def line_items(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer sk_test"
        assert request.query.getall("expand[]") == ["data.price.product"]
        if status != 200:
            return web.json_response({"error": {"type": "api_error"}}, status=status)
        data = items or [
            {"id": "li_1", "quantity": 2, "price": {"unit_amount": 1990, "product": {"metadata": {"sku": "TEE-RED-M"}}}}
        ]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    app.router.add_get("/v1/checkout/sessions/{sid}/line_items", line_items)
    return app


def completed(sid: str = "cs_test_1") -> bytes:
    session = {"id": sid, "created": 1764547200, "metadata": {"customer_id": "c-7", "campaign_id": "cm-42"}}
    return b({"id": f"evt_{sid}", "type": "checkout.session.completed", "data": {"object": session}})


@pytest.mark.parametrize(
    ("status", "want", "outcome"), [(200, 200, "accepted"), (500, 503, None), (404, 200, "dead_lettered")]
)
def test_stripe_checkout_fetches_its_line_items(status: int, want: int, outcome: str | None) -> None:
    async def go() -> None:
        from aiohttp.test_utils import TestServer

        stripe_server = TestServer(fake_stripe(status))
        await stripe_server.start_server()
        try:
            async with Harness(stripe_base=str(stripe_server.make_url(""))) as h:
                body = completed()
                got, headers, answer = await h.post("/webhooks/stripe", body, stripe_headers(body))
                assert got == want
                if outcome is not None:
                    assert answer["status"] == outcome
                if outcome == "accepted":
                    (order,) = h.publisher.values(TOPICS.orders)
                    assert order["order_id"] == "cs_test_1" and order["ts"] == 1764547200000
                    assert order["lines"] == [{"sku": "TEE-RED-M", "qty": 2, "unit_price": 19.9}]
                    assert order["customer_id"] == "c-7" and order["campaign_id"] == "cm-42"
                if want == 503:
                    assert "Retry-After" in headers and h.publisher.published == []
        finally:
            await stripe_server.close()

    run(go)


def test_nothing_of_a_body_reaches_a_log(caplog: pytest.LogCaptureFixture) -> None:
    secret_customer = "cust-9f8e7d6c"

    async def go() -> None:
        async with Harness() as h:
            trig = b(TRIGGER | {"customer_id": secret_customer, "kind": "birthday"})
            await h.post("/webhooks/klaviyo", trig, token_headers())  # dead-lettered
            await h.post("/webhooks/klaviyo", trig, token_headers("wrong"))  # refused

    with caplog.at_level(logging.DEBUG):
        run(go)
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records and secret_customer not in text and TOKEN not in text


def test_every_route_is_in_the_openapi_document_and_the_document_is_served() -> None:
    doc = orjson.loads(OPENAPI.read_bytes())
    app = build_app(Harness().gateway)
    routes = {
        (r.resource.canonical, r.method.lower()) for r in app.router.routes() if r.method != "HEAD" and r.resource
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented

    async def go() -> None:
        async with Harness() as h:
            status, served = await h.get("/openapi.json")
            assert status == 200 and orjson.loads(served) == doc

    run(go)


def test_a_store_that_does_not_answer_is_503_never_a_500() -> None:
    async def failing(*_args: Any) -> Any:
        raise ConnectionError("redis is down")

    async def go() -> None:
        async with Harness() as h:
            h.store.skus_of = failing  # type: ignore[method-assign,assignment]
            h.store.claim = failing  # type: ignore[method-assign,assignment]
            body = b(LEVEL)
            status, headers, answer = await h.post(
                "/webhooks/shopify", body, shopify_headers(body, "inventory_levels/update", "ev-l")
            )
            assert (status, answer["error"]) == (503, "the sku map store does not answer")
            assert headers["Retry-After"] == "5"
            body = b(TRIGGER)
            status, headers, answer = await h.post("/webhooks/klaviyo", body, token_headers())
            assert (status, answer["error"]) == (503, "the dedup store does not answer")
            assert h.publisher.published == []

    run(go)


def test_the_send_time_check_answers_the_newest_decision_behind_a_token() -> None:
    from stockguard.config.settings import SecretStr
    from stockguard.state.sendtime import record_of

    async def go() -> None:
        async with Harness(settings(gateway={"api_token": SecretStr("check-token"), "state": "memory"})) as h:
            ok = {"X-Stockguard-Token": "check-token"}
            approved = record_of("approved", {"trigger_id": "t-1", "decision": "send", "skus": ["A"]})
            assert approved is not None
            h.store.decisions["t-1"] = {k.encode(): v.encode() for k, v in approved[1].items()}
            assert await h.get_json("/v1/triggers/t-1", ok) == (
                200,
                {"trigger_id": "t-1", "decision": "send", "skus": ["A"], "reason": None},
            )
            # The retraction overwrites the approval in Redis: the check says so.
            retracted = record_of("retracted", {"trigger_id": "t-1", "sku": "A", "reason": "out_of_stock"})
            assert retracted is not None
            h.store.decisions["t-1"] = dict(retracted[1])
            status, answer = await h.get_json("/v1/triggers/t-1", ok)
            assert (status, answer["decision"], answer["reason"]) == (200, "retracted", "out_of_stock")
            # Never decided (or expired): unknown, which must not be sent.
            assert (await h.get_json("/v1/triggers/t-404", ok))[1]["decision"] == "unknown"
            # Wrong or missing token: 401, and nothing is read.
            assert (await h.get_json("/v1/triggers/t-1", {"X-Stockguard-Token": "nope"}))[0] == 401
            assert (await h.get_json("/v1/triggers/t-1", {}))[0] == 401
            # The sku row: numbers as numbers; 404 when the read model has none.
            h.store.sku_rows["A"] = {b"atp": b"3", b"available": b"1", b"known": b"1", b"loc:WH-PARIS": b"3"}
            status, row = await h.get_json("/v1/skus/A", ok)
            assert (status, row["atp"], row["available"], row["locations"]) == (200, 3, True, {"WH-PARIS": 3})
            assert (await h.get_json("/v1/skus/B", ok))[0] == 404

    run(go)


def test_without_an_api_token_the_send_time_check_refuses_everyone() -> None:
    async def go() -> None:
        async with Harness() as h:
            status, answer = await h.get_json("/v1/triggers/t-1", {"X-Stockguard-Token": ""})
            assert status == 401 and "gateway.api_token" in answer["error"]

    run(go)
