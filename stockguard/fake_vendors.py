"""Local fakes of Klaviyo, Braze and Shoppingfeed that check each request as their docs say.

No machine here reaches a vendor, so the deliverers are tested against these. Each
request is checked for what the vendor's public reference requires (auth header,
`revision`, content type, body shape, batch limits) and refused with the vendor's own
error shape when wrong; accepted ones are kept for the test to read:

- Klaviyo (https://developers.klaviyo.com/en/reference/create_event, bulk_update_catalog_variants):
  202; an event repeating (profile, metric, `unique_id`) is accepted but not recorded
  again, as Klaviyo does; 100 variants a job at most.
- Braze (post_send_triggered_campaigns, post_user_track, patch_catalog_items_bulk): 201
  for sends and tracks, 202 for catalog edits; 50 recipients, 75 events, 50 items at
  most. Braze does not dedup: every accepted recipient is a message sent.
- Shoppingfeed (php-sdk InventoryUpdate): `PUT /v1/catalog/{id}/inventory`, 100
  references at most; `GET /v1/store/{id}/order` (php-sdk OrderDomain) pages the orders
  the test put in `shoppingfeed_orders` (or `POST /_fake/shoppingfeed/orders`), created
  at or after `since`, as HAL (`_embedded.order`, `page`, `pages`), 200 a page at most.

Faults for the tests: `fail_next(n, status, wait)` answers the next n requests with 429
(with `Retry-After` or `X-RateLimit-Wait`) or 5xx; `down(seconds)` answers 503 to all;
`delay` slows every answer; `reset_next(n)` drops the connection before answering.
Served by `stockguard fake-vendors` too, with `GET /_fake/state` to read what was taken.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

__all__ = ["FakeVendors", "fake_app", "serve_fakes"]

_ARRIVED = web.RequestKey("arrived", float)


@dataclass
class FakeVendors:
    """What the fakes accepted, and the faults they play."""

    klaviyo_key: str = "pk_test"
    klaviyo_revision: str = "2026-07-15"
    braze_key: str = "braze-test"
    shoppingfeed_token: str = "sf-test"  # noqa: S105 - a fake's test token
    delay: float = 0.0
    # Accepted, in arrival order.
    klaviyo_events: list[dict[str, Any]] = field(default_factory=list)
    klaviyo_stock: dict[str, int] = field(default_factory=dict)
    braze_sends: list[dict[str, Any]] = field(default_factory=list)
    braze_events: list[dict[str, Any]] = field(default_factory=list)
    braze_stock: dict[str, int] = field(default_factory=dict)
    shoppingfeed_stock: dict[str, int] = field(default_factory=dict)
    # The store's marketplace orders (php-sdk OrderResource fields), served by the order API.
    shoppingfeed_orders: list[dict[str, Any]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    # (system, trigger id, wall-clock time the request arrived) of every accepted Klaviyo
    # event and Braze recipient, repeats included: what a benchmark times and counts.
    arrivals: list[tuple[str, str, float]] = field(default_factory=list)
    _unique: set[tuple[str, str, str]] = field(default_factory=set)
    _fail: list[tuple[int, str | None, float]] = field(default_factory=list)
    _resets: int = 0
    _down_until: float = 0.0

    def fail_next(self, n: int, status: int, wait: float = 0.0, header: str | None = None) -> None:
        """Answer the next `n` requests with `status` (a 429 carries `header`: `wait`)."""
        self._fail.extend([(status, header, wait)] * n)

    def reset_next(self, n: int) -> None:
        """Drop the connection of the next `n` requests before they are handled."""
        self._resets += n

    def down(self, seconds: float) -> None:
        """Answer 503 to everything for `seconds`."""
        self._down_until = time.monotonic() + seconds

    def state(self) -> dict[str, Any]:
        """Return what was accepted (for `GET /_fake/state`)."""
        return {
            "klaviyo_events": self.klaviyo_events,
            "klaviyo_stock": self.klaviyo_stock,
            "braze_sends": self.braze_sends,
            "braze_events": self.braze_events,
            "braze_stock": self.braze_stock,
            "shoppingfeed_stock": self.shoppingfeed_stock,
            "requests": dict(self.requests),
            "refused": self.refused[-50:],
        }


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _need(cond: bool, detail: str, status: int = 400) -> None:
    if not cond:
        raise _Refused(status, detail)


def _obj(x: Any, detail: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise _Refused(400, detail)
    return x


def _items(x: Any, most: int, detail: str) -> list[Any]:
    if not isinstance(x, list) or not 0 < len(x) <= most:
        raise _Refused(400, detail)
    return x


async def _json(request: web.Request, content_type: str) -> Any:
    _need(request.headers.get("Content-Type", "").startswith(content_type), f"Content-Type must be {content_type}", 415)
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _Refused(400, "body is not JSON") from None


def fake_app(v: FakeVendors) -> web.Application:
    """Build the fakes' application (all three vendors on one port, by path)."""

    @web.middleware
    async def faults(request: web.Request, handler: Any) -> web.StreamResponse:
        request[_ARRIVED] = time.time()
        name = request.path.split("/")[1] if request.path.startswith("/_fake") else request.path
        v.requests[name] += 1
        if v._resets:
            v._resets -= 1
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if v.delay:
            await asyncio.sleep(v.delay)
        if time.monotonic() < v._down_until:
            return web.json_response({"errors": [{"detail": "down"}]}, status=503)
        if v._fail and not request.path.startswith("/_fake"):
            status, header, wait = v._fail.pop(0)
            headers = {header: f"{wait:g}"} if header else {}
            return web.json_response({"errors": [{"detail": "injected"}]}, status=status, headers=headers)
        try:
            resp: web.StreamResponse = await handler(request)
            return resp
        except _Refused as exc:
            v.refused.append(f"{request.path}: {exc.detail}")
            if request.path.startswith("/api/"):  # Klaviyo: JSON:API errors
                body: dict[str, Any] = {
                    "errors": [{"status": exc.status, "title": "Invalid input.", "detail": exc.detail}]
                }
            else:
                body = {"message": exc.detail, "errors": [exc.detail]}
            return web.json_response(body, status=exc.status)

    def klaviyo_auth(request: web.Request) -> None:
        _need(request.headers.get("Authorization") == f"Klaviyo-API-Key {v.klaviyo_key}", "bad API key", 401)
        _need(request.headers.get("revision") == v.klaviyo_revision, "revision header missing or wrong")

    async def klaviyo_event(request: web.Request) -> web.Response:
        klaviyo_auth(request)
        body = await _json(request, "application/vnd.api+json")
        data = _obj(_obj(body, "body must be an object").get("data"), "data is required")
        _need(data.get("type") == "event", "data.type must be event")
        a = _obj(data.get("attributes"), "data.attributes is required")
        _need(isinstance(a.get("properties"), dict), "attributes.properties is required")
        metric = ((a.get("metric") or {}).get("data") or {}).get("attributes") or {}
        _need(isinstance(metric.get("name"), str) and 0 < len(metric["name"]) < 128, "metric name is required")
        profile = ((a.get("profile") or {}).get("data") or {}).get("attributes") or {}
        _need(any(profile.get(k) for k in ("email", "phone_number", "external_id")), "profile needs an identifier")
        v.arrivals.append(("klaviyo", str(a["properties"].get("trigger_id")), request[_ARRIVED]))
        unique = str(a.get("unique_id") or a.get("time"))
        key = (str(profile.get("external_id")), metric["name"], unique)
        if key not in v._unique:  # Klaviyo records only the first of a repeated unique_id
            v._unique.add(key)
            v.klaviyo_events.append(a)
        return web.Response(status=202)

    async def klaviyo_variants(request: web.Request) -> web.Response:
        klaviyo_auth(request)
        body = await _json(request, "application/vnd.api+json")
        data = _obj(_obj(body, "body must be an object").get("data"), "data is required")
        _need(data.get("type") == "catalog-variant-bulk-update-job", "wrong data.type")
        variants = _items(
            (((data.get("attributes") or {}).get("variants")) or {}).get("data"), 100, "1 to 100 variants"
        )
        prefix = "$custom:::$default:::"
        for var in variants:
            _need(var.get("type") == "catalog-variant", "variant type must be catalog-variant")
            _need(
                str(var.get("id", "")).startswith(prefix),
                f"variant id must be {prefix}<id>",
            )
            attrs = var.get("attributes") or {}
            qty = attrs.get("inventory_quantity")
            _need(isinstance(qty, int) and qty >= 0, "inventory_quantity must be a number >= 0")
            _need(attrs.get("inventory_policy", 0) in (0, 1, 2), "inventory_policy must be 0, 1 or 2")
        for var in variants:
            v.klaviyo_stock[var["id"].removeprefix(prefix)] = var["attributes"]["inventory_quantity"]
        job = {
            "data": {
                "type": "catalog-variant-bulk-update-job",
                "id": uuid.uuid4().hex,
                "attributes": {"status": "queued"},
            }
        }
        return web.json_response(job, status=202, content_type="application/vnd.api+json")

    def braze_auth(request: web.Request) -> None:
        _need(request.headers.get("Authorization") == f"Bearer {v.braze_key}", "Invalid API key", 401)

    async def braze_send(request: web.Request) -> web.Response:
        braze_auth(request)
        body = await _json(request, "application/json")
        _need(isinstance(body, dict) and isinstance(body.get("campaign_id"), str), "campaign_id is required")
        recipients = body.get("recipients")
        _need(isinstance(recipients, list) and 0 < len(recipients) <= 50, "1 to 50 recipients")
        for r in recipients:
            _need(
                ("external_user_id" in r) != ("user_alias" in r), "each recipient needs external_user_id or user_alias"
            )
            _need(isinstance(r.get("trigger_properties", {}), dict), "trigger_properties must be an object")
        for r in recipients:
            v.braze_sends.append({"campaign_id": body["campaign_id"], **r})
            v.arrivals.append(("braze", str((r.get("trigger_properties") or {}).get("trigger_id")), request[_ARRIVED]))
        return web.json_response({"dispatch_id": uuid.uuid4().hex, "message": "success"}, status=201)

    async def braze_track(request: web.Request) -> web.Response:
        braze_auth(request)
        body = await _json(request, "application/json")
        events = _items(_obj(body, "body must be an object").get("events"), 75, "1 to 75 events")
        for e in events:
            _need(bool(e.get("external_id")) and isinstance(e.get("name"), str), "events need external_id and name")
            _need(isinstance(e.get("time"), str), "event time must be an ISO-8601 string")
        v.braze_events.extend(events)
        return web.json_response({"message": "success", "events_processed": len(events)}, status=201)

    async def braze_catalog(request: web.Request) -> web.Response:
        braze_auth(request)
        body = await _json(request, "application/json")
        items = _items(_obj(body, "body must be an object").get("items"), 50, "request-includes-too-many-items")
        for it in items:
            _need(isinstance(it.get("id"), str), "each item needs an id")
            _need(isinstance(it.get("inventory"), int), "inventory must be a number")
        for it in items:
            v.braze_stock[it["id"]] = it["inventory"]
        return web.json_response({"message": "success"}, status=202)

    async def shoppingfeed_inventory(request: web.Request) -> web.Response:
        _need(request.headers.get("Authorization") == f"Bearer {v.shoppingfeed_token}", "Unauthorized", 401)
        body = await _json(request, "application/json")
        rows = _items(_obj(body, "body must be an object").get("inventory"), 100, "1 to 100 inventory rows")
        for r in rows:
            _need(isinstance(r.get("reference"), str), "reference is required")
            _need(isinstance(r.get("quantity"), int) and r["quantity"] >= 0, "quantity must be an integer >= 0")
        for r in rows:
            v.shoppingfeed_stock[r["reference"]] = r["quantity"]
        return web.json_response({"_embedded": {"inventory": rows}}, status=200)

    async def shoppingfeed_order_list(request: web.Request) -> web.Response:
        _need(request.headers.get("Authorization") == f"Bearer {v.shoppingfeed_token}", "Unauthorized", 401)
        q = request.query
        try:
            page = int(q.get("page", "1"))
            limit = int(q.get("limit", "20"))
        except ValueError:
            raise _Refused(400, "page and limit must be integers") from None
        _need(page >= 1 and 1 <= limit <= 200, "page >= 1 and 1 <= limit <= 200")
        orders = v.shoppingfeed_orders
        if "since" in q:
            try:
                since = datetime.fromisoformat(q["since"])
            except ValueError:
                raise _Refused(400, "since must be an ISO-8601 date") from None
            _need(since.tzinfo is not None, "since needs a time zone")
            orders = [o for o in orders if datetime.fromisoformat(o["createdAt"]) >= since]
        pages = max(1, -(-len(orders) // limit))
        chunk = orders[(page - 1) * limit : page * limit]
        body = {
            "total": len(orders),
            "count": len(chunk),
            "page": page,
            "pages": pages,
            "limit": limit,
            "_links": {"self": {"href": str(request.rel_url)}},
            "_embedded": {"order": chunk},
        }
        return web.json_response(body, content_type="application/hal+json")

    async def add_orders(request: web.Request) -> web.Response:
        body = await _json(request, "application/json")
        v.shoppingfeed_orders.extend(_items(body, 10_000, "a list of orders"))
        return web.json_response({"orders": len(v.shoppingfeed_orders)})

    async def state(_request: web.Request) -> web.Response:
        return web.json_response(v.state())

    app = web.Application(middlewares=[faults])
    app.add_routes(
        [
            web.post("/api/events", klaviyo_event),
            web.post("/api/catalog-variant-bulk-update-jobs", klaviyo_variants),
            web.post("/campaigns/trigger/send", braze_send),
            web.post("/users/track", braze_track),
            web.patch("/catalogs/{name}/items", braze_catalog),
            web.put("/v1/catalog/{id}/inventory", shoppingfeed_inventory),
            web.get("/v1/store/{id}/order", shoppingfeed_order_list),
            web.post("/_fake/shoppingfeed/orders", add_orders),
            web.get("/_fake/state", state),
        ]
    )
    return app


def serve_fakes(host: str, port: int, delay_s: float = 0.0) -> None:
    """Serve the fakes until stopped (`stockguard fake-vendors`), with their test credentials."""
    web.run_app(fake_app(FakeVendors(delay=delay_s)), host=host, port=port, access_log=None, print=None)
