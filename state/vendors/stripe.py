"""Stripe events to contract messages: completed checkouts are orders, expired ones triggers.

https://docs.stripe.com/api/events/object, https://docs.stripe.com/api/checkout/sessions/object
and https://docs.stripe.com/api/checkout/sessions/line_items. A Checkout Session event
carries no line items: the gateway fetches them (expanded with their products) and hands
the list to these functions. Stripe's times are epoch seconds. Choices where
INTEGRATIONS.md is silent: a session with neither `metadata.customer_id` nor `customer`
(a guest) is `stripe-guest-{session id}`; a line whose product has no `metadata.sku` and
whose price no `lookup_key` cannot be counted against stock, so it dead-letters the event.
"""

from __future__ import annotations

from typing import Any, Final

from stockguard.state.vendors.common import MappingError, Out, field, obj, text

__all__ = [
    "COMPLETED",
    "EXPIRED",
    "Line",
    "abandoned_cart",
    "checkout_order",
    "event_session",
    "line_items",
    "needs_line_items",
]

COMPLETED: Final = "checkout.session.completed"
EXPIRED: Final = "checkout.session.expired"

# (sku, quantity, unit price in the currency's main unit)
Line = tuple[str, int, float]


def event_session(event: Any) -> tuple[str, str, dict[str, Any]]:
    """Return an event's (id, type, data.object)."""
    e = obj(event, "body")
    data = obj(field(e, "data"), "data")
    return text(field(e, "id")), str(field(e, "type")), obj(field(data, "object"), "data.object")


def line_items(listing: Any) -> list[Line]:
    """Read the line items list (expanded `data.price.product`) into (sku, qty, unit price)."""
    lst = obj(listing, "line_items")
    data = lst.get("data")
    if not isinstance(data, list):
        raise MappingError("line_items.data: expected an array")
    out = []
    for i, raw in enumerate(data):
        item = obj(raw, f"line_items.data[{i}]")
        price = obj(field(item, "price", f"line_items.data[{i}]."), f"line_items.data[{i}].price")
        product = price.get("product")
        meta = product.get("metadata") if isinstance(product, dict) else None
        sku = meta.get("sku") if isinstance(meta, dict) else None
        sku = sku or price.get("lookup_key")
        if not isinstance(sku, str) or not sku:
            raise MappingError(f"line_items.data[{i}]: no sku (price.product.metadata.sku or price.lookup_key)")
        qty = item.get("quantity")
        amount = price.get("unit_amount")
        if type(qty) is not int or type(amount) is not int:
            raise MappingError(f"line_items.data[{i}]: expected integer quantity and price.unit_amount")
        out.append((sku, qty, amount / 100))
    if not out:
        raise MappingError("line_items: the session has no line")
    return out


def _customer(session: dict[str, Any]) -> str:
    meta = session.get("metadata")
    if isinstance(meta, dict) and meta.get("customer_id"):
        return text(meta["customer_id"])
    if session.get("customer"):
        return text(session["customer"])
    return f"stripe-guest-{text(field(session, 'id'))}"


def _created_ms(session: dict[str, Any]) -> int:
    created = session.get("created")
    if type(created) is not int:
        raise MappingError("data.object.created: expected epoch seconds")
    return created * 1000


def checkout_order(event_id: str, session: dict[str, Any], lines: list[Line]) -> Out:
    """Map `checkout.session.completed` to a placed `shop.orders` message."""
    sid = text(field(session, "id"))
    msg: dict[str, Any] = {
        "event_id": f"stripe-{event_id}",
        "ts": _created_ms(session),
        "order_id": sid,
        "status": "placed",
        "customer_id": _customer(session),
        "lines": [{"sku": sku, "qty": qty, "unit_price": price} for sku, qty, price in lines],
    }
    meta = session.get("metadata")
    if isinstance(meta, dict) and meta.get("campaign_id"):
        msg["campaign_id"] = str(meta["campaign_id"])
    return Out("orders", sid, msg)


def abandoned_cart(session: dict[str, Any], lines: list[Line], campaign: str) -> Out | None:
    """Map `checkout.session.expired` to a cart-abandonment trigger, if promotions were opted in."""
    consent = session.get("consent")
    if not isinstance(consent, dict) or consent.get("promotions") != "opt_in":
        return None
    sid = text(field(session, "id"))
    cid = _customer(session)
    msg = {
        "trigger_id": f"stripe-{sid}",
        # When the cart was left: the session's expires_at, else when it was created.
        "ts": session["expires_at"] * 1000 if type(session.get("expires_at")) is int else _created_ms(session),
        "campaign_id": campaign,
        "customer_id": cid,
        "kind": "cart_abandonment",
        "channel": "email",
        "skus": list(dict.fromkeys(sku for sku, _q, _p in lines)),
        "consent": True,
    }
    return Out("triggers", cid, msg)


def needs_line_items(event_type: str, session: dict[str, Any]) -> bool:
    """Tell whether an event maps to anything, so its line items are worth fetching."""
    if event_type == COMPLETED:
        return True
    consent = session.get("consent")
    return event_type == EXPIRED and isinstance(consent, dict) and consent.get("promotions") == "opt_in"
