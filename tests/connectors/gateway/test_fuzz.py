"""Fuzzed bodies never crash the gateway: every answer is 200 or 400, every record valid.

Bodies are random JSON and the recorded vendor payloads with fields replaced or removed;
each is signed correctly, so it passes verification and reaches the parser and mapper.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockguard.state.models import checked_click, checked_order, checked_product, checked_stock, checked_trigger
from tests.connectors.gateway.harness import Harness, run, shopify_headers, stripe_headers, token_headers
from tests.state.vendors.fixtures import fixture

CHECK = {
    "shop.clickstream": checked_click,
    "inventory.stock": checked_stock,
    "shop.orders": checked_order,
    "catalog.products": checked_product,
    "marketing.triggers": checked_trigger,
}
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "2025-06-10T10:15:42+02:00", "19.90", "opt_in", "TEE-RED-M", "808950810"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
FIXTURES = {
    "shopify": [
        ("shopify_orders_create.json", "orders/create"),
        ("shopify_orders_cancelled.json", "orders/cancelled"),
        ("shopify_inventory_levels_update.json", "inventory_levels/update"),
        ("shopify_products_create.json", "products/create"),
    ],
    "stripe": [("stripe_checkout_session_completed.json", ""), ("stripe_checkout_session_expired.json", "")],
    "klaviyo": [("klaviyo_flow_webhook.json", "")],
    "braze": [("braze_webhook.json", "")],
    "ga4": [("ga4_mp_collect.json", "")],
}


def _paths(v: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*at, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*at, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, body: Any) -> Any:
    """A recorded payload with a few fields replaced by random JSON or removed."""
    body = copy.deepcopy(body)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(body) if p]
        if not paths:
            return draw(JSON)
        path = draw(st.sampled_from(paths))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return body


@st.composite
def webhook(draw: st.DrawFn) -> tuple[str, str, Any, Any]:
    """A system, its Shopify topic, a body and (for Stripe) a line-items answer."""
    system = draw(st.sampled_from(sorted(FIXTURES)))
    name, topic = draw(st.sampled_from(FIXTURES[system]))
    base = fixture(name)["body"]
    body = draw(mutated(base) | JSON) if draw(st.integers(0, 3)) else base
    listing = fixture("stripe_checkout_session_line_items.json")["body"]
    return system, topic, body, draw(mutated(listing) | JSON) if draw(st.booleans()) else listing


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(webhook(), st.booleans())
def test_fuzzed_bodies_never_crash_the_gateway_and_only_valid_records_are_produced(
    case: tuple[str, str, Any, Any], raw_bytes: bool
) -> None:
    system, topic, body, listing = case
    whole = json.dumps(body).encode()  # the stdlib writes integers past 64 bits too
    raw = whole if not raw_bytes else whole[: max(1, len(whole) // 2)]

    async def go() -> None:
        async with Harness() as h:

            async def line_items(_session: dict[str, Any]) -> Any:
                return listing

            h.gateway.line_items = line_items  # type: ignore[method-assign,assignment]
            if system == "shopify":
                # The sku map is known, so inventory levels reach their mapper.
                await h.store.learn_skus({"808950810": "TEE-RED-M"})
                headers = shopify_headers(raw, topic, "ev-fuzz")
                path = "/webhooks/shopify"
            elif system == "stripe":
                headers, path = stripe_headers(raw), "/webhooks/stripe"
            elif system == "ga4":
                headers, path = {"Content-Type": "application/json"}, "/ga4/mp/collect?api_secret=tok_test"
            else:
                headers, path = token_headers(), f"/webhooks/{system}"
            status, _headers, answer = await h.post(path, raw, headers)
            assert status in (200, 400), (status, answer)
            if status == 200:
                assert answer["status"] in ("accepted", "dead_lettered", "ignored"), answer
            for out_topic, _key, value in h.publisher.published:
                if out_topic == h.settings.topics.dlq:
                    assert orjson.loads(value)["topic"] == f"gateway:{system}"
                else:
                    CHECK[out_topic](orjson.loads(value))  # raises on a record the flow would refuse

    run(go)
