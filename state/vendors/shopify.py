"""Shopify webhooks to contract messages: orders, inventory levels, products.

https://shopify.dev/docs/apps/build/webhooks and the REST resources the payloads are
(Order, InventoryLevel, Product). Choices where INTEGRATIONS.md is silent:

- An order without a customer (a guest checkout) gets `customer_id` `shopify-guest-{id}`:
  its units still move stock, and no other order shares the id.
- `orders/cancelled` takes its `ts` from `cancelled_at` (the event), else `updated_at`.
- A line item without a sku (a custom item) is left out; an order left with no line is
  dead-lettered. A `location_id` not in `shopify.locations` leaves the lines without a
  location (they count against the location with the highest ATP).
- `inventory_levels/update` for a location not in `shopify.locations` names the location
  by its Shopify id; `available` below zero (oversold) is `on_hand` 0 and `reserved`
  -available, so ATP is the same.
- A variant without a sku is left out of the catalog; the catalog has no unit cost in
  these webhooks (Shopify keeps it on the inventory item): `unit_cost` is 0, so
  substitutes rank by price. `group` is `product_type`, else the product id; `size` is
  the `shopify.size_option` option's value, else `one-size`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stockguard.state.vendors.common import MappingError, Out, field, iso_ms, obj, text

__all__ = ["ORDER_TOPICS", "inventory_items", "inventory_level", "order", "products"]

ORDER_TOPICS = ("orders/create", "orders/cancelled")


def _event_id(event_id: str) -> str:
    return f"shopify-{event_id}"


def _campaign(landing_site: Any) -> str | None:
    """Return `utm_campaign` of the landing page's query string, if any."""
    if not isinstance(landing_site, str) or "utm_campaign" not in landing_site:
        return None
    values = parse_qs(urlsplit(landing_site).query).get("utm_campaign")
    return values[0] if values and values[0] else None


def _price(v: Any, where: str) -> float:
    try:
        return float(v)  # Shopify sends prices as strings
    except (TypeError, ValueError):
        raise MappingError(f"{where}: expected a price") from None


def order(body: Any, topic: str, locations: Mapping[str, str], event_id: str) -> Out:
    """Map `orders/create` (placed) and `orders/cancelled` to a `shop.orders` message."""
    d = obj(body, "body")
    oid = text(field(d, "id"))
    cancelled = topic == "orders/cancelled"
    if cancelled:
        ts = iso_ms(d.get("cancelled_at") or field(d, "updated_at"), "cancelled_at")
    else:
        ts = iso_ms(field(d, "created_at"), "created_at")
    customer = d.get("customer")
    cid = text(customer["id"]) if isinstance(customer, dict) and customer.get("id") else f"shopify-guest-{oid}"
    loc_id = d.get("location_id")
    location = locations.get(str(loc_id)) if loc_id is not None else None
    items = d.get("line_items")
    if not isinstance(items, list):
        raise MappingError("line_items: expected an array")
    lines = []
    for i, raw in enumerate(items):
        li = obj(raw, f"line_items[{i}]")
        sku = li.get("sku")
        if not isinstance(sku, str) or not sku:
            continue  # a custom item: nothing in stock to count
        line: dict[str, Any] = {
            "sku": sku,
            "qty": field(li, "quantity", f"line_items[{i}]."),
            "unit_price": _price(li.get("price"), f"line_items[{i}].price"),
        }
        if location is not None:
            line["location"] = location
        lines.append(line)
    if not lines:
        raise MappingError("line_items: no line with a sku")
    msg: dict[str, Any] = {
        "event_id": _event_id(event_id),
        "ts": ts,
        "order_id": f"shopify-{oid}",
        "status": "cancelled" if cancelled else "placed",
        "customer_id": cid,
        "lines": lines,
    }
    campaign = _campaign(d.get("landing_site"))
    if campaign is not None:
        msg["campaign_id"] = campaign
    return Out("orders", msg["order_id"], msg)


def inventory_level(body: Any, sku_of: Mapping[str, str], locations: Mapping[str, str], event_id: str) -> Out:
    """Map `inventory_levels/update` to an `inventory.stock` level, via the learned sku map."""
    d = obj(body, "body")
    item = text(field(d, "inventory_item_id"))
    sku = sku_of.get(item)
    if sku is None:
        raise MappingError(f"inventory_item_id {item}: no sku known for it (learned from products/create|update)")
    loc_id = text(field(d, "location_id"))
    available = d.get("available")
    if type(available) is not int:
        raise MappingError("available: expected an integer")
    msg = {
        "event_id": _event_id(event_id),
        "ts": iso_ms(field(d, "updated_at"), "updated_at"),
        "type": "level",
        "sku": sku,
        "location": locations.get(loc_id, loc_id),
        "on_hand": max(0, available),
        "reserved": max(0, -available),
    }
    return Out("stock", sku, msg)


def _variants(d: dict[str, Any]) -> list[dict[str, Any]]:
    variants = d.get("variants")
    if not isinstance(variants, list):
        raise MappingError("variants: expected an array")
    return [obj(v, f"variants[{i}]") for i, v in enumerate(variants)]


def inventory_items(body: Any) -> dict[str, str]:
    """Return the product's `inventory_item_id -> sku` pairs, to map later inventory levels."""
    d = obj(body, "body")
    out = {}
    for v in _variants(d):
        sku, item = v.get("sku"), v.get("inventory_item_id")
        if isinstance(sku, str) and sku and item is not None and not isinstance(item, bool):
            out[str(item)] = sku
    return out


def products(body: Any, size_option: str) -> list[Out]:
    """Map `products/create|update` to one `catalog.products` message per variant with a sku."""
    d = obj(body, "body")
    pid = text(field(d, "id"))
    ts = iso_ms(field(d, "updated_at"), "updated_at")
    position = None
    options = d.get("options")
    if isinstance(options, list):
        for opt in options:
            if isinstance(opt, dict) and str(opt.get("name", "")).lower() == size_option.lower():
                position = opt.get("position")
    group = d.get("product_type") or pid
    out = []
    for i, v in enumerate(_variants(d)):
        sku = v.get("sku")
        if not isinstance(sku, str) or not sku:
            continue
        size = v.get(f"option{position}") if isinstance(position, int) else None
        msg = {
            "sku": sku,
            "ts": ts,
            "product_id": pid,
            "group": str(group),
            "size": str(size) if size else "one-size",
            "price": _price(v.get("price"), f"variants[{i}].price"),
            "unit_cost": 0.0,
            "active": d.get("status", "active") == "active",
            "online": d.get("published_at") is not None,
        }
        out.append(Out("products", sku, msg))
    if not out:
        raise MappingError("variants: no variant with a sku")
    return out
