"""What every vendor mapper shares: the output record, errors, times, ids, validation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from stockguard.state.models import (
    TS_MAX,
    TS_MIN,
    ContractError,
    checked_click,
    checked_order,
    checked_product,
    checked_stock,
    checked_trigger,
)

__all__ = [
    "TOPIC_KINDS",
    "MappingError",
    "Out",
    "field",
    "iso_ms",
    "obj",
    "stable_id",
    "text",
    "validate",
]

# The input topics a mapper writes to, by their TopicSettings field name.
TOPIC_KINDS: Final = ("clickstream", "stock", "orders", "products", "triggers")


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


class MappingError(ValueError):
    """A verified payload that cannot be mapped: it goes to the DLQ, the sender gets 200."""


class Out(NamedTuple):
    """One contract message for an input topic (`kind` is a TopicSettings field name)."""

    kind: str
    key: str
    value: dict[str, Any]


def obj(v: Any, where: str) -> dict[str, Any]:
    """Return a JSON object, or raise naming where it was expected."""
    if type(v) is not dict:
        raise MappingError(f"{where}: expected an object")
    return v


def field(d: Mapping[str, Any], name: str, where: str = "") -> Any:
    """Return a required field, or raise naming it."""
    v = d.get(name)
    if v is None or v == "":
        raise MappingError(f"{where}{name}: missing")
    return v


def text(v: Any) -> str:
    """Return an id as text: Shopify and GA4 send numbers, Stripe strings."""
    if isinstance(v, bool):
        raise MappingError(f"expected an id, got {v!r}")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and v:
        return v
    raise MappingError(f"expected an id, got {type(v).__name__}")


def iso_ms(v: Any, where: str) -> int:
    """Turn an ISO-8601 time (Shopify, Klaviyo, Braze) into epoch milliseconds."""
    if not isinstance(v, str):
        raise MappingError(f"{where}: expected an ISO-8601 time")
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise MappingError(f"{where}: not an ISO-8601 time ({v[:40]!r})") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)  # a time without offset is taken as UTC
    ms = (t - _EPOCH) // _MS  # exact: a float timestamp can lose the last millisecond
    if not TS_MIN <= ms < TS_MAX:
        raise MappingError(f"{where}: {v[:40]!r} is out of range")
    return ms


def stable_id(prefix: str, *parts: object) -> str:
    """Return an id that the same parts always give: for senders that have none."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return f"{prefix}-{digest}"


_CHECK: Final[dict[str, Callable[[Any], object]]] = {
    "clickstream": checked_click,
    "stock": checked_stock,
    "orders": checked_order,
    "products": checked_product,
    "triggers": checked_trigger,
}


def validate(out: Out) -> None:
    """Check a mapped message against the contract's parser, as the flow will."""
    try:
        _CHECK[out.kind](out.value)
    except ContractError as exc:
        raise MappingError(f"mapped {out.kind} message: {exc}") from None
