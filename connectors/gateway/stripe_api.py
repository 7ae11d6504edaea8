"""Fetch a Checkout Session's line items from Stripe: the one read the gateway makes.

`GET {stripe.api_base}/v1/checkout/sessions/{id}/line_items?expand[]=data.price.product`
with the secret key as bearer (https://docs.stripe.com/api/checkout/sessions/line_items),
following `has_more` pages. A 5xx, 429, timeout or a refused connection is `Unavailable`
(the webhook is answered 503, so Stripe sends it again); any other 4xx is `Refused` (the
event is dead-lettered: no retry will fix it).
"""

from __future__ import annotations

from typing import Any

import aiohttp

__all__ = ["Refused", "StripeApi", "Unavailable"]


class Unavailable(RuntimeError):
    """Stripe did not answer usefully now; a later retry may work."""


class Refused(RuntimeError):
    """Stripe refused the request (4xx): a retry would be refused too."""


class StripeApi:
    """A thin client over one aiohttp session (connections reused)."""

    def __init__(self, session: aiohttp.ClientSession, api_base: str, api_key: str, timeout_s: float) -> None:
        self.session = session
        self.base = api_base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def line_items(self, session_id: str) -> dict[str, Any]:
        """Return every line item of a session (all pages), in the list object's shape."""
        url = f"{self.base}/v1/checkout/sessions/{session_id}/line_items"
        items: list[Any] = []
        params: dict[str, str] = {"expand[]": "data.price.product", "limit": "100"}
        while True:
            page = await self._get(url, params)
            data = page.get("data")
            if not isinstance(data, list):
                raise Refused("line_items: the answer has no data list")
            items.extend(data)
            if not page.get("has_more") or not data:
                return {"object": "list", "data": items}
            last = data[-1].get("id") if isinstance(data[-1], dict) else None
            if not isinstance(last, str):
                raise Refused("line_items: a page's last item has no id")
            params["starting_after"] = last

    async def _get(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            async with self.session.get(url, params=params, headers=self.headers, timeout=self.timeout) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise Unavailable(f"Stripe answered {resp.status}")
                if resp.status >= 400:
                    raise Refused(f"Stripe answered {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"Stripe unreachable: {type(exc).__name__}") from exc
        if not isinstance(body, dict):
            raise Refused("Stripe answered something that is not an object")
        return body
