"""Braze webhooks to triggers (the template of `templates`).

https://www.braze.com/docs/user_guide/message_building_by_channel/webhooks/creating_a_webhook/:
a webhook campaign or Canvas step POSTs the JSON body the merchant wrote, rendered with
Liquid per user, with the headers the merchant set (ours: `X-Stockguard-Token`).
"""

from __future__ import annotations

from typing import Any

from stockguard.state.vendors import templates
from stockguard.state.vendors.common import Out

__all__ = ["trigger"]


def trigger(body: Any, arrived_ms: int, consent_default: bool) -> Out:
    """Map a Braze webhook body to a `marketing.triggers` message."""
    return templates.trigger("braze", body, arrived_ms, consent_default)
