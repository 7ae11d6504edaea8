"""Klaviyo flow webhooks to triggers (the template of `templates`).

https://developers.klaviyo.com/en/docs/how_to_add_a_webhook_action_to_a_flow: a flow's
webhook action POSTs the JSON body the merchant wrote, rendered per profile, with the
headers the merchant set (ours: `X-Stockguard-Token`). Flow webhooks are not signed.
"""

from __future__ import annotations

from typing import Any

from stockguard.state.vendors import templates
from stockguard.state.vendors.common import Out

__all__ = ["trigger"]


def trigger(body: Any, arrived_ms: int, consent_default: bool) -> Out:
    """Map a Klaviyo flow webhook body to a `marketing.triggers` message."""
    return templates.trigger("klaviyo", body, arrived_ms, consent_default)
