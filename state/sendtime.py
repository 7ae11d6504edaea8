"""The send-time check's answers: what a platform is told when it asks before sending.

INTEGRATIONS.md ("Send-time check"): `GET /v1/triggers/{trigger_id}` answers
`{"trigger_id", "decision": "send|retarget|suppress|retracted|unknown", "skus", "reason"}`;
`GET /v1/skus/{sku}` the read model's row. The flow stores each decision as the fields of
a hash (`record_of`); the gateway reads them back (`answer_of`). A retraction replaces the
approval it cancels, so the newest fact about a trigger is what is answered. Choices where
the contract is silent: a retraction's `skus` is the sku that ran out and its `reason`
the retraction's reason and detail (`out_of_stock: ATP 0`); `reason` is null for a send
or a re-target; an unknown trigger (never decided, or older than `redis.decision_ttl`)
answers `unknown`, which a platform must treat as "do not send".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = ["DECISIONS", "SENDABLE", "answer_of", "record_of", "sku_row", "unknown"]

DECISIONS: Final = ("send", "retarget", "suppress", "retracted", "unknown")
# What a platform may send on: anything else aborts the message.
SENDABLE: Final = frozenset({"send", "retarget"})


def record_of(kind: str, msg: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    """Return (trigger_id, hash fields) for an approved, suppressed or retracted message."""
    tid = msg.get("trigger_id")
    if not isinstance(tid, str) or not tid:
        return None
    if kind == "approved":
        decision, skus, reason = str(msg.get("decision")), msg.get("skus") or [], ""
    elif kind == "suppressed":
        decision, skus, reason = "suppress", msg.get("skus") or [], str(msg.get("reason") or "")
    elif kind == "retracted":
        detail = msg.get("detail")
        reason = str(msg.get("reason") or "retracted") + (f": {detail}" if detail else "")
        decision, skus = "retracted", [msg["sku"]] if isinstance(msg.get("sku"), str) else []
    else:
        return None
    return tid, {
        "decision": decision,
        "skus": orjson.dumps(skus).decode(),
        "reason": reason,
        "ts": str(msg.get("decided_ts") or msg.get("ts") or ""),
    }


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def answer_of(trigger_id: str, fields: Mapping[Any, Any]) -> dict[str, Any]:
    """Turn a stored decision (hash fields, bytes or text) into the check's answer."""
    f = {_text(k): _text(v) for k, v in fields.items()}
    decision = f.get("decision")
    if decision not in DECISIONS:
        return unknown(trigger_id)
    try:
        skus = orjson.loads(f.get("skus") or "[]")
    except orjson.JSONDecodeError:
        skus = []
    return {"trigger_id": trigger_id, "decision": decision, "skus": skus, "reason": f.get("reason") or None}


def unknown(trigger_id: str) -> dict[str, Any]:
    """Answer for a trigger stockguard holds no decision for: do not send."""
    return {"trigger_id": trigger_id, "decision": "unknown", "skus": [], "reason": None}


def sku_row(sku: str, fields: Mapping[Any, Any]) -> dict[str, Any]:
    """Turn a read-model hash (`{prefix}:sku:{sku}`) into JSON: numbers as numbers."""
    f = {_text(k): _text(v) for k, v in fields.items()}

    def num(name: str) -> int | float | None:
        raw = f.get(name)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return float(raw)

    return {
        "sku": sku,
        "known": bool(num("known")),
        "available": bool(num("available")),
        "atp": num("atp"),
        "units_per_day": num("units_per_day"),
        "updated_ts": num("updated_ts"),
        "locations": {k[4:]: num(k) for k in sorted(f) if k.startswith("loc:")},
    }
