"""Braze requests for decisions and stock (INTEGRATIONS.md "Out"), as pure data.

- Approved: `POST /campaigns/trigger/send`
  (https://www.braze.com/docs/api/endpoints/messaging/send_messages/post_send_triggered_campaigns/),
  the Braze campaign id from `braze.campaigns` (our campaign_id -> theirs), at most 50
  `recipients` a call, each with `external_user_id` and `trigger_properties` (so the
  message can render the skus and ask the send-time check with `trigger_id`). A call names
  one campaign, so recipients are grouped by it. Braze has no idempotency key: the
  deliverer's own delivered-ids record keeps a trigger from being sent twice.
- Retracted: `POST /users/track` with the custom event `stockguard_trigger_retracted`
  (a Canvas or campaign exit event), at most 75 events a call.
- Stock: `PATCH /catalogs/{catalog}/items`, at most 50 items a call, `inventory` = ATP
  (never below 0).

A trigger whose campaign has no Braze id cannot be sent: `unmapped` returns it, for the
delivery DLQ (no retry can fix it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "CATALOG_LIMIT",
    "EXIT_EVENT",
    "RECIPIENT_LIMIT",
    "TRACK_LIMIT",
    "catalog_patches",
    "retraction_tracks",
    "trigger_sends",
]

RECIPIENT_LIMIT: Final = 50
TRACK_LIMIT: Final = 75
CATALOG_LIMIT: Final = 50
EXIT_EVENT: Final = "stockguard_trigger_retracted"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(ts: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _chunks(items: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def trigger_sends(
    approved: Iterable[Mapping[str, Any]], campaigns: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[Mapping[str, Any]]]:
    """Group approved triggers into `/campaigns/trigger/send` bodies; return them and the unmapped."""
    by_campaign: dict[str, list[dict[str, Any]]] = {}
    unmapped: list[Mapping[str, Any]] = []
    for msg in approved:
        braze_id = campaigns.get(str(msg.get("campaign_id")))
        if braze_id is None:
            unmapped.append(msg)
            continue
        by_campaign.setdefault(braze_id, []).append(
            {
                "external_user_id": str(msg["customer_id"]),
                "trigger_properties": {
                    "trigger_id": msg["trigger_id"],
                    "decision": msg.get("decision"),
                    "kind": msg.get("kind"),
                    "skus": list(msg.get("skus") or []),
                    "substitutions": list(msg.get("substitutions") or []),
                },
            }
        )
    bodies = [
        {"campaign_id": braze_id, "broadcast": False, "recipients": list(chunk)}
        for braze_id, recipients in by_campaign.items()
        for chunk in _chunks(recipients, RECIPIENT_LIMIT)
    ]
    return bodies, unmapped


def retraction_tracks(retracted: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Build `/users/track` bodies: one exit event per retraction, at most 75 a call."""
    events = [
        {
            "external_id": str(msg["customer_id"]),
            "name": EXIT_EVENT,
            "time": _iso(int(msg["ts"])),
            "properties": {k: msg[k] for k in ("trigger_id", "campaign_id", "sku", "reason") if k in msg},
        }
        for msg in retracted
    ]
    return [{"events": list(chunk)} for chunk in _chunks(events, TRACK_LIMIT)]


def catalog_patches(atp: Mapping[str, int]) -> list[dict[str, Any]]:
    """Build `PATCH /catalogs/{name}/items` bodies: at most 50 items a call."""
    items = [{"id": sku, "inventory": max(0, qty)} for sku, qty in atp.items()]
    return [{"items": list(chunk)} for chunk in _chunks(items, CATALOG_LIMIT)]
