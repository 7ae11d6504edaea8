"""The JSON template a merchant pastes into a Klaviyo flow webhook or a Braze webhook.

    {"trigger_id"?, "campaign_id", "kind", "channel", "customer_id" | "email",
     "skus": [...] | "a,b", "consent"?}

Both platforms render it with their own tags (README gives the template to paste). What
INTEGRATIONS.md leaves open, decided here: template engines render everything as text, so
`consent` may be `true`/`false` as a string, `skus` a comma-separated string, ids numbers.
With an `email` and no `customer_id`, the customer id is the email, lowercased and trimmed
(the platform's own key for the profile). `channel` defaults to `email`. Without a
`trigger_id`, the id is a hash of (system, campaign_id, customer, skus, the minute the
webhook arrived): a retry within the same minute maps to the same trigger.
"""

from __future__ import annotations

from typing import Any

from stockguard.state.vendors.common import MappingError, Out, field, obj, stable_id, text

__all__ = ["trigger"]

_MINUTE = 60_000


def _skus(v: Any) -> list[str]:
    if isinstance(v, str):
        skus = [s.strip() for s in v.split(",") if s.strip()]
    elif isinstance(v, list) and all(isinstance(s, str | int) and not isinstance(s, bool) for s in v):
        skus = [str(s).strip() for s in v if str(s).strip()]
    else:
        raise MappingError("skus: expected an array of skus or a comma-separated string")
    if not skus:
        raise MappingError("skus: empty")
    return skus


def _consent(v: Any, default: bool) -> bool:
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise MappingError("consent: expected true or false")


def trigger(system: str, body: Any, arrived_ms: int, consent_default: bool) -> Out:
    """Map a rendered template to a `marketing.triggers` message."""
    d = obj(body, "body")
    if d.get("customer_id") not in (None, ""):
        cid = text(d["customer_id"])
    elif isinstance(d.get("email"), str) and "@" in d["email"]:
        cid = d["email"].strip().lower()
    else:
        raise MappingError("customer_id or email: missing")
    campaign = text(field(d, "campaign_id"))
    skus = _skus(d.get("skus"))
    tid = d.get("trigger_id")
    trigger_id = (
        text(tid) if tid not in (None, "") else stable_id(system, campaign, cid, ",".join(skus), arrived_ms // _MINUTE)
    )
    msg = {
        "trigger_id": trigger_id,
        "ts": arrived_ms,
        "campaign_id": campaign,
        "customer_id": cid,
        "kind": str(field(d, "kind")),
        "channel": str(d.get("channel") or "email"),
        "skus": skus,
        "consent": _consent(d.get("consent"), consent_default),
    }
    return Out("triggers", cid, msg)
