"""Klaviyo requests for decisions and stock (INTEGRATIONS.md "Out"), as pure data.

Events API (https://developers.klaviyo.com/en/reference/create_event): `POST /api/events`
with a JSON:API body; an approved trigger is the metric "StockGuard Trigger Approved", a
retraction "StockGuard Trigger Retracted", each with `unique_id` `{trigger_id}:{kind}` so
that a redelivered message creates no second event. Catalog stock
(https://developers.klaviyo.com/en/reference/bulk_update_catalog_variants): at most 100
variants a job, id `$custom:::$default:::{sku}`, `inventory_quantity` the ATP,
`inventory_policy` 1 (do not show out of stock). Where INTEGRATIONS.md is silent: a
retraction's properties carry the sku that ran out and the reason; ATP below zero is sent
as 0 (Klaviyo's quantity is what can be sold).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "APPROVED_METRIC",
    "HEADERS",
    "JOB_LIMIT",
    "RETRACTED_METRIC",
    "event_body",
    "headers",
    "variant_jobs",
]

APPROVED_METRIC: Final = "StockGuard Trigger Approved"
RETRACTED_METRIC: Final = "StockGuard Trigger Retracted"
JOB_LIMIT: Final = 100
HEADERS: Final = {"Content-Type": "application/vnd.api+json", "Accept": "application/vnd.api+json"}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_APPROVED_PROPS: Final = (
    "trigger_id",
    "decision",
    "kind",
    "campaign_id",
    "channel",
    "skus",
    "original_skus",
    "substitutions",
)


def headers(api_key: str, revision: str) -> dict[str, str]:
    """Return the headers of every Klaviyo API request."""
    return {**HEADERS, "Authorization": f"Klaviyo-API-Key {api_key}", "revision": revision}


def _iso(ts: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_body(
    kind: str,
    msg: Mapping[str, Any],
    approved_metric: str = APPROVED_METRIC,
    retracted_metric: str = RETRACTED_METRIC,
) -> dict[str, Any]:
    """Build the Create Event body of an approved (`kind` "approved") or retracted message."""
    if kind == "approved":
        metric = approved_metric
        properties = {k: msg[k] for k in _APPROVED_PROPS if k in msg}
    elif kind == "retracted":
        metric = retracted_metric
        properties = {k: msg[k] for k in ("trigger_id", "campaign_id", "sku", "reason", "detail") if k in msg}
    else:
        raise ValueError(f"no Klaviyo event for {kind!r}")
    return {
        "data": {
            "type": "event",
            "attributes": {
                "properties": properties,
                "time": _iso(int(msg["ts"])),
                "unique_id": f"{msg['trigger_id']}:{kind}",
                "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
                "profile": {"data": {"type": "profile", "attributes": {"external_id": str(msg["customer_id"])}}},
            },
        }
    }


def variant_jobs(atp: Mapping[str, int] | Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """Build bulk variant update jobs (at most 100 variants each) setting each sku's stock."""
    pairs = list(atp.items()) if isinstance(atp, Mapping) else list(atp)
    jobs = []
    for start in range(0, len(pairs), JOB_LIMIT):
        variants = [
            {
                "type": "catalog-variant",
                "id": f"$custom:::$default:::{sku}",
                "attributes": {"inventory_quantity": max(0, qty), "inventory_policy": 1},
            }
            for sku, qty in pairs[start : start + JOB_LIMIT]
        ]
        jobs.append(
            {
                "data": {
                    "type": "catalog-variant-bulk-update-job",
                    "attributes": {"variants": {"data": variants}},
                }
            }
        )
    return jobs
