"""The simulated day as the shop's own systems would send it: signed vendor webhooks.

`WebhookDay` turns the simulator's contract messages into the requests Shopify, Stripe,
Klaviyo, Braze and GA4 would make, so the demo and the load generator drive the whole
path through `stockguard gateway`:

| simulated message | sent as |
|---|---|
| the catalog snapshot | Shopify `products/create`, one per product with its variants |
| stock `level` / `adjustment` | Shopify `inventory_levels/update` (`available` = on hand - reserved) |
| order placed | Shopify `orders/create`, or one in five a Stripe `checkout.session.completed` |
| order cancelled | Shopify `orders/cancelled` (a Stripe checkout cannot be cancelled: skipped, counted) |
| trigger | a Klaviyo flow webhook, or one in four a Braze webhook (our template) |
| click | a GA4 Measurement Protocol request, one event |
| campaign | not a webhook: our own `marketing.campaigns` message, passed through |
| a malformed line | a Shopify webhook signed with the wrong key (the gateway answers 401) |

Ids the vendors give as numbers (Shopify locations, inventory items) are drawn from the
simulation's names, and `shopify_locations` gives the gateway the table that maps them
back. Shopify has no unit cost in these webhooks, so the catalog the gateway maps has
`unit_cost` 0 (substitutes rank by price): the decisions of the day differ from the
direct demo's, as they would for a shop on Shopify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from stockguard.config.settings import Settings
from stockguard.state.models import ContractError, checked_click, checked_order, checked_stock, checked_trigger
from stockguard.state.vendors.ga4 import CLICKS

__all__ = ["Passthrough", "Request", "WebhookDay", "one_in", "shopify_locations"]

TOKEN_HEADER: Final = "X-Stockguard-Token"  # noqa: S105 - a header name
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_LOCATION_ID: Final = 905684977
_FIRST_ITEM_ID: Final = 808950810
_GA4_NAMES: Final = {ours: theirs for theirs, ours in CLICKS.items()}
_CHECK: Final[dict[str, Callable[[Any], object]]] = {
    "shop.clickstream": checked_click,
    "inventory.stock": checked_stock,
    "shop.orders": checked_order,
    "marketing.triggers": checked_trigger,
}


@dataclass(frozen=True)
class Passthrough:
    """A simulated message no vendor sends (campaigns): produced as it is."""

    topic: str
    key: str | None
    value: Any
    ts: int


@dataclass(frozen=True)
class Request:
    """One webhook: where it goes, its headers and raw body, and the event time it stands for."""

    system: str
    path: str
    headers: dict[str, str]
    body: bytes
    ts: int
    barrier: bool = False  # wait until it (and all before it) is answered before the next
    # Headers made when the request is sent, each attempt anew (Stripe signs every retry
    # with its own timestamp, which must fall within the receiver's tolerance).
    sign: Callable[[bytes], dict[str, str]] | None = None

    def headers_now(self) -> dict[str, str]:
        """Return the headers to send now, signed now when the vendor signs each attempt."""
        return self.headers if self.sign is None else {**self.headers, **self.sign(self.body)}


def shopify_locations(locations: tuple[str, ...]) -> dict[str, str]:
    """Return the `shopify.locations` table for the simulated locations."""
    return {str(_FIRST_LOCATION_ID + i): loc for i, loc in enumerate(locations)}


def _iso(ts: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts)).isoformat(timespec="milliseconds")


def one_in(key: str, n: int) -> bool:
    """Tell whether `key` falls in the one-in-`n` share (stable across runs)."""
    return hashlib.blake2b(key.encode(), digest_size=4).digest()[0] % n == 0


@dataclass
class WebhookDay:
    """Translate simulated messages into signed vendor requests (stateful: levels, products)."""

    settings: Settings
    locations: tuple[str, ...]
    clock_s: Callable[[], float]
    line_items: dict[str, dict[str, Any]] = field(default_factory=dict)  # session id -> Stripe list
    skipped: dict[str, int] = field(default_factory=dict)
    _loc_ids: dict[str, int] = field(default_factory=dict)
    _item_ids: dict[str, int] = field(default_factory=dict)
    _available: dict[tuple[str, str], int] = field(default_factory=dict)
    _stripe_orders: set[str] = field(default_factory=set)
    _products: dict[tuple[str, bool, bool], list[dict[str, Any]]] = field(default_factory=dict)
    _n: int = 0

    def __post_init__(self) -> None:
        self._loc_ids = {loc: int(i) for i, loc in shopify_locations(self.locations).items()}

    # ---- signing, as each vendor does ----

    def _event_id(self) -> str:
        self._n += 1
        return f"sim-{self._n:09d}"

    def _shopify(self, topic: str, body: dict[str, Any], ts: int, secret: str | None = None) -> Request:
        raw = orjson.dumps(body)
        key = secret if secret is not None else self.settings.shopify.webhook_secret.get_secret_value()
        digest = base64.b64encode(hmac.new(key.encode(), raw, hashlib.sha256).digest()).decode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": digest,
            "X-Shopify-Shop-Domain": "stockguard-demo.myshopify.com",
            "X-Shopify-API-Version": "2025-07",
            "X-Shopify-Event-Id": self._event_id(),
            "X-Shopify-Triggered-At": _iso(ts),
        }
        return Request("shopify", "/webhooks/shopify", headers, raw, ts, barrier=topic.startswith("products/"))

    def _stripe(self, body: dict[str, Any], ts: int) -> Request:
        headers = {"Content-Type": "application/json"}
        return Request("stripe", "/webhooks/stripe", headers, orjson.dumps(body), ts, sign=self._stripe_signature)

    def _stripe_signature(self, raw: bytes) -> dict[str, str]:
        t = int(self.clock_s())
        secret = self.settings.stripe.webhook_secret.get_secret_value().encode()
        v1 = hmac.new(secret, f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={t},v1={v1}"}

    def _template(self, system: str, body: dict[str, Any], ts: int) -> Request:
        cfg = self.settings.klaviyo if system == "klaviyo" else self.settings.braze
        headers = {"Content-Type": "application/json", TOKEN_HEADER: cfg.webhook_token.get_secret_value()}
        return Request(system, f"/webhooks/{system}", headers, orjson.dumps(body), ts)

    def _ga4(self, body: dict[str, Any], ts: int) -> Request:
        secret = self.settings.ga4.api_secret.get_secret_value()
        path = f"/ga4/mp/collect?measurement_id=G-STOCKGUARD&api_secret={secret}"
        return Request("ga4", path, {"Content-Type": "application/json"}, orjson.dumps(body), ts)

    # ---- the day ----

    def translate(self, topic: str, key: str | None, value: Any) -> Iterator[Request | Passthrough]:
        """Yield what the shop's systems would send for one simulated message."""
        if topic != "catalog.products" and self._products:
            yield from self._flush_products()
        if topic == "marketing.campaigns":
            yield Passthrough(topic, key, value, value.get("ts", 0) if isinstance(value, dict) else 0)
            return
        if topic == "catalog.products" and isinstance(value, dict) and isinstance(value.get("product_id"), str):
            # Shopify publishes a product, not a variant: variants the simulation hides
            # (or retires) on their own are sent as a product of their own, same id.
            group = (value["product_id"], bool(value.get("active", True)), bool(value.get("online", True)))
            self._products.setdefault(group, []).append(value)
            return
        check = _CHECK.get(topic)
        try:
            if check is None or not isinstance(value, dict):
                raise ContractError("value", "not a contract message")
            check(value)
        except ContractError:
            yield self._forged(value)
            return
        if topic == "inventory.stock":
            yield self._level(value)
        elif topic == "shop.orders":
            yield from self._order(value)
        elif topic == "marketing.triggers":
            system = "braze" if one_in(value["trigger_id"], 4) else "klaviyo"
            body = {k: value[k] for k in ("trigger_id", "campaign_id", "kind", "customer_id", "skus")}
            body["channel"] = value.get("channel") or "email"
            body["consent"] = value.get("consent", True)
            yield self._template(system, body, value["ts"])
        else:
            yield self._click(value)

    def finish(self) -> Iterator[Request]:
        """Yield what is still buffered (a catalog at the very end of the day)."""
        yield from self._flush_products()

    def _forged(self, value: Any) -> Request:
        """A malformed line: sent under a wrong key, as a forger would."""
        body = {"malformed": value if isinstance(value, dict | list) else str(value)[:200]}
        return self._shopify("orders/create", body, 0, secret="not-the-secret")  # noqa: S106

    def _flush_products(self) -> Iterator[Request]:
        products, self._products = self._products, {}
        for (pid, active, online), variants in products.items():
            first = variants[0]
            variants_out = []
            for v in variants:
                item = self._item_ids.setdefault(v["sku"], _FIRST_ITEM_ID + len(self._item_ids))
                variants_out.append(
                    {"sku": v["sku"], "price": f"{v['price']:.2f}", "option1": v["size"], "inventory_item_id": item}
                )
            ts = max(v["ts"] for v in variants)
            body = {
                "id": pid,
                "title": pid,
                "product_type": first["group"],
                "status": "active" if active else "draft",
                "published_at": _iso(ts) if online else None,
                "updated_at": _iso(ts),
                "options": [{"name": self.settings.shopify.size_option, "position": 1}],
                "variants": variants_out,
            }
            yield self._shopify("products/create", body, ts)

    def _level(self, value: dict[str, Any]) -> Request:
        where = (value["sku"], value["location"])
        if value["type"] == "level":
            available = value["on_hand"] - value["reserved"]
        else:
            available = self._available.get(where, 0) + value["delta"]
        self._available[where] = available
        body = {
            "inventory_item_id": self._item_ids.setdefault(value["sku"], _FIRST_ITEM_ID + len(self._item_ids)),
            "location_id": self._loc_ids.get(value["location"], _FIRST_LOCATION_ID + 1000),
            "available": available,
            "updated_at": _iso(value["ts"]),
        }
        return self._shopify("inventory_levels/update", body, value["ts"])

    def _order(self, value: dict[str, Any]) -> Iterator[Request]:
        oid = value["order_id"]
        placed = value["status"] == "placed"
        locations = {ln.get("location") for ln in value["lines"]}
        if placed and locations == {None} and one_in(oid, 5):
            yield self._checkout(value)
            return
        if not placed and oid in self._stripe_orders:
            self.skipped["stripe_cancellation"] = self.skipped.get("stripe_cancellation", 0) + 1
            return
        (only,) = locations if len(locations) == 1 else (None,)
        body: dict[str, Any] = {
            "id": oid,
            "created_at": _iso(value["ts"]),
            "updated_at": _iso(value["ts"]),
            "customer": {"id": value["customer_id"]},
            "location_id": self._loc_ids.get(only) if only is not None else None,
            "landing_site": f"/?utm_campaign={value['campaign_id']}&utm_source=email"
            if value.get("campaign_id")
            else "/",
            "line_items": [
                {"sku": ln["sku"], "quantity": ln["qty"], "price": f"{ln['unit_price']:.2f}"} for ln in value["lines"]
            ],
        }
        if not placed:
            body["cancelled_at"] = _iso(value["ts"])
        yield self._shopify("orders/create" if placed else "orders/cancelled", body, value["ts"])

    def _checkout(self, value: dict[str, Any]) -> Request:
        sid = f"cs_sim_{value['order_id']}"
        self._stripe_orders.add(value["order_id"])
        self.line_items[sid] = {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "id": f"li_{sid}_{i}",
                    "object": "item",
                    "quantity": ln["qty"],
                    "price": {
                        "unit_amount": round(ln["unit_price"] * 100),
                        "lookup_key": None,
                        "product": {"object": "product", "metadata": {"sku": ln["sku"]}},
                    },
                }
                for i, ln in enumerate(value["lines"])
            ],
        }
        metadata = {"customer_id": value["customer_id"]}
        if value.get("campaign_id"):
            metadata["campaign_id"] = value["campaign_id"]
        session = {
            "id": sid,
            "object": "checkout.session",
            "created": value["ts"] // 1000,
            "customer": None,
            "metadata": metadata,
            "status": "complete",
        }
        event = {
            "id": f"evt_{sid}",
            "object": "event",
            "type": "checkout.session.completed",
            "created": value["ts"] // 1000,
            "data": {"object": session},
        }
        return self._stripe(event, value["ts"])

    def _click(self, value: dict[str, Any]) -> Request:
        params: dict[str, Any] = {"session_id": value["session_id"]}
        if value.get("sku") is not None:
            params["items"] = [{"item_id": value["sku"], "quantity": value.get("qty", 1)}]
        body = {
            "client_id": value["customer_id"],
            "user_id": value["customer_id"],
            "timestamp_micros": value["ts"] * 1000,
            "events": [{"name": _GA4_NAMES[value["type"]], "params": params}],
        }
        return self._ga4(body, value["ts"])
