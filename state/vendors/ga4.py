"""GA4 events to contract messages: Measurement Protocol requests and BigQuery export rows.

https://developers.google.com/analytics/devguides/collection/protocols/ga4/sending-events,
https://developers.google.com/analytics/devguides/collection/ga4/reference/events and the
export schema https://support.google.com/analytics/answer/7029846. GA4 times are epoch
microseconds; BigQuery writes INT64 columns to JSON lines as strings, so numbers are read
from either. One clickstream event per item; `purchase` is a placed order. GA4 has no
event id: one is synthesized from (user, timestamp, event name, item index), so the same
event mapped twice has the same id. Choices where INTEGRATIONS.md is silent:

- an event without a session id (`session_id`, `ga_session_id`) gets the client id: the
  contract requires one, and a client's hits belong together;
- `search` has no items: one search event without a sku; a click event without items maps
  to nothing (counted as skipped, like the event names we do not use);
- an item without the sku field (`ga4.sku_field`) dead-letters its event;
- a purchase line without `price` has `unit_price` 0 (stock does not need it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, NamedTuple

from stockguard.state.vendors.common import MappingError, Out, obj, stable_id, text

__all__ = ["CLICKS", "Mapped", "collect", "export_row"]

# GA4 event name -> our click type.
CLICKS: Final = {
    "view_item": "product_view",
    "add_to_cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "add_to_wishlist": "wishlist",
    "search": "search",
}


class Mapped(NamedTuple):
    """What a GA4 request or row mapped to: messages, and events skipped as unused."""

    outs: list[Out]
    skipped: int


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool):
        raise MappingError(f"{where}: expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.lstrip("-").isdigit():
        return int(v)
    raise MappingError(f"{where}: expected an integer")


def _micros_ms(v: Any, where: str) -> int:
    return _int(v, where) // 1000


def _qty(item: dict[str, Any], where: str) -> int:
    q = item.get("quantity")
    if q is None:
        return 1
    qty = _int(q, f"{where}.quantity")
    if qty < 1:
        raise MappingError(f"{where}.quantity: expected a positive integer")
    return qty


def _event(
    name: str,
    items: list[Any],
    ts: int,
    cid: str,
    session: str,
    transaction: Any,
    sku_field: str,
) -> Iterator[Out]:
    """Map one GA4 event (any source) to our messages."""
    if name == "purchase":
        if transaction in (None, ""):
            raise MappingError("purchase: no transaction_id")
        oid = text(transaction)
        lines = []
        for i, raw in enumerate(items):
            item = obj(raw, f"items[{i}]")
            sku = item.get(sku_field)
            if sku in (None, ""):
                raise MappingError(f"items[{i}].{sku_field}: missing")
            price = item.get("price")
            lines.append(
                {
                    "sku": text(sku),
                    "qty": _qty(item, f"items[{i}]"),
                    "unit_price": float(price) if isinstance(price, int | float | str) and price != "" else 0.0,
                }
            )
        if not lines:
            raise MappingError("purchase: no items")
        msg = {
            "event_id": stable_id("ga4", cid, ts, name, 0),
            "ts": ts,
            "order_id": oid,
            "status": "placed",
            "customer_id": cid,
            "lines": lines,
        }
        yield Out("orders", oid, msg)
        return
    click = CLICKS[name]
    if click == "search" and not items:
        yield Out(
            "clickstream",
            cid,
            {
                "event_id": stable_id("ga4", cid, ts, name, 0),
                "ts": ts,
                "type": "search",
                "customer_id": cid,
                "session_id": session,
            },
        )
        return
    for i, raw in enumerate(items):
        item = obj(raw, f"items[{i}]")
        sku = item.get(sku_field)
        if sku in (None, ""):
            raise MappingError(f"items[{i}].{sku_field}: missing")
        msg = {
            "event_id": stable_id("ga4", cid, ts, name, i),
            "ts": ts,
            "type": click,
            "customer_id": cid,
            "session_id": session,
            "sku": text(sku),
            "qty": _qty(item, f"items[{i}]"),
        }
        yield Out("clickstream", cid, msg)


def _used(name: Any) -> bool:
    return isinstance(name, str) and (name == "purchase" or name in CLICKS)


def collect(body: Any, arrived_ms: int, sku_field: str) -> Mapped:
    """Map a Measurement Protocol request (`/mp/collect` body)."""
    d = obj(body, "body")
    client = d.get("client_id") or d.get("app_instance_id")
    if client in (None, ""):
        raise MappingError("client_id: missing")
    cid = text(d.get("user_id") or client)
    req_ts = _micros_ms(d["timestamp_micros"], "timestamp_micros") if d.get("timestamp_micros") else arrived_ms
    events = d.get("events")
    if not isinstance(events, list) or not events:
        raise MappingError("events: expected a non-empty array")
    outs: list[Out] = []
    skipped = 0
    for n, raw in enumerate(events):
        e = obj(raw, f"events[{n}]")
        name = e.get("name")
        if not _used(name):
            skipped += 1
            continue
        params = e.get("params") or {}
        if not isinstance(params, dict):
            raise MappingError(f"events[{n}].params: expected an object")
        ts = _micros_ms(e["timestamp_micros"], f"events[{n}].timestamp_micros") if e.get("timestamp_micros") else req_ts
        items = params.get("items") or []
        if not isinstance(items, list):
            raise MappingError(f"events[{n}].params.items: expected an array")
        session = text(params["session_id"]) if params.get("session_id") not in (None, "") else text(client)
        mapped = list(_event(str(name), items, ts, cid, session, params.get("transaction_id"), sku_field))
        if not mapped:
            skipped += 1
        outs.extend(mapped)
    return Mapped(outs, skipped)


def _param_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return None
    for k in ("string_value", "int_value", "float_value", "double_value"):
        if v.get(k) is not None:
            return v[k]
    return None


def export_row(row: Any, sku_field: str) -> Mapped:
    """Map one row of the BigQuery export (`events_YYYYMMDD`, as JSON lines)."""
    d = obj(row, "row")
    name = d.get("event_name")
    if not _used(name):
        return Mapped([], 1)
    raw_params = d.get("event_params") or []
    if not isinstance(raw_params, list):
        raise MappingError("event_params: expected an array")
    params: dict[str, Any] = {
        str(p.get("key")): _param_value(p.get("value")) for p in raw_params if isinstance(p, dict)
    }
    ts = _micros_ms(d.get("event_timestamp"), "event_timestamp")
    pseudo = d.get("user_pseudo_id")
    user = d.get("user_id") or pseudo
    if user in (None, ""):
        raise MappingError("user_id and user_pseudo_id: missing")
    cid = text(user)
    session = params.get("ga_session_id")
    session_id = text(session) if session not in (None, "") else text(pseudo or user)
    items = d.get("items") or []
    if not isinstance(items, list):
        raise MappingError("items: expected an array")
    ecommerce = d.get("ecommerce")
    if not isinstance(ecommerce, dict):
        ecommerce = {}
    transaction = ecommerce.get("transaction_id") or params.get("transaction_id")
    outs = list(_event(str(name), items, ts, cid, session_id, transaction, sku_field))
    return Mapped(outs, 0 if outs else 1)
