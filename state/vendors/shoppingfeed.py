"""Shoppingfeed marketplace orders to `shop.orders` messages, and the poller's cursor rules.

`GET /v1/store/{store_id}/order` (official SDK shoppingflux/php-sdk, `OrderDomain`) answers
a HAL page: `_embedded.order[]` with `id`, `reference`, `status`, `createdAt`,
`updatedAt`, `items[]` (`reference` = our sku, `quantity`, `price` per unit), and
`page`/`pages`. INTEGRATIONS.md: `order_id` `sf-{id}`; status `created` and `waiting_*`
→ placed, `cancelled` and `refused` → cancelled.

Choices where INTEGRATIONS.md is silent:
- `shipped` and `partially_shipped` are placed too: an order first seen once it shipped
  (the poller was down while it waited) still took its units. `refunded` and
  `partially_refunded` say nothing about stock, and unknown statuses neither: skipped.
- Each (order, outcome) is emitted once: `event_id` `sf-{id}-placed` / `sf-{id}-cancelled`.
  An order first seen cancelled is emitted only as cancelled (the stock book gives back
  nothing for an order it never charged).
- Marketplace orders carry no customer id of ours: `customer_id` is a hash of the billing
  email (so repeat buyers match), else of the order id; the email itself never leaves here.
- `ts`: `createdAt` for placed, `updatedAt` (else `createdAt`) for cancelled.
- The cursor is the newest `createdAt` seen (at first, the first poll's time); each poll
  asks `since` the cursor minus
  `shoppingfeed.poll_lookback`, so an order cancelled within that window after it was
  created is seen again with its new status, and orders that a page boundary shifted are
  read on the next poll. Older cancellations are not seen (documented limit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from stockguard.state.vendors.common import MappingError, Out, field, iso_ms, obj, stable_id, text, validate

__all__ = [
    "CANCELLED",
    "PLACED",
    "OrderPage",
    "order_message",
    "outcome",
    "page_of",
    "query",
    "to_emit",
]

PLACED: Final = "placed"
CANCELLED: Final = "cancelled"
_PLACED_STATUSES: Final = frozenset({"created", "shipped", "partially_shipped"})
_CANCELLED_STATUSES: Final = frozenset({"cancelled", "refused"})


class OrderPage(NamedTuple):
    """One page of orders, and how many pages there are."""

    orders: list[dict[str, Any]]
    page: int
    pages: int


def page_of(body: Any) -> OrderPage:
    """Read a HAL page of orders (an empty store answers no `_embedded`)."""
    b = obj(body, "body")
    emb = b.get("_embedded")
    orders: Any = [] if emb is None else obj(emb, "_embedded").get("order", [])
    if not isinstance(orders, list):
        raise MappingError("_embedded.order: expected an array")
    page, pages = b.get("page", 1), b.get("pages", 1)
    if type(page) is not int or type(pages) is not int:
        raise MappingError("page/pages: expected integers")
    return OrderPage([o for o in orders if isinstance(o, dict)], page, pages)


def outcome(order: dict[str, Any]) -> str | None:
    """Return what an order's status means for stock: placed, cancelled, or None (skip)."""
    status = order.get("status")
    if not isinstance(status, str):
        return None
    if status in _PLACED_STATUSES or status.startswith("waiting_"):
        return PLACED
    if status in _CANCELLED_STATUSES:
        return CANCELLED
    return None


def to_emit(now: str | None, seen: str | None) -> str | None:
    """Return the outcome to emit given what was emitted before for the order, if anything."""
    if now is None or now == seen or seen == CANCELLED:
        return None  # nothing new, or already cancelled (a cancelled order stays cancelled)
    return now


def _customer(order: dict[str, Any], oid: str) -> str:
    billing = order.get("billingAddress")
    email = billing.get("email") if isinstance(billing, dict) else None
    if isinstance(email, str) and "@" in email:
        return stable_id("sf-customer", email.strip().lower())
    return stable_id("sf-customer", "order", oid)


def order_message(order: dict[str, Any], status: str) -> Out:
    """Map an order to its `shop.orders` message for `status` (placed or cancelled)."""
    oid = text(field(order, "id", "order."))
    created = iso_ms(field(order, "createdAt", "order."), "order.createdAt")
    ts = created
    if status == CANCELLED and order.get("updatedAt"):
        ts = max(created, iso_ms(order["updatedAt"], "order.updatedAt"))
    items = order.get("items")
    if not isinstance(items, list) or not items:
        raise MappingError(f"order {oid}: no items")
    lines = []
    for i, raw in enumerate(items):
        item = obj(raw, f"order.items[{i}]")
        sku = item.get("reference")
        qty = item.get("quantity")
        price = item.get("price", 0)
        if not isinstance(sku, str) or not sku:
            raise MappingError(f"order {oid}: items[{i}].reference: missing")
        if type(qty) is not int or qty <= 0:
            raise MappingError(f"order {oid}: items[{i}].quantity: expected a positive integer")
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise MappingError(f"order {oid}: items[{i}].price: expected a number")
        lines.append({"sku": sku, "qty": qty, "unit_price": float(price)})
    order_id = f"sf-{oid}"
    value: dict[str, Any] = {
        "event_id": f"{order_id}-{status}",
        "ts": ts,
        "order_id": order_id,
        "status": status,
        "customer_id": _customer(order, oid),
        "lines": lines,
    }
    out = Out("orders", order_id, value)
    validate(out)
    return out


def query(cursor_ms: int, lookback_ms: int, page: int, limit: int) -> dict[str, str]:
    """Return the query of one page of orders created since the cursor minus the lookback."""
    since = datetime.fromtimestamp(max(0, cursor_ms - lookback_ms) / 1000, tz=UTC)
    return {"since": since.isoformat(timespec="seconds"), "page": str(page), "limit": str(limit)}
